"""The lab's detector: target assignment by hand, encode → decode, and a loss that learns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from convlens.detection.boxes import box_iou
from convlens.detection.tiny_yolo import (
    TinyYolo,
    TinyYoloConfig,
    assign_targets,
    decode,
    detect,
    yolo_loss,
)

CONFIG = TinyYoloConfig(num_classes=3, anchors=((12.0, 12.0), (20.0, 20.0), (28.0, 28.0)))


def _no_predictions(n: int = 1) -> torch.Tensor:
    raw = torch.full((n, 3 * 8, 8, 8), -20.0)  # every box tiny and far from everything
    raw.view(n, 3, 8, 8, 8)[:, :, 2:4] = -20.0
    return decode(raw, CONFIG)


def test_assignment_by_hand() -> None:
    # A 16×24 box centred at (20, 28): cell column ⌊20/8⌋ = 2, row ⌊28/8⌋ = 3, offsets
    # (0.5, 0.5); sizes 16×24 best fit the 20×20 anchor (IoU 16·20 / (384 + 400 − 320)).
    boxes = [np.array([[12.0, 16.0, 28.0, 40.0]])]
    targets = assign_targets(boxes, [np.array([2])], _no_predictions(), CONFIG, (8, 8))
    assert targets.positive.sum() == 1 and targets.positive[0, 1, 3, 2]
    assert targets.offset[0, 1, 3, 2].tolist() == pytest.approx([0.5, 0.5])
    assert targets.log_size[0, 1, 3, 2].tolist() == pytest.approx(
        [math.log(16 / 20), math.log(24 / 20)]
    )
    assert targets.label[0, 1, 3, 2] == 2
    assert targets.size_weight[0, 1, 3, 2] == pytest.approx(2 - 16 * 24 / 64**2)
    assert not targets.ignore.any()


def test_a_prediction_already_on_a_box_is_ignored_not_pushed_down() -> None:
    boxes = [np.array([[12.0, 16.0, 28.0, 40.0]])]
    raw = torch.full((1, 24, 8, 8), -20.0)
    p = raw.view(1, 3, 8, 8, 8)
    # anchor 2, cell (3, 2): centre (20, 28), size 28·e^t = 16 and 24 → the same box.
    p[0, 2, 0, 3, 2] = p[0, 2, 1, 3, 2] = 0.0
    p[0, 2, 2, 3, 2] = math.log(16 / 28)
    p[0, 2, 3, 3, 2] = math.log(24 / 28)
    targets = assign_targets(boxes, [np.array([0])], decode(raw, CONFIG), CONFIG, (8, 8))
    assert targets.ignore[0, 2, 3, 2] and targets.ignore.sum() == 1
    assert not targets.ignore[0, 1, 3, 2]  # the assigned one is a positive, never ignored


def test_targets_decode_back_to_the_box() -> None:
    boxes = np.array([[3.0, 5.0, 17.0, 30.0], [40.0, 41.0, 62.0, 50.0]])
    targets = assign_targets([boxes], [np.array([0, 1])], _no_predictions(), CONFIG, (8, 8))
    raw = torch.zeros(1, 24, 8, 8, dtype=torch.float64)
    p = raw.view(1, 3, 8, 8, 8)
    pos = targets.positive[0]
    offsets = targets.offset[0][pos].double()
    p[0].permute(0, 2, 3, 1)[pos, 0:2] = torch.log(offsets / (1 - offsets))  # σ⁻¹
    p[0].permute(0, 2, 3, 1)[pos, 2:4] = targets.log_size[0][pos].double()
    decoded = decode(raw, CONFIG)[0].view(3, 8, 8, 8)[pos]  # rows of the positives
    cx, cy, w, h = decoded[:, :4].T
    got = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    np.testing.assert_allclose(sorted(got.tolist()), sorted(boxes.tolist()), atol=1e-9)


def test_the_loss_learns_one_image() -> None:
    torch.manual_seed(0)
    model = TinyYolo(CONFIG)
    x = torch.rand(1, 3, 64, 64)
    boxes, labels = [np.array([[8.0, 8.0, 30.0, 26.0]])], [np.array([1])]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        model.train()
        loss, parts = yolo_loss(model(x), boxes, labels, CONFIG)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"xy", "wh", "objectness", "class"}
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    (best, *_) = detect(model, x, [7], [10, 20, 30], score_threshold=0.3)
    assert best.image_id == 7 and best.category_id == 20
    x1, y1, w, h = best.bbox
    assert box_iou([[x1, y1, x1 + w, y1 + h]], boxes[0])[0, 0] > 0.7
