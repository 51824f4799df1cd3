"""YOLOv1's output layout, Darknet-53's depth and YOLOv3's heads (decoding: tests/detection)."""

from __future__ import annotations

import torch

from convlens.zoo.measure import build, forward_shapes


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
