"""Darknet-19's and YOLOv2's structure, and the published figures at other input sizes.

The registry checks each figure at the entry's default input; the Darknet web page also
gives figures at 256² (Darknet-19), 544² (YOLOv2) and 608² (the COCO model), checked here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.zoo.measure import build, count_macs, count_params, forward_shapes
from convlens.zoo.yolov2 import space_to_depth


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_darknet19_has_19_convolutions_and_5_maxpools() -> None:
    model = build("darknet19")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19
    assert _count(model, nn.MaxPool2d) == 5
    assert [c.bias is None for c in convs] == [True] * 18 + [False]
    assert _count(model, nn.BatchNorm2d) == 18
    # Table 6's 3×3 / 1×1 pattern: 1×1 layers halve the channels between 3×3 layers.
    kernels = [c.kernel_size[0] for c in convs]
    assert kernels == [3, 3, 3, 1, 3, 3, 1, 3, 3, 1, 3, 1, 3, 3, 1, 3, 1, 3, 1]


@pytest.mark.parametrize(
    ("name", "arguments", "size", "published"),
    [
        ("darknet19", {}, 224, 5.58e9),  # the paper, Section 3
        ("darknet19", {}, 256, 7.29e9),  # Darknet web page, ImageNet classification table
        ("yolov2", {}, 416, 34.90e9),  # Darknet YOLOv2 page: YOLOv2 416×416
        ("yolov2", {}, 544, 59.68e9),  # YOLOv2 544×544
        ("yolov2", {"passthrough_channels": 64, "num_classes": 80}, 608, 62.94e9),  # COCO
    ],
)
def test_published_operations_at_their_input(name, arguments, size, published) -> None:
    model = build(name, **arguments)
    operations = 2 * count_macs(model, (3, size, size))  # Darknet: 2 per multiply-add
    assert round(operations / 1e9, 2) == round(published / 1e9, 2)


def test_yolov2_heads() -> None:
    assert forward_shapes(build("yolov2"), (3, 416, 416)) == ((125, 13, 13),)
    coco = build("yolov2", passthrough_channels=64, num_classes=80)
    assert forward_shapes(coco, (3, 608, 608)) == ((425, 19, 19),)
    # The reduction: 512 → 64 channels, so the fusing conv reads 4·64 + 1024 = 1280.
    assert coco.fuse.conv.in_channels == 1280
    assert build("yolov2").fuse.conv.in_channels == 4 * 512 + 1024
    assert count_params(build("yolov2", passthrough_channels=64)) == 50_655_389


def test_space_to_depth_is_pixel_unshuffle() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    assert torch.equal(space_to_depth(x), F.pixel_unshuffle(x, 2))
    # Channel c·4 + i·2 + j holds pixel (i, j) of every 2×2 patch of channel c.
    assert space_to_depth(x)[0, 1 * 4 + 1 * 2 + 0, 0, 0] == x[0, 1, 1, 0]
