"""Non-maximum suppression: greedy (torchvision.ops.nms semantics), class-aware, Soft-NMS.

Greedy NMS visits the boxes in decreasing score order (equal scores: the earlier box
first) and keeps a box unless its IoU with an already kept box *exceeds* the threshold.
Each function can also return the steps it took (``explain=True``): which box was kept,
which boxes it suppressed and at what IoU, so a student can check a hand calculation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from convlens.detection.boxes import (
    _is_torch,
    box_iou,
    check_boxes,
    check_scores,
    check_threshold,
)
from convlens.errors import DataError


@dataclass(frozen=True)
class Suppression:
    """What one kept box did to a later box: its IoU, and whether it exceeded the threshold."""

    index: int
    iou: float
    suppressed: bool


@dataclass(frozen=True)
class NmsStep:
    """One kept box and its comparison with every box still waiting (greedy NMS)."""

    kept: int
    score: float
    compared: tuple[Suppression, ...]

    @property
    def suppressed(self) -> tuple[int, ...]:
        return tuple(s.index for s in self.compared if s.suppressed)


@dataclass(frozen=True)
class NmsResult:
    """Kept indices in decreasing score order, and the steps that led there."""

    keep: np.ndarray  # int64 indices into the input
    threshold: float
    order: np.ndarray  # the visiting order: indices by decreasing score, ties by index
    steps: tuple[NmsStep, ...] = ()


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score; equal scores keep their original order (a stable sort)."""
    return np.argsort(-scores, kind="stable")


def _greedy(boxes: np.ndarray, scores: np.ndarray, threshold: float, explain: bool) -> NmsResult:
    order = score_order(scores)
    waiting = order
    keep: list[int] = []
    steps: list[NmsStep] = []
    while waiting.size:
        best, rest = int(waiting[0]), waiting[1:]
        keep.append(best)
        ious = box_iou(boxes[best : best + 1], boxes[rest])[0]  # (len(rest),)
        gone = ious > threshold
        if explain:
            compared = tuple(
                Suppression(int(j), float(v), bool(g))
                for j, v, g in zip(rest, ious, gone, strict=True)
            )
            steps.append(NmsStep(best, float(scores[best]), compared))
        waiting = rest[~gone]
    return NmsResult(np.asarray(keep, dtype=np.int64), threshold, order, tuple(steps))


def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Indices of the boxes greedy NMS keeps, by decreasing score (torchvision.ops.nms).

    ``boxes`` (N, 4) xyxy and ``scores`` (N,): NumPy arrays or torch tensors; the result
    is an int64 array or tensor of the same kind. A box is suppressed when its IoU with a
    kept box is greater than ``iou_threshold`` (a box at exactly the threshold stays).
    """
    result = nms_steps(boxes, scores, iou_threshold, explain=False)
    return _like(result.keep, boxes)


def nms_steps(boxes: Any, scores: Any, iou_threshold: float, explain: bool = True) -> NmsResult:
    """Greedy NMS with its working: for each kept box, the IoU with every box still waiting."""
    array = check_boxes(boxes)
    return _greedy(array, check_scores(scores, len(array)), check_threshold(iou_threshold), explain)


def _like(indices: np.ndarray, reference: Any) -> Any:
    if _is_torch(reference):
        import torch

        return torch.as_tensor(indices, dtype=torch.int64, device=reference.device)
    return indices


def _check_classes(classes: Any, count: int) -> np.ndarray:
    raw = classes.detach().cpu().numpy() if _is_torch(classes) else np.asarray(classes)
    raw = raw.reshape(-1)
    if raw.shape[0] != count:
        raise DataError(f"classes: {raw.shape[0]} class ids for {count} boxes; give one a box.")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        values = raw.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            raise DataError(f"classes: entry {bad[0]} is {raw[bad[0]]}; class ids are integers.")
    return raw.astype(np.int64)


def batched_nms(boxes: Any, scores: Any, classes: Any, iou_threshold: float) -> Any:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Equals NMS run on each class separately, the kept indices merged by decreasing
    score (ties by index) — what torchvision.ops.batched_nms returns.
    """
    return _like(batched_nms_steps(boxes, scores, classes, iou_threshold, False).keep, boxes)


def batched_nms_steps(
    boxes: Any, scores: Any, classes: Any, iou_threshold: float, explain: bool = True
) -> NmsResult:
    array = check_boxes(boxes)
    values = check_scores(scores, len(array))
    labels = _check_classes(classes, len(array))
    threshold = check_threshold(iou_threshold)
    keep: list[np.ndarray] = []
    steps: list[NmsStep] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        result = _greedy(array[members], values[members], threshold, explain)
        keep.append(members[result.keep])
        for step in result.steps:  # back to indices into the whole input
            compared = tuple(
                Suppression(int(members[s.index]), s.iou, s.suppressed) for s in step.compared
            )
            steps.append(NmsStep(int(members[step.kept]), step.score, compared))
    kept = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    kept = kept[np.lexsort((kept, -values[kept]))]  # by score, then index
    steps.sort(key=lambda s: (-s.score, s.kept))
    return NmsResult(kept.astype(np.int64), threshold, score_order(values), tuple(steps))


class SoftMethod(StrEnum):
    linear = "linear"
    gaussian = "gaussian"


@dataclass(frozen=True)
class Decay:
    """One box's score before and after a selected box decayed it."""

    index: int
    iou: float
    before: float
    after: float


@dataclass(frozen=True)
class SoftStep:
    selected: int
    score: float  # its (possibly decayed) score when it was selected
    decays: tuple[Decay, ...]
    dropped: tuple[int, ...]  # boxes whose score fell below score_threshold


@dataclass(frozen=True)
class SoftNmsResult:
    keep: np.ndarray  # indices in selection order
    scores: np.ndarray  # their scores when selected (decayed)
    method: SoftMethod
    steps: tuple[SoftStep, ...] = ()


def soft_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: SoftMethod | str = "linear",
    explain: bool = False,
) -> SoftNmsResult:
    """Soft-NMS (Bodla et al. 2017): decay the scores of overlapping boxes instead of removing them.

    Repeatedly select the box with the highest current score (ties: the lower index) and
    decay every remaining box i by its IoU with it:

        linear    s_i ← s_i · (1 − IoU)      when IoU > iou_threshold (else unchanged)
        gaussian  s_i ← s_i · exp(−IoU² / σ)  for every box

    Boxes whose score is or falls below ``score_threshold`` are dropped. Returns the selected
    indices in selection order with their decayed scores.
    """
    array = check_boxes(boxes)
    current = check_scores(scores, len(array)).copy()
    method = SoftMethod(method)
    threshold = check_threshold(iou_threshold)
    if not sigma > 0:
        raise DataError(f"sigma must be positive, got {sigma!r}.")
    waiting = np.flatnonzero(current >= score_threshold)  # too low from the start: dropped
    keep: list[int] = []
    kept_scores: list[float] = []
    steps: list[SoftStep] = []
    while waiting.size:
        best_position = int(np.argmax(current[waiting]))  # first of equal maxima
        best = int(waiting[best_position])
        keep.append(best)
        kept_scores.append(float(current[best]))
        waiting = np.delete(waiting, best_position)
        ious = box_iou(array[best : best + 1], array[waiting])[0]
        before = current[waiting].copy()
        if method is SoftMethod.linear:
            factor = np.where(ious > threshold, 1.0 - ious, 1.0)
        else:
            factor = np.exp(-(ious**2) / sigma)
        current[waiting] = before * factor
        low = current[waiting] < score_threshold
        if explain:
            decays = tuple(
                Decay(int(j), float(v), float(b), float(a))
                for j, v, b, a in zip(waiting, ious, before, current[waiting], strict=True)
            )
            steps.append(
                SoftStep(best, kept_scores[-1], decays, tuple(int(j) for j in waiting[low]))
            )
        waiting = waiting[~low]
    return SoftNmsResult(
        np.asarray(keep, dtype=np.int64), np.asarray(kept_scores), method, tuple(steps)
    )
