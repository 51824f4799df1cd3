"""Box formats and the four IoU variants against the scalar oracles, NumPy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.detection.boxes import (
    box_iou,
    check_boxes,
    check_scores,
    check_threshold,
    complete_box_iou,
    convert,
    distance_box_iou,
    generalized_box_iou,
)
from convlens.errors import DataError
from tests.detection import oracles


@st.composite
def xyxy_boxes(draw: st.DrawFn, min_size: int = 0, max_size: int = 8, integer: bool = False):
    """Boxes with x1 ≤ x2, y1 ≤ y2; integer corners make ties and touching edges likely."""
    count = draw(st.integers(min_size, max_size))
    coord = st.integers(0, 12) if integer else st.floats(0, 100, allow_nan=False)
    boxes = []
    for _ in range(count):
        x = sorted([draw(coord), draw(coord)])
        y = sorted([draw(coord), draw(coord)])
        boxes.append([float(x[0]), float(y[0]), float(x[1]), float(y[1])])
    return boxes


PAIRWISE = [
    (box_iou, oracles.iou),
    (generalized_box_iou, oracles.giou),
    (distance_box_iou, oracles.diou),
    (complete_box_iou, oracles.ciou),
]


@pytest.mark.parametrize(("ours", "oracle"), PAIRWISE, ids=["iou", "giou", "diou", "ciou"])
@given(a=xyxy_boxes(), b=xyxy_boxes(), integer=st.booleans())
@settings(max_examples=60)
def test_pairwise_against_the_oracle(ours, oracle, a, b, integer) -> None:
    if integer:
        a, b = np.round(a), np.round(b)
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b).reshape(-1, 4)
    got = ours(a, b)
    assert got.shape == (len(a), len(b))
    expected = [[oracle(list(x), list(y)) for y in b] for x in a]
    np.testing.assert_allclose(got, np.asarray(expected).reshape(got.shape), atol=1e-12)
    # The same formula on torch tensors gives the same numbers and stays a tensor.
    on_torch = ours(torch.as_tensor(a), torch.as_tensor(b))
    assert isinstance(on_torch, torch.Tensor)
    np.testing.assert_allclose(on_torch.numpy(), got, atol=1e-12)


def test_iou_worked_by_hand() -> None:
    a = [[0, 0, 10, 10]]
    b = [[5, 5, 15, 15], [10, 0, 20, 10], [0, 0, 10, 10], [2, 2, 4, 4]]
    # 5·5 = 25 shared; union 100 + 100 − 25 = 175. Touching edges share nothing.
    assert box_iou(a, b).tolist() == [[25 / 175, 0.0, 1.0, 4 / 100]]
    # GIoU of the touching pair: hull 20×10 = 200, union 200 → 0 − 0/200 = 0;
    # of the diagonal pair: hull 15×15 = 225 → 25/175 − (225 − 175)/225.
    assert generalized_box_iou(a, b)[0, :2].tolist() == pytest.approx([25 / 175 - 50 / 225, 0.0])
    # DIoU of the diagonal pair: centres (5, 5) and (10, 10) → ρ² = 50, c² = 15² + 15².
    assert distance_box_iou(a, b)[0, 0] == pytest.approx(25 / 175 - 50 / (450 + 1e-7))


def test_giou_range_and_far_apart_boxes() -> None:
    got = generalized_box_iou([[0, 0, 1, 1]], [[99, 99, 100, 100]])[0, 0]
    assert -1 < got < -0.99  # tiny boxes far apart: close to −1


def test_zero_area_boxes_have_iou_zero_not_nan() -> None:
    point = [[3, 3, 3, 3]]
    assert box_iou(point, point).tolist() == [[0.0]]
    assert generalized_box_iou(point, point).tolist() == [[0.0]]
    assert np.isfinite(complete_box_iou(point, [[0, 0, 5, 0]])).all()


def test_empty_inputs_give_empty_matrices() -> None:
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([], []).shape == (0, 0)
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)


@given(boxes=xyxy_boxes(min_size=1))
def test_conversions_round_trip(boxes) -> None:
    for fmt in ("xywh", "cxcywh"):
        there = convert(boxes, "xyxy", fmt)
        np.testing.assert_allclose(convert(there, fmt, "xyxy"), boxes, atol=1e-9)
        for other in ("xywh", "cxcywh"):
            np.testing.assert_allclose(
                convert(convert(there, fmt, other), other, "xyxy"), boxes, atol=1e-9
            )


def test_conversion_by_hand() -> None:
    assert convert([[1, 2, 4, 8]], "xyxy", "xywh").tolist() == [[1, 2, 3, 6]]
    assert convert([[1, 2, 4, 8]], "xyxy", "cxcywh").tolist() == [[2.5, 5, 3, 6]]
    assert convert([[2.5, 5, 3, 6]], "cxcywh", "xywh").tolist() == [[1, 2, 3, 6]]
    got = convert(torch.tensor([[1.0, 2, 3, 6]]), "xywh", "xyxy")
    assert isinstance(got, torch.Tensor) and got.tolist() == [[1, 2, 4, 8]]


def test_bad_boxes_are_named() -> None:
    with pytest.raises(DataError, match=r"box 1 \(5, 0, 2, 3\) has x2 < x1"):
        check_boxes([[0, 0, 1, 1], [5, 0, 2, 3]])
    with pytest.raises(DataError, match=r"box 0 .* has y2 < y1"):
        check_boxes([[0, 4, 1, 1]])
    with pytest.raises(DataError, match=r"box 0 .* not finite"):
        check_boxes([[0, np.nan, 1, 1]])
    with pytest.raises(DataError, match="negative width or height"):
        check_boxes([[0, 0, -1, 1]], fmt="xywh")
    with pytest.raises(DataError, match=r"shape \(2, 3\)"):
        check_boxes(np.zeros((2, 3)))
    with pytest.raises(DataError, match="score 2 is nan"):
        check_scores([0.1, 0.2, float("nan")], 3)
    with pytest.raises(DataError, match="2 scores for 3 boxes"):
        check_scores([0.1, 0.2], 3)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(DataError, match=r"iou_threshold must be a number in \[0, 1\]"):
            check_threshold(bad)


def test_package_examples_and_no_torch_import() -> None:
    import doctest
    import subprocess
    import sys

    import convlens.detection

    assert doctest.testmod(convlens.detection).failed == 0
    # Boxes, NMS, anchors and mAP are NumPy only: importing them must not pull in torch.
    code = "import sys, convlens.detection; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
