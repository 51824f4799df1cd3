"""Independent implementations for the detection tests: plain Python, one pair at a time.

They follow torchvision.ops' definitions (box_iou, generalized_box_iou, distance_box_iou,
complete_box_iou, nms, batched_nms), written from those definitions with scalar loops
and no code shared with ``convlens.detection`` — torchvision's compiled ops do not load
with this torch, so it cannot be called.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    if inter == 0:
        return 0.0
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def giou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if hull == 0:
        return iou(a, b)
    return iou(a, b) - (hull - union) / hull


def diou(a: list[float], b: list[float]) -> float:
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    return iou(a, b) - (dx * dx + dy * dy) / (cw * cw + ch * ch + EPS)


def ciou(a: list[float], b: list[float]) -> float:
    def angle(box: list[float]) -> float:
        w, h = box[2] - box[0], box[3] - box[1]
        with np.errstate(over="ignore"):  # a subnormal height: w / h = ∞
            return math.pi / 2 if h == 0 else math.atan(w / h)

    v = 4 / math.pi**2 * (angle(b) - angle(a)) ** 2
    alpha = v / (1 - iou(a, b) + v + EPS)
    return diou(a, b) - alpha * v


def nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Visit by (−score, index); keep a box unless a kept box overlaps it by more than t."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def batched_nms(
    boxes: list[list[float]], scores: list[float], classes: list[int], threshold: float
) -> list[int]:
    """Plain NMS within each class; all kept boxes merged by (−score, index).

    (torchvision shifts each class's boxes far apart and runs one NMS, which gives the
    same result except where the shift rounds away a tiny box's width.)
    """
    kept: list[int] = []
    for label in set(classes):
        members = [i for i, c in enumerate(classes) if c == label]
        chosen = nms([boxes[i] for i in members], [scores[i] for i in members], threshold)
        kept += [members[j] for j in chosen]
    return sorted(kept, key=lambda i: (-scores[i], i))
