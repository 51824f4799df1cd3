"""Boxes: the three formats, conversions, checks, and pairwise IoU, GIoU, DIoU and CIoU.

Coordinates are continuous (a box from x1 = 0 to x2 = 10 is 10 wide), as in COCO and
torchvision; the VOC devkit's "+1 pixel" convention is not used. Every function takes
NumPy arrays or torch tensors and returns the same kind, so one formula serves both:
tensors stay tensors (in a training loop, on a GPU). On the CPU NumPy is the faster of
the two (``benchmarks/detect_speed.py``).

Formats, one box a row:

    xyxy    (x1, y1, x2, y2)   corners, x1 ≤ x2 and y1 ≤ y2
    xywh    (x, y, w, h)       top-left corner and size (COCO's ``bbox``)
    cxcywh  (cx, cy, w, h)     centre and size (what YOLO predicts)
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from convlens.errors import DataError


class BoxFormat(StrEnum):
    xyxy = "xyxy"
    xywh = "xywh"
    cxcywh = "cxcywh"


# DIoU and CIoU divide by the enclosing box's squared diagonal and by (1 − IoU + v);
# torchvision.ops.distance_box_iou / complete_box_iou add this ε to both, and so do we.
EPS = 1e-7


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(columns: list[Any], like: Any) -> Any:
    if _is_torch(like):
        import torch

        return torch.stack(columns, dim=-1)
    return np.stack(columns, axis=-1)


def _as_boxes(boxes: Any) -> Any:
    """A tensor stays a tensor; anything else becomes a float64 array of shape (N, 4)."""
    if _is_torch(boxes):
        return boxes.reshape(-1, 4) if boxes.numel() == 0 else boxes
    array = np.asarray(boxes, dtype=np.float64)
    return array.reshape(0, 4) if array.size == 0 else array


def convert(boxes: Any, source: BoxFormat | str, target: BoxFormat | str) -> Any:
    """Boxes from one format to another; the last axis holds the four numbers."""
    source, target = BoxFormat(source), BoxFormat(target)
    boxes = _as_boxes(boxes)
    if source is target:
        return boxes
    a, b, c, d = (boxes[..., i] for i in range(4))
    if source is BoxFormat.xywh:
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif source is BoxFormat.cxcywh:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    else:
        x1, y1, x2, y2 = a, b, c, d
    if target is BoxFormat.xyxy:
        return _stack([x1, y1, x2, y2], boxes)
    if target is BoxFormat.xywh:
        return _stack([x1, y1, x2 - x1, y2 - y1], boxes)
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def check_boxes(boxes: Any, name: str = "boxes", fmt: BoxFormat | str = "xyxy") -> np.ndarray:
    """The boxes as a float64 (N, 4) array, or a ``DataError`` naming the first bad one.

    A bad box has a coordinate that is not finite, x2 < x1 or y2 < y1 (for xyxy), or a
    negative width or height (xywh, cxcywh). Zero-area boxes are allowed: their IoU with
    anything is 0.
    """
    array = np.asarray(boxes.detach().cpu() if _is_torch(boxes) else boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise DataError(
            f"{name}: expected one box of 4 numbers a row ({fmt}), got an array of shape "
            f"{array.shape}."
        )
    fmt = BoxFormat(fmt)
    finite = np.all(np.isfinite(array), axis=1)
    if fmt is BoxFormat.xyxy:
        inverted = (array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1])
    else:
        inverted = (array[:, 2] < 0) | (array[:, 3] < 0)
    bad = np.flatnonzero(~finite | inverted)  # vectorised; the loop below names the first
    for i in bad[:1]:
        row = array[i]
        if not finite[i]:
            raise DataError(f"{name}: box {i} {_show(row)} has a coordinate that is not finite.")
        if fmt is BoxFormat.xyxy:
            axis = "x2 < x1" if row[2] < row[0] else "y2 < y1"
            raise DataError(
                f"{name}: box {i} {_show(row)} has {axis}; xyxy boxes need x1 ≤ x2 and y1 ≤ y2."
            )
        raise DataError(f"{name}: box {i} {_show(row)} has a negative width or height ({fmt}).")
    return array


def check_scores(scores: Any, count: int, name: str = "scores") -> np.ndarray:
    """Scores as a float64 vector of ``count`` finite numbers, or a ``DataError`` naming one."""
    array = np.asarray(scores.detach().cpu() if _is_torch(scores) else scores, dtype=np.float64)
    array = array.reshape(-1)
    if array.shape[0] != count:
        raise DataError(f"{name}: {array.shape[0]} scores for {count} boxes; give one a box.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{name}: score {bad[0]} is {array[bad[0]]}; scores must be finite.")
    return array


def check_threshold(value: float, name: str = "iou_threshold") -> float:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise DataError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def _show(row: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in row) + ")"


def box_area(boxes: Any) -> Any:
    """(x2 − x1)·(y2 − y1) of xyxy boxes."""
    boxes = _as_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _where(condition: Any, a: Any, b: Any) -> Any:
    if _is_torch(condition):
        import torch

        return torch.where(condition, a, b)
    return np.where(condition, a, b)


def _clip0(x: Any) -> Any:
    return x.clamp(min=0) if _is_torch(x) else np.maximum(x, 0.0)


def _pairwise(a: Any, b: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(N, M) intersection, union and IoU, plus the enclosing box's corners (N, M, 2) each.

    IoU is 0 where the intersection is empty, which also covers two zero-area boxes
    (0/0: torchvision returns NaN there; COCOeval's ``bbIou`` returns 0, as here).
    """
    a, b = _as_boxes(a), _as_boxes(b)
    area_a, area_b = box_area(a), box_area(b)
    lt = _maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2): intersection's top-left
    rb = _minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2): its bottom-right
    wh = _clip0(rb - lt)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    positive = inter > 0
    iou = _where(positive, inter / _where(positive, union, 1.0), 0.0 * inter)
    outer_lt = _minimum(a[:, None, :2], b[None, :, :2])
    outer_rb = _maximum(a[:, None, 2:], b[None, :, 2:])
    return inter, union, iou, outer_lt, outer_rb


def _maximum(x: Any, y: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.maximum(x, y)
    return np.maximum(x, y)


def _minimum(x: Any, y: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.minimum(x, y)
    return np.minimum(x, y)


def _atan(x: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.atan(x)
    return np.arctan(x)


def box_iou(a: Any, b: Any) -> Any:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy → (N, M).

    IoU = |A ∩ B| / |A ∪ B|; 0 for boxes that do not overlap.
    """
    return _pairwise(a, b)[2]


def generalized_box_iou(a: Any, b: Any) -> Any:
    """GIoU = IoU − |C \\ (A ∪ B)| / |C|, C the smallest box enclosing both (Rezatofighi 2019).

    In [−1, 1]; −1 only in the limit of tiny boxes far apart. Where C has no area (two
    identical points), GIoU = IoU = 0.
    """
    _, union, iou, lt, rb = _pairwise(a, b)
    wh = _clip0(rb - lt)
    enclosing = wh[..., 0] * wh[..., 1]
    positive = enclosing > 0
    return iou - _where(positive, (enclosing - union) / _where(positive, enclosing, 1.0), 0.0)


def _centre_penalty(a: Any, b: Any) -> tuple[Any, Any]:
    """IoU and ρ²/(c² + ε): squared centre distance over the enclosing box's squared diagonal."""
    _, _, iou, lt, rb = _pairwise(a, b)
    a, b = _as_boxes(a), _as_boxes(b)
    diagonal = ((rb - lt) ** 2).sum(-1) + EPS  # (N, M)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    distance = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(-1)  # (N, M)
    return iou, distance / diagonal


def distance_box_iou(a: Any, b: Any) -> Any:
    """DIoU = IoU − ρ²(centre_a, centre_b) / (c² + ε), c the enclosing box's diagonal.

    Zheng et al. 2020: the penalty pulls centres together even when boxes do not overlap.
    """
    iou, penalty = _centre_penalty(a, b)
    return iou - penalty


def complete_box_iou(a: Any, b: Any) -> Any:
    """CIoU = DIoU − α·v, v = 4/π²·(atan(w_b/h_b) − atan(w_a/h_a))², α = v / (1 − IoU + v + ε).

    v measures how the aspect ratios differ (Zheng 2020); α weighs it more as IoU grows.
    A box with zero height has aspect angle π/2 (atan(+∞)).
    """
    iou, penalty = _centre_penalty(a, b)
    a, b = _as_boxes(a), _as_boxes(b)
    angle_a = _aspect_angle(a)
    angle_b = _aspect_angle(b)
    v = (4 / math.pi**2) * (angle_b[None, :] - angle_a[:, None]) ** 2
    alpha = v / (1 - iou + v + EPS)
    return iou - penalty - alpha * v


def _aspect_angle(boxes: Any) -> Any:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    flat = h <= 0
    with np.errstate(over="ignore"):  # w / (a subnormal h) = ∞ → atan = π/2, as it should
        ratio = w / _where(flat, 1.0 + 0.0 * h, h)
    return _where(flat, math.pi / 2 + 0.0 * h, _atan(ratio))


IOU_KINDS = {
    "iou": box_iou,
    "giou": generalized_box_iou,
    "diou": distance_box_iou,
    "ciou": complete_box_iou,
}
