"""YOLOv1's output layout, Darknet-53's depth, YOLOv3's heads and box decoding."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from convlens.zoo.measure import build, forward_shapes
from convlens.zoo.yolo import YOLOV3_ANCHORS, YOLOV3_STRIDES, decode_yolov3


def test_yolov1_output_layout() -> None:
    model = build("yolov1", grid_size=7, num_boxes=2, num_classes=20)
    assert forward_shapes(model, (3, 448, 448)) == ((7, 7, 30),)
    assert model.classifier[-1].out_features == 7 * 7 * (2 * 5 + 20)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 24


def test_yolov1_other_grid() -> None:
    model = build("yolov1", grid_size=5, num_boxes=3, num_classes=4)
    assert forward_shapes(model, (3, 448, 448)) == ((5, 5, 19),)


def test_darknet53_has_52_convolutions_and_one_fc() -> None:
    model = build("darknet53")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 52
    assert all(c.bias is None for c in convs)


def test_yolov3_heads_at_416() -> None:
    model = build("yolov3")
    assert forward_shapes(model, (3, 416, 416)) == ((255, 13, 13), (255, 26, 26), (255, 52, 52))
    model = build("yolov3", num_classes=20)
    assert forward_shapes(model, (3, 320, 320)) == ((75, 10, 10), (75, 20, 20), (75, 40, 40))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_decode_hand_built_map() -> None:
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
    first = boxes[0, 0]  # anchor 0, cell (0, 0)
    assert first.tolist() == pytest.approx([8.0, 8.0, 10.0, 20.0, 0.5, 0.5])


def test_decode_full_yolov3_output() -> None:
    maps = [torch.zeros(2, 255, s, s) for s in (13, 26, 52)]
    boxes = decode_yolov3(maps, YOLOV3_ANCHORS, YOLOV3_STRIDES, 416)
    assert boxes.shape == (2, 3 * (13 * 13 + 26 * 26 + 52 * 52), 85)
    assert boxes[0, 0, :4].tolist() == pytest.approx([16.0, 16.0, 116.0, 90.0])
    last = boxes[0, -1, :4].tolist()
    assert last == pytest.approx([51.5 * 8, 51.5 * 8, 33.0, 23.0])


def test_decode_rejects_inconsistent_maps() -> None:
    with pytest.raises(ValueError, match="does not cover"):
        decode_yolov3([torch.zeros(1, 255, 13, 13)], YOLOV3_ANCHORS[:1], [16], 416)
    with pytest.raises(ValueError, match="cannot hold"):
        decode_yolov3([torch.zeros(1, 10, 13, 13)], YOLOV3_ANCHORS[:1], [32], 416)


@given(
    cx=st.floats(0.5, 31.5),
    cy=st.floats(0.5, 31.5),
    w=st.floats(1.0, 300.0),
    h=st.floats(1.0, 300.0),
)
def test_decode_inverts_the_encoding(cx: float, cy: float, w: float, h: float) -> None:
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
