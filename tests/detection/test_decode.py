"""YOLOv1/v2/v3 decoding: hand-computed boxes, inversion of the encoding, the zoo models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.detection.decode import (
    YOLOV2_VOC_ANCHORS,
    YOLOV3_ANCHORS,
    YOLOV3_STRIDES,
    decode_cell,
    decode_yolov1,
    decode_yolov2,
    decode_yolov3,
    select_boxes,
)
from convlens.errors import DataError
from convlens.zoo.measure import build


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- v3


def test_v3_hand_built_map() -> None:
    # One 2×2 map at stride 16 of a 32×32 image, 2 anchors, 1 class: 2·(5+1) = 12 channels.
    anchors = [((10.0, 20.0), (40.0, 30.0))]
    raw = torch.zeros(1, 12, 2, 2)
    # anchor 1, cell (row y=1, column x=0): σ(tx)=0.25, σ(ty)=0.75, tw=ln 2, th=0, obj 0.9, cls 0.2
    values = [_logit(0.25), _logit(0.75), math.log(2.0), 0.0, _logit(0.9), _logit(0.2)]
    for k, v in enumerate(values):
        raw[0, 6 + k, 1, 0] = v
    boxes = decode_yolov3([raw], anchors, [16], 32)
    assert boxes.shape == (1, 2 * 2 * 2, 6)
    row = boxes[0, 1 * 4 + 1 * 2 + 0]  # anchor 1, y 1, x 0
    expected = [(0.25 + 0) * 16, (0.75 + 1) * 16, 40.0 * 2, 30.0, 0.9, 0.2]
    assert row.tolist() == pytest.approx(expected)
    # A zero logit elsewhere: centre of the cell, the anchor's size, probabilities ½.
    assert boxes[0, 0].tolist() == pytest.approx([8.0, 8.0, 10.0, 20.0, 0.5, 0.5])


def test_v3_full_output_layout() -> None:
    maps = [torch.zeros(2, 255, s, s) for s in (13, 26, 52)]
    boxes = decode_yolov3(maps, YOLOV3_ANCHORS, YOLOV3_STRIDES, 416)
    assert boxes.shape == (2, 3 * (13 * 13 + 26 * 26 + 52 * 52), 85)
    assert boxes[0, 0, :4].tolist() == pytest.approx([16.0, 16.0, 116.0, 90.0])
    assert boxes[0, -1, :4].tolist() == pytest.approx([51.5 * 8, 51.5 * 8, 33.0, 23.0])


def test_v3_rejects_inconsistent_maps() -> None:
    with pytest.raises(DataError, match="does not cover"):
        decode_yolov3([torch.zeros(1, 255, 13, 13)], YOLOV3_ANCHORS[:1], [16], 416)
    with pytest.raises(DataError, match="cannot hold"):
        decode_yolov3([torch.zeros(1, 10, 13, 13)], YOLOV3_ANCHORS[:1], [32], 416)
    with pytest.raises(DataError, match="1 maps, 3 anchor sets"):
        decode_yolov3([torch.zeros(1, 255, 13, 13)], YOLOV3_ANCHORS, YOLOV3_STRIDES, 416)


@given(
    cx=st.floats(0.5, 31.5),
    cy=st.floats(0.5, 31.5),
    w=st.floats(1.0, 300.0),
    h=st.floats(1.0, 300.0),
)
def test_v3_decode_inverts_the_encoding(cx: float, cy: float, w: float, h: float) -> None:
    # Encode a box into the cell that contains its centre (stride 8, 4×4 map), decode it back.
    stride, anchor = 8, (20.0, 10.0)
    col, row = int(cx // stride), int(cy // stride)
    fx, fy = cx / stride - col, cy / stride - row
    fx, fy = min(max(fx, 1e-4), 1 - 1e-4), min(max(fy, 1e-4), 1 - 1e-4)
    raw = torch.zeros(1, 6, 4, 4, dtype=torch.float64)
    raw[0, 0, row, col] = _logit(fx)
    raw[0, 1, row, col] = _logit(fy)
    raw[0, 2, row, col] = math.log(w / anchor[0])
    raw[0, 3, row, col] = math.log(h / anchor[1])
    boxes = decode_yolov3([raw], [(anchor,)], [stride], 32)
    got = boxes[0, row * 4 + col, :4].tolist()
    assert got == pytest.approx([(col + fx) * stride, (row + fy) * stride, w, h], rel=1e-9)


# ----------------------------------------------------------------------------- v2


def test_v2_hand_built_cell() -> None:
    # 13×13 at 416² (stride 32), VOC anchors in cells; anchor 2 = (6.63, 11.38) cells.
    raw = torch.zeros(1, 125, 13, 13, dtype=torch.float64)
    a, row, col = 2, 4, 7
    base = a * 25
    raw[0, base + 0, row, col] = _logit(0.5)
    raw[0, base + 1, row, col] = _logit(0.2)
    raw[0, base + 2, row, col] = math.log(0.5)
    raw[0, base + 3, row, col] = 0.0
    raw[0, base + 4, row, col] = _logit(0.8)
    raw[0, base + 5 + 3, row, col] = math.log(3.0)  # class 3: e^{ln 3} = 3 against 19 × e^0
    decoded = decode_yolov2(raw, YOLOV2_VOC_ANCHORS, 416)
    assert decoded.shape == (1, 5 * 169, 25)
    got = decoded[0, a * 169 + row * 13 + col]
    expected_box = [(0.5 + 7) * 32, (0.2 + 4) * 32, 6.63 * 32 * 0.5, 11.38 * 32]
    assert got[:4].tolist() == pytest.approx(expected_box)
    assert got[4].item() == pytest.approx(0.8)
    assert got[5 + 3].item() == pytest.approx(3 / (3 + 19))  # softmax over the 20 classes
    assert got[5:].sum().item() == pytest.approx(1.0)


def test_v2_rejects_a_map_that_does_not_tile_the_image() -> None:
    with pytest.raises(DataError, match="whole cells"):
        decode_yolov2(torch.zeros(1, 125, 13, 13), YOLOV2_VOC_ANCHORS, 420)


# ----------------------------------------------------------------------------- v1


def test_v1_hand_built_cell() -> None:
    out = torch.zeros(1, 7, 7, 30, dtype=torch.float64)
    # Cell (row 2, column 5), box 1: x 0.5, y 0.25, √w 0.5, √h 0.2, confidence 0.6.
    out[0, 2, 5, 5:10] = torch.tensor([0.5, 0.25, 0.5, 0.2, 0.6], dtype=torch.float64)
    out[0, 2, 5, 10 + 14] = 0.7  # class 14 (person in VOC's order)
    decoded = decode_yolov1(out, num_boxes=2, img_size=448)
    assert decoded.shape == (1, 7 * 7 * 2, 25)
    got = decoded[0, (2 * 7 + 5) * 2 + 1]
    expected = [(5 + 0.5) / 7 * 448, (2 + 0.25) / 7 * 448, 0.25 * 448, 0.04 * 448, 0.6]
    assert got[:5].tolist() == pytest.approx(expected)
    assert got[5 + 14].item() == pytest.approx(0.7)  # the cell's classes, shared by its boxes
    assert decoded[0, (2 * 7 + 5) * 2 + 0, 5 + 14].item() == pytest.approx(0.7)


# ----------------------------------------------------------------------------- zoo models


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_decoding_the_zoo_models_agrees_with_decode_cell(version: str) -> None:
    """A real forward of each zoo detector, decoded in torch, against the scalar formulas."""
    torch.manual_seed(0)
    if version == "v1":
        model = build("yolov1", device="cpu", num_classes=3)
        size = 448
    elif version == "v2":
        model, size = build("yolov2", device="cpu", num_classes=3), 64
    else:
        model, size = build("yolov3", device="cpu", num_classes=3), 64
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    rng = np.random.default_rng(0)
    if version == "v1":
        decoded = decode_yolov1(out, 2, size)
        for _ in range(5):
            row, col, b = rng.integers(7), rng.integers(7), rng.integers(2)
            cell = out[0, row, col].double()
            raw = [*cell[5 * b : 5 * b + 5].tolist(), *cell[10:].tolist()]
            work = decode_cell("v1", raw, row, col, size / 7, anchor=b, grid=7)
            got = decoded[0, (row * 7 + col) * 2 + b].tolist()
            assert got == pytest.approx([*work.box, work.objectness, *work.class_scores])
        return
    if version == "v2":
        maps, anchors, strides = [out], [[(w * 32, h * 32) for w, h in YOLOV2_VOC_ANCHORS]], [32]
        decoded = decode_yolov2(out, YOLOV2_VOC_ANCHORS, size)
    else:
        maps, anchors, strides = list(out), YOLOV3_ANCHORS, YOLOV3_STRIDES
        decoded = decode_yolov3(out, YOLOV3_ANCHORS, YOLOV3_STRIDES, size)
    offset = 0
    for raw_map, map_anchors, stride in zip(maps, anchors, strides, strict=True):
        _, channels, h, w = raw_map.shape
        depth = channels // len(map_anchors)
        for _ in range(4):
            a, row, col = rng.integers(len(map_anchors)), rng.integers(h), rng.integers(w)
            raw = raw_map[0, a * depth : (a + 1) * depth, row, col].double().tolist()
            work = decode_cell(version, raw, row, col, stride, map_anchors[a], anchor=a)
            got = decoded[0, offset + (a * h + row) * w + col].tolist()
            expected = [*work.box, work.objectness, *work.class_scores]
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
        offset += len(map_anchors) * h * w
    assert offset == decoded.shape[1]


def test_select_boxes_thresholds_and_suppresses() -> None:
    # Three rows (cx, cy, w, h, objectness, class 0, class 1).
    rows = torch.tensor(
        [
            [50, 50, 20, 20, 0.9, 0.9, 0.1],  # score 0.81, class 0
            [52, 50, 20, 20, 0.8, 0.8, 0.2],  # 0.64, class 0: IoU 0.82 with the first → gone
            [52, 50, 20, 20, 0.8, 0.1, 0.9],  # 0.72, class 1: another class, stays
            [10, 10, 4, 4, 0.2, 0.5, 0.5],  # 0.1: below the threshold
        ],
        dtype=torch.float64,
    )[None]
    (result,) = select_boxes(rows, score_threshold=0.25, iou_threshold=0.45)
    assert result.rows.tolist() == [0, 2]
    assert result.classes.tolist() == [0, 1]
    assert result.scores.tolist() == pytest.approx([0.81, 0.72])
    assert result.boxes[0].tolist() == [40, 40, 60, 60]


@settings(max_examples=30)
@given(logits=st.lists(st.floats(-30, 30), min_size=7, max_size=7))
def test_decode_cell_sigmoid_and_softmax_are_stable(logits) -> None:
    work = decode_cell("v2", logits, 0, 0, 32, (10.0, 10.0))
    assert all(0 <= p <= 1 for p in work.class_scores)
    assert sum(work.class_scores) == pytest.approx(1.0)
    assert 0 <= work.objectness <= 1
