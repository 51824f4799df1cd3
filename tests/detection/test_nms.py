"""Greedy, class-aware and Soft-NMS against the oracles and against hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.detection.nms import batched_nms, nms, nms_steps, soft_nms
from convlens.errors import DataError
from tests.detection import oracles
from tests.detection.test_boxes import xyxy_boxes


@st.composite
def detections(draw: st.DrawFn, integer: bool):
    boxes = draw(xyxy_boxes(max_size=14, integer=integer))
    # Few distinct scores so that ties (broken by the original order) are common.
    scores = [draw(st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.3, 0.7])) for _ in boxes]
    classes = [draw(st.integers(0, 2)) for _ in boxes]
    threshold = draw(st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0]) | st.floats(0, 1))
    return boxes, scores, classes, threshold


@given(case=detections(integer=True) | detections(integer=False))
@settings(max_examples=150)
def test_nms_matches_the_oracle(case) -> None:
    boxes, scores, classes, threshold = case
    expected = oracles.nms(boxes, scores, threshold)
    got = nms(np.asarray(boxes), np.asarray(scores), threshold)
    assert got.dtype == np.int64
    assert got.tolist() == expected
    on_torch = nms(  # float64: a float32 tensor rounds tiny boxes to nothing
        torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float64),
        threshold,
    )
    assert isinstance(on_torch, torch.Tensor) and on_torch.tolist() == expected
    assert batched_nms(boxes, scores, classes, threshold).tolist() == oracles.batched_nms(
        boxes, scores, classes, threshold
    )


def test_worked_example_which_box_suppressed_which() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]]
    scores = [0.8, 0.9, 0.7, 0.6]
    result = nms_steps(boxes, scores, 0.5)
    assert result.keep.tolist() == [1, 2, 3]
    first = result.steps[0]
    assert (first.kept, first.score) == (1, 0.9)
    by_index = {s.index: s for s in first.compared}
    # Box 0 against box 1: 9·9 = 81 shared, union 100 + 100 − 81 = 119.
    assert by_index[0].iou == pytest.approx(81 / 119) and by_index[0].suppressed
    # Box 3 against box 1: 9·4 = 36 shared, union 50 + 100 − 36 = 114 → stays.
    assert by_index[3].iou == pytest.approx(36 / 114) and not by_index[3].suppressed
    assert first.suppressed == (0,)


def test_a_box_at_exactly_the_threshold_stays() -> None:
    # IoU exactly 0.5: [0,0,2,1] and [0,0,1,1] share 1, union 2.
    assert nms([[0, 0, 2, 1], [0, 0, 1, 1]], [0.9, 0.8], 0.5).tolist() == [0, 1]
    assert nms([[0, 0, 2, 1], [0, 0, 1, 1]], [0.9, 0.8], 0.4999).tolist() == [0]


def test_ties_keep_the_original_order() -> None:
    boxes = [[0, 0, 10, 10]] * 3
    assert nms(boxes, [0.5, 0.5, 0.5], 0.5).tolist() == [0]
    assert nms(boxes, [0.4, 0.5, 0.5], 0.5).tolist() == [1]


def test_empty_input_keeps_nothing() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert batched_nms([], [], [], 0.5).tolist() == []
    assert soft_nms([], []).keep.tolist() == []
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)


def test_bad_input_is_named() -> None:
    with pytest.raises(DataError, match="score 1 is nan"):
        nms([[0, 0, 1, 1], [0, 0, 2, 2]], [0.5, float("nan")], 0.5)
    with pytest.raises(DataError, match=r"box 0 .* x2 < x1"):
        nms([[3, 0, 1, 1]], [0.5], 0.5)
    with pytest.raises(DataError, match=r"iou_threshold must be a number in \[0, 1\], got 1.2"):
        nms([[0, 0, 1, 1]], [0.5], 1.2)
    with pytest.raises(DataError, match=r"entry 1 is 0\.5"):
        batched_nms([[0, 0, 1, 1]] * 2, [0.5, 0.4], [0, 0.5], 0.5)


def _soft_oracle(boxes, scores, threshold, sigma, floor, method):
    """Bodla et al.'s Algorithm 1, written as a plain loop over a list."""
    current = list(scores)
    waiting = [i for i in range(len(boxes)) if current[i] >= floor]
    out = []
    while waiting:
        best = max(waiting, key=lambda i: (current[i], -i))
        out.append((best, current[best]))
        waiting.remove(best)
        for i in waiting:
            overlap = oracles.iou(boxes[best], boxes[i])
            if method == "linear":
                current[i] *= (1 - overlap) if overlap > threshold else 1.0
            else:
                current[i] *= math.exp(-(overlap**2) / sigma)
        waiting = [i for i in waiting if current[i] >= floor]
    return out


@given(
    case=detections(integer=False),
    method=st.sampled_from(["linear", "gaussian"]),
    sigma=st.floats(0.1, 2.0),
)
@settings(max_examples=80)
def test_soft_nms_matches_the_oracle(case, method, sigma) -> None:
    boxes, scores, _, threshold = case
    scores = [s + 0.001 * i for i, s in enumerate(scores)]  # distinct scores
    result = soft_nms(boxes, scores, threshold, sigma, 0.05, method)
    expected = _soft_oracle(boxes, scores, threshold, sigma, 0.05, method)
    assert result.keep.tolist() == [i for i, _ in expected]
    np.testing.assert_allclose(result.scores, [s for _, s in expected], rtol=1e-12)


def test_soft_nms_linear_by_hand() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]
    result = soft_nms(boxes, [0.9, 0.8, 0.7], iou_threshold=0.3, explain=True)
    # Box 1 decays to 0.8 · (1 − 81/119) = 0.2555…, below box 2's 0.7.
    assert result.keep.tolist() == [0, 2, 1]
    assert result.scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * (1 - 81 / 119)])
    decay = result.steps[0].decays[0]
    assert (decay.index, decay.before) == (1, 0.8)
    gaussian = soft_nms(boxes, [0.9, 0.8, 0.7], sigma=0.5, method="gaussian")
    assert gaussian.scores[2] == pytest.approx(0.8 * math.exp(-((81 / 119) ** 2) / 0.5))
