"""Average precision from a ranked list of detections: the three interpolations.

A precision–recall curve comes from the detections of one class sorted by decreasing
score, each marked true or false positive: after rank i,

    precision_i = TP_i / (TP_i + FP_i),   recall_i = TP_i / P    (P: ground-truth boxes).

AP is the area under the curve after it is made monotone (the *precision envelope*
p̂_i = max_{j ≥ i} precision_j), read three ways:

    voc07     11 points: mean over r ∈ {0, 0.1, …, 1} of max{precision_i : recall_i ≥ r}
              (0 where no rank reaches r) — PASCAL VOC 2007.
    voc       all points: Σ (r_{k+1} − r_k)·p̂ at each recall step — VOC 2010 and later.
    coco101   101 points: mean over r ∈ {0, 0.01, …, 1} of p̂ at the first rank whose recall
              is ≥ r (0 where none is) — COCO, per IoU threshold.

Each function returns the AP and the steps that produce it, for ``--explain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Interpolation(StrEnum):
    voc07 = "voc07"
    voc = "voc"
    coco101 = "coco101"


# COCOeval's own grids (pycocotools' Params.setDetParams): linspace, not arange, so that
# 0.75 and 0.3 are the floats everybody else compares with.
COCO_RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# k/10 exactly, so that a recall of 3/10 reaches the point 0.3 (np.arange(0, 1.1, 0.1), as in
# py-faster-rcnn, makes that point 0.30000000000000004 and misses it).
VOC07_RECALL_POINTS = np.arange(11) / 10


@dataclass(frozen=True)
class PRCurve:
    """Cumulative counts along the ranking of one class (ignored detections removed)."""

    scores: np.ndarray  # (D,) by decreasing score
    true_positive: np.ndarray  # (D,) bool
    positives: int  # P: ground-truth boxes that count
    precision: np.ndarray  # (D,)
    recall: np.ndarray  # (D,)

    @property
    def tp(self) -> np.ndarray:
        return np.cumsum(self.true_positive)

    @property
    def fp(self) -> np.ndarray:
        return np.cumsum(~self.true_positive)


def pr_curve(
    scores: np.ndarray, true_positive: np.ndarray, positives: int, coco: bool = False
) -> PRCurve:
    """Precision and recall after each rank; ``coco`` uses COCOeval's TP/(TP+FP+ε) exactly."""
    tp = np.cumsum(true_positive).astype(float)
    fp = np.cumsum(~np.asarray(true_positive, dtype=bool)).astype(float)
    if coco:
        precision = tp / (fp + tp + np.spacing(1))
    else:
        precision = tp / np.maximum(tp + fp, np.finfo(float).tiny)
    recall = tp / positives if positives else np.zeros_like(tp)
    return PRCurve(
        np.asarray(scores, float),
        np.asarray(true_positive, bool),
        positives,
        precision,
        recall,
    )


def envelope(precision: np.ndarray) -> np.ndarray:
    """p̂_i = max_{j ≥ i} p_j: the curve made monotone from the right."""
    return np.maximum.accumulate(np.asarray(precision, float)[::-1])[::-1]


@dataclass(frozen=True)
class PointStep:
    """One recall point r: the rank whose (envelope) precision is read there, or none."""

    recall_point: float
    rank: int | None  # 0-based rank read, None when no rank reaches r
    precision: float


@dataclass(frozen=True)
class SegmentStep:
    """All-point AP: one step of the recall axis and the envelope precision over it."""

    recall_from: float
    recall_to: float
    precision: float
    rank: int  # the rank where recall reaches recall_to

    @property
    def area(self) -> float:
        return (self.recall_to - self.recall_from) * self.precision


@dataclass(frozen=True)
class APResult:
    ap: float
    interpolation: Interpolation
    points: tuple[PointStep, ...] = ()
    segments: tuple[SegmentStep, ...] = ()


def ap_voc07(curve: PRCurve) -> APResult:
    """11-point AP: for r = 0, 0.1, …, 1 the best precision at recall ≥ r, averaged."""
    steps = []
    for r in VOC07_RECALL_POINTS:
        reached = np.flatnonzero(curve.recall >= r)
        if reached.size:
            best = int(reached[np.argmax(curve.precision[reached])])
            steps.append(PointStep(float(r), best, float(curve.precision[best])))
        else:
            steps.append(PointStep(float(r), None, 0.0))
    ap = float(np.mean([s.precision for s in steps]))
    return APResult(ap, Interpolation.voc07, points=tuple(steps))


def ap_all_points(curve: PRCurve) -> APResult:
    """VOC 2010+: the area under the precision envelope, a rectangle per recall step."""
    smooth = envelope(curve.precision)
    segments = []
    previous = 0.0
    for i, r in enumerate(curve.recall):
        if r > previous:
            segments.append(SegmentStep(previous, float(r), float(smooth[i]), i))
            previous = float(r)
    ap = float(sum(s.area for s in segments))
    return APResult(ap, Interpolation.voc, segments=tuple(segments))


def ap_coco101(curve: PRCurve) -> APResult:
    """COCO: the envelope read at the first rank with recall ≥ r for 101 recall points."""
    smooth = envelope(curve.precision)
    ranks = np.searchsorted(curve.recall, COCO_RECALL_POINTS, side="left")
    steps = tuple(
        PointStep(float(r), int(k), float(smooth[k]))
        if k < len(smooth)
        else PointStep(float(r), None, 0.0)
        for r, k in zip(COCO_RECALL_POINTS, ranks, strict=True)
    )
    ap = float(np.mean([s.precision for s in steps]))
    return APResult(ap, Interpolation.coco101, points=steps)


AP_FUNCTIONS = {
    Interpolation.voc07: ap_voc07,
    Interpolation.voc: ap_all_points,
    Interpolation.coco101: ap_coco101,
}


def average_precision(curve: PRCurve, interpolation: Interpolation | str) -> APResult:
    return AP_FUNCTIONS[Interpolation(interpolation)](curve)
