"""A small YOLO-style detector, its target assignment and loss: the detection lab's model.

One output map at stride 8 with A anchors per cell, decoded exactly as YOLOv2 decodes
(``decode.decode_anchor_map``: σ offsets in the cell, anchor · e^t sizes, σ objectness,
softmax classes). Targets follow YOLOv2/v3: a ground-truth box belongs to the cell that
holds its centre and to the anchor whose shape fits it best (IoU of sizes); that one
prediction learns the box and the class, every other prediction learns "no object",
except those whose decoded box already overlaps a ground truth by more than
``ignore_iou`` (YOLOv3's ignore rule: they are neither pushed up nor down).

    loss = Σ_pos [BCE(σ(t_xy), offset) + (2 − wh/img²)·(t_wh − log(wh / anchor))²
                  + BCE(σ(t_o), 1) + CE(classes)]  +  Σ_neg BCE(σ(t_o), 0),   / batch size
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.detection.anchors import wh_iou
from convlens.detection.boxes import box_iou, convert
from convlens.detection.coco import Detection
from convlens.detection.decode import ClassActivation, decode_anchor_map, select_boxes


@dataclass(frozen=True)
class TinyYoloConfig:
    num_classes: int = 3
    anchors: tuple[tuple[float, float], ...] = ((12.0, 12.0), (20.0, 20.0), (28.0, 28.0))  # px
    stride: int = 8
    width: int = 16  # w: the layers have w, 2w, 4w and 8w channels as the resolution halves
    ignore_iou: float = 0.5


def _conv(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
    )


class TinyYolo(nn.Module):
    """Darknet-style conv–BN–leaky blocks down to stride 8, a 1×1 head to A·(5 + C).

    The first convolution has stride 2 instead of a full-resolution convolution and a
    max-pool: on a CPU the full-resolution activations cost more than all the rest
    (a training step on 32 images of 64² takes about a tenth of the time).
    Receptive field of an output cell: 61 pixels, twice the largest shape.
    """

    def __init__(self, config: TinyYoloConfig = TinyYoloConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.features = nn.Sequential(
            _conv(3, w, stride=2),  # (N, w, H/2, W/2)
            _conv(w, 2 * w),
            nn.MaxPool2d(2),  # (N, 2w, H/4, W/4)
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w),
            nn.MaxPool2d(2),  # (N, 4w, H/8, W/8)
            _conv(4 * w, 8 * w),
            _conv(8 * w, 8 * w),  # (N, 8w, H/8, W/8)
        )
        outputs = len(config.anchors) * (5 + config.num_classes)
        self.head = nn.Conv2d(8 * w, outputs, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, A·(5 + C), H/8, W/8)


@dataclass(frozen=True)
class Targets:
    """Per prediction (N, A, H, W): which learn a box, and what they learn."""

    positive: torch.Tensor  # bool
    ignore: torch.Tensor  # bool: negatives left out of the objectness loss
    offset: torch.Tensor  # (N, A, H, W, 2): centre within the cell, in (0, 1)
    log_size: torch.Tensor  # (N, A, H, W, 2): log(w / anchor_w), log(h / anchor_h)
    size_weight: torch.Tensor  # (N, A, H, W): 2 − w·h / image area
    label: torch.Tensor  # (N, A, H, W) long


def assign_targets(
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    decoded: torch.Tensor,
    config: TinyYoloConfig,
    grid: tuple[int, int],
) -> Targets:
    """YOLOv2/v3 assignment. ``boxes[n]`` (K, 4) xyxy pixels, ``labels[n]`` (K,) class indices;
    ``decoded`` (N, A·H·W, 5 + C) the current predictions (for the ignore rule)."""
    n, (h, w), a = len(boxes), grid, len(config.anchors)
    positive = torch.zeros(n, a, h, w, dtype=torch.bool)
    ignore = torch.zeros(n, a, h, w, dtype=torch.bool)
    offset = torch.zeros(n, a, h, w, 2)
    log_size = torch.zeros(n, a, h, w, 2)
    size_weight = torch.zeros(n, a, h, w)
    label = torch.zeros(n, a, h, w, dtype=torch.long)
    anchors = np.asarray(config.anchors, float)
    image_area = h * w * config.stride**2
    # on the CPU, as the targets are built: the boxes come as NumPy arrays
    predicted = convert(decoded[..., :4].detach().to("cpu", torch.float64), "cxcywh", "xyxy")
    for i, (image_boxes, image_labels) in enumerate(zip(boxes, labels, strict=True)):
        if len(image_boxes) == 0:
            continue
        overlap = box_iou(predicted[i], torch.as_tensor(image_boxes, dtype=torch.float64))
        ignore[i] = (overlap.max(1).values > config.ignore_iou).view(a, h, w)
        sizes = np.stack(
            [image_boxes[:, 2] - image_boxes[:, 0], image_boxes[:, 3] - image_boxes[:, 1]], 1
        )
        best = wh_iou(np.maximum(sizes, 1e-6), anchors).argmax(1)
        for box, size, cls, k in zip(image_boxes, sizes, image_labels, best, strict=True):
            cx, cy = (box[0] + box[2]) / 2 / config.stride, (box[1] + box[3]) / 2 / config.stride
            col, row = min(int(cx), w - 1), min(int(cy), h - 1)
            positive[i, k, row, col] = True
            offset[i, k, row, col] = torch.tensor([cx - col, cy - row]).clamp(1e-4, 1 - 1e-4)
            log_size[i, k, row, col] = torch.as_tensor(np.log(np.maximum(size, 1e-6) / anchors[k]))
            size_weight[i, k, row, col] = 2 - size[0] * size[1] / image_area
            label[i, k, row, col] = int(cls)
    return Targets(positive, ignore & ~positive, offset, log_size, size_weight, label)


def decode(raw: torch.Tensor, config: TinyYoloConfig) -> torch.Tensor:
    """(N, A·(5 + C), H, W) → (N, A·H·W, 5 + C) pixels: the YOLOv2 decoder, softmax classes."""
    return decode_anchor_map(raw, config.anchors, config.stride, ClassActivation.softmax)


def yolo_loss(
    raw: torch.Tensor,
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    config: TinyYoloConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its four parts (for logging), each divided by the batch size."""
    n, _, h, w = raw.shape
    a = len(config.anchors)
    with torch.no_grad():
        targets = assign_targets(boxes, labels, decode(raw, config), config, (h, w))
    targets = Targets(*(getattr(targets, f.name).to(raw.device) for f in fields(Targets)))
    p = raw.view(n, a, 5 + config.num_classes, h, w).permute(0, 1, 3, 4, 2)  # (N, A, H, W, 5+C)
    pos = targets.positive
    xy = F.binary_cross_entropy_with_logits(p[..., :2][pos], targets.offset[pos], reduction="sum")
    wh = (targets.size_weight[pos][:, None] * (p[..., 2:4][pos] - targets.log_size[pos]) ** 2).sum()
    objectness_target = pos.float()
    counted = ~targets.ignore
    obj = F.binary_cross_entropy_with_logits(
        p[..., 4][counted], objectness_target[counted], reduction="sum"
    )
    cls = F.cross_entropy(p[..., 5:][pos], targets.label[pos], reduction="sum")
    parts = {"xy": xy, "wh": wh, "objectness": obj, "class": cls}
    total = (xy + wh + obj + cls) / n
    return total, {k: float(v.detach()) / n for k, v in parts.items()}


@torch.no_grad()
def detect(
    model: TinyYolo,
    images: torch.Tensor,
    image_ids: Sequence[int],
    category_ids: Sequence[int],
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
) -> list[Detection]:
    """COCO detections (xywh) for a batch of images (N, 3, H, W) in [0, 1]."""
    model.eval()
    decoded = decode(model(images), model.config)
    detections = []
    for image_id, result in zip(
        image_ids, select_boxes(decoded, score_threshold, iou_threshold), strict=True
    ):
        for box, score, cls in list(zip(result.boxes, result.scores, result.classes, strict=True))[
            :max_detections
        ]:
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append(
                Detection(
                    int(image_id), int(category_ids[cls]), (x1, y1, x2 - x1, y2 - y1), float(score)
                )
            )
    return detections
