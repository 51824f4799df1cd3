"""Mean average precision: COCO's evaluation (as pycocotools' COCOeval) and PASCAL VOC's.

COCO (``evaluate_coco``), per category, image and area range:

1. detections sorted by score (ties: file order), at most ``max_dets[-1]`` per image;
   ground truth outside the area range or crowd is *ignored* and sorted last;
2. for each IoU threshold t ∈ {0.50, 0.55, …, 0.95} each detection, best score first,
   takes the unmatched ground truth with the highest IoU ≥ t (a crowd box may be taken
   again; its IoU is intersection / detection area); a match to an ignored box, or no
   match for a detection outside the area range, is ignored;
3. over all images the detections are ranked by score and AP is read at 101 recall
   points (``ap.ap_coco101``). A category with no non-ignored ground truth gets no AP and
   is left out of the mean (COCOeval's −1), whatever its detections.

The twelve summary numbers are COCOeval's ``stats``: AP over IoU 0.50:0.95, at 0.50
and 0.75, AP for small / medium / large boxes, AR at 1, 10, 100 detections per image,
and AR for small / medium / large. ``tests/detection/test_evaluate.py`` checks all of
them against pycocotools on hundreds of random sets.

VOC (``evaluate_voc``) matches each detection to the ground truth of highest IoU; at
IoU ≥ 0.5 it is a true positive unless that box was already taken (then false
positive) or is marked difficult (``iscrowd`` here: then ignored). AP is the 11-point
(VOC2007) or all-point (VOC2010+) interpolation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from convlens.detection.ap import (
    APResult,
    Interpolation,
    PRCurve,
    ap_coco101,
    average_precision,
    pr_curve,
)
from convlens.detection.coco import Annotation, Detection, GroundTruth

# pycocotools' Params.setDetParams, to the float.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0**2, 1e5**2),
    "small": (0**2, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
}
MAX_DETS = (1, 10, 100)

# (label, AP or AR, IoU threshold or None for 0.50:0.95, area range, max detections)
SUMMARY = (
    ("AP", "ap", None, "all", 100),
    ("AP50", "ap", 0.5, "all", 100),
    ("AP75", "ap", 0.75, "all", 100),
    ("AP_small", "ap", None, "small", 100),
    ("AP_medium", "ap", None, "medium", 100),
    ("AP_large", "ap", None, "large", 100),
    ("AR1", "ar", None, "all", 1),
    ("AR10", "ar", None, "all", 10),
    ("AR100", "ar", None, "all", 100),
    ("AR_small", "ar", None, "small", 100),
    ("AR_medium", "ar", None, "medium", 100),
    ("AR_large", "ar", None, "large", 100),
)


def coco_iou(dt_xywh: ArrayLike, gt_xywh: ArrayLike, crowd: ArrayLike) -> np.ndarray:
    """(D, G) IoU of xywh boxes with pycocotools' ``bbIou`` arithmetic, operation for operation.

    For a crowd ground-truth box the union is the detection's area alone.
    """
    d = np.asarray(dt_xywh, float).reshape(-1, 4)[:, None, :]  # (D, 1, 4)
    g = np.asarray(gt_xywh, float).reshape(-1, 4)[None, :, :]  # (1, G, 4)
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da, ga = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = np.where(np.asarray(crowd, bool)[None, :], da, da + ga - inter)
    overlap = (w > 0) & (h > 0)
    return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


@dataclass(frozen=True)
class ImageMatch:
    """One image, one category, one area range: who matched whom at each IoU threshold."""

    image_id: int
    scores: np.ndarray  # (D,) by decreasing score, at most max_dets[-1]
    detections: tuple[Detection, ...]  # in that order
    matched: np.ndarray  # (T, D) bool
    ignored: np.ndarray  # (T, D) bool
    match_gt: np.ndarray  # (T, D) annotation id matched, −1 if none
    match_iou: np.ndarray  # (T, D) its IoU, nan if none
    gt_ignored: np.ndarray  # (G,) bool


def match_image(
    image_id: int,
    gts: Sequence[Annotation],
    dts: Sequence[Detection],
    area_range: tuple[float, float],
    ious: np.ndarray,
    max_det: int,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> ImageMatch | None:
    """COCOeval.evaluateImg: ``dts`` already sorted by score, ``ious`` (D, G) in ``gts`` order."""
    if not gts and not dts:
        return None
    low, high = area_range
    ignore = np.array([g.iscrowd or g.area < low or g.area > high for g in gts], dtype=bool)
    gt_order = np.argsort(ignore, kind="mergesort")  # ignored ground truth last
    gts = [gts[i] for i in gt_order]
    ignore = ignore[gt_order]
    crowd = [g.iscrowd for g in gts]
    dts = list(dts[:max_det])
    ious = ious[: len(dts)][:, gt_order] if ious.size else ious
    t_count, d_count = len(thresholds), len(dts)
    matched = np.zeros((t_count, d_count), bool)
    ignored = np.zeros((t_count, d_count), bool)
    match_gt = np.full((t_count, d_count), -1, dtype=np.int64)
    match_iou = np.full((t_count, d_count), np.nan)
    if ious.size:
        for t_index, t in enumerate(thresholds):
            taken = np.zeros(len(gts), bool)
            for d_index in range(d_count):
                best_iou = min(t, 1 - 1e-10)
                best = -1
                for g_index in range(len(gts)):
                    if taken[g_index] and not crowd[g_index]:
                        continue
                    # A match to a counted box is never traded for an ignored one.
                    if best > -1 and not ignore[best] and ignore[g_index]:
                        break
                    if ious[d_index, g_index] < best_iou:
                        continue
                    best_iou, best = ious[d_index, g_index], g_index
                if best == -1:
                    continue
                taken[best] = True
                matched[t_index, d_index] = True
                ignored[t_index, d_index] = ignore[best]
                match_gt[t_index, d_index] = gts[best].id
                match_iou[t_index, d_index] = ious[d_index, best]
    areas = np.array([d.bbox[2] * d.bbox[3] for d in dts], float)  # loadRes: area = w·h
    outside = (areas < low) | (areas > high)
    ignored |= ~matched & outside.reshape(1, -1)
    scores = np.array([d.score for d in dts], float)
    return ImageMatch(image_id, scores, tuple(dts), matched, ignored, match_gt, match_iou, ignore)


@dataclass(frozen=True)
class RankedDetection:
    """A row of the precision–recall table (explain): one detection in the overall ranking."""

    image_id: int
    bbox: tuple[float, float, float, float]
    score: float
    outcome: str  # "TP", "FP" or "ignored"
    matched_gt: int  # annotation id, −1 if none
    iou: float  # with it (nan if none)
    reason: str  # why, in words

    @property
    def ignored(self) -> bool:
        return self.outcome == "ignored"


@dataclass(frozen=True)
class ClassCurve:
    """One category at one IoU threshold, area range and detection limit."""

    category_id: int
    iou_threshold: float
    curve: PRCurve
    ranked: tuple[RankedDetection, ...]  # all ranked detections, ignored ones included
    ap: APResult


def accumulate(
    matches: Sequence[ImageMatch],
    max_det: int,
    t_index: int,
    category_id: int,
    threshold: float,
    with_rows: bool = True,
) -> ClassCurve | None:
    """COCOeval.accumulate for one (category, area, max_det, IoU): None when it has no AP.

    ``with_rows``: also keep the ranked detections with the reason for each (for
    ``--explain``; building them costs more than the rest together).
    """
    if not matches:
        return None
    scores = np.concatenate([m.scores[:max_det] for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched[t_index, :max_det] for m in matches])[order]
    ignored = np.concatenate([m.ignored[t_index, :max_det] for m in matches])[order]
    positives = int(sum(np.count_nonzero(~m.gt_ignored) for m in matches))
    if positives == 0:
        return None
    rows = [
        _coco_row(m.image_id, d, int(g), float(v), bool(ig), threshold)
        for m in (matches if with_rows else ())
        for d, g, v, ig in zip(
            m.detections[:max_det],
            m.match_gt[t_index, :max_det],
            m.match_iou[t_index, :max_det],
            m.ignored[t_index, :max_det],
            strict=True,
        )
    ]
    ranked = tuple(rows[i] for i in order) if with_rows else ()
    keep = ~ignored
    curve = pr_curve(scores[order][keep], matched[keep], positives, coco=True)
    return ClassCurve(category_id, threshold, curve, ranked, ap_coco101(curve))


def _coco_row(
    image_id: int, d: Detection, gt_id: int, iou: float, ignored: bool, threshold: float
) -> RankedDetection:
    if gt_id >= 0:
        if ignored:
            reason = f"matches annotation {gt_id} (IoU {iou:.3f}), which is ignored"
            return RankedDetection(image_id, d.bbox, d.score, "ignored", gt_id, iou, reason)
        reason = f"IoU {iou:.3f} ≥ {threshold:.2f} with annotation {gt_id}"
        return RankedDetection(image_id, d.bbox, d.score, "TP", gt_id, iou, reason)
    if ignored:
        reason = "unmatched and outside the area range"
        return RankedDetection(image_id, d.bbox, d.score, "ignored", -1, iou, reason)
    reason = f"no unmatched ground truth with IoU ≥ {threshold:.2f}"
    return RankedDetection(image_id, d.bbox, d.score, "FP", -1, iou, reason)


@dataclass(frozen=True)
class CocoEvaluation:
    """COCOeval's results: ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M), −1 = none."""

    ground_truth: GroundTruth
    category_ids: tuple[int, ...]
    precision: np.ndarray
    recall: np.ndarray
    stats: dict[str, float]
    curves: dict[tuple[int, int], ClassCurve] = field(default_factory=dict)  # (k, t), all/100

    def class_ap(self, category_id: int, iou: float | None = None) -> float | None:
        """AP of one category over IoU 0.50:0.95 (or at ``iou``), all areas, 100 dets."""
        k = self.category_ids.index(category_id)
        p = self.precision[:, :, k, 0, -1]
        if iou is not None:
            p = p[iou == IOU_THRESHOLDS]
        p = p[p > -1]
        return float(p.mean()) if p.size else None


def _summarise(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    areas = list(AREA_RANGES)
    stats = {}
    for label, kind, iou, area, max_det in SUMMARY:
        a, m = areas.index(area), MAX_DETS.index(max_det)
        s = precision[..., a, m] if kind == "ap" else recall[..., a, m]
        if iou is not None:
            s = s[np.flatnonzero(iou == IOU_THRESHOLDS)]
        s = s[s > -1]
        stats[label] = float(np.mean(s)) if s.size else -1.0
    return stats


_Item = TypeVar("_Item")
_Key = TypeVar("_Key", bound=Hashable)


def _group(items: Iterable[_Item], key: Callable[[_Item], _Key]) -> dict[_Key, list[_Item]]:
    grouped: dict[_Key, list[_Item]] = defaultdict(list)
    for item in items:
        grouped[key(item)].append(item)
    return grouped


def evaluate_coco(gt: GroundTruth, detections: Sequence[Detection]) -> CocoEvaluation:
    """COCOeval(gt, dt, "bbox").evaluate(); accumulate(); summarize() — same numbers."""
    image_ids = sorted(im.id for im in gt.images)
    category_ids = tuple(sorted(c.id for c in gt.categories))
    gts = _group(gt.annotations, lambda a: (a.image_id, a.category_id))
    dts = _group(detections, lambda d: (d.image_id, d.category_id))
    sorted_dts: dict[tuple[int, int], list[Detection]] = {}
    ious: dict[tuple[int, int], np.ndarray] = {}
    for key, found in dts.items():
        order = np.argsort([-d.score for d in found], kind="mergesort")
        sorted_dts[key] = [found[i] for i in order][: MAX_DETS[-1]]
    for image_id in image_ids:
        for category_id in category_ids:
            key = (image_id, category_id)
            g, d = gts.get(key, []), sorted_dts.get(key, [])
            ious[key] = (
                coco_iou([x.bbox for x in d], [x.bbox for x in g], [x.iscrowd for x in g])
                if g and d
                else np.zeros((0, 0))
            )
    t_count, r_count = len(IOU_THRESHOLDS), 101
    shape = (len(category_ids), len(AREA_RANGES), len(MAX_DETS))
    precision = -np.ones((t_count, r_count, *shape))
    recall = -np.ones((t_count, *shape))
    curves: dict[tuple[int, int], ClassCurve] = {}
    for k, category_id in enumerate(category_ids):
        for a, area_range in enumerate(AREA_RANGES.values()):
            matches = []
            for image_id in image_ids:
                key = (image_id, category_id)
                match = match_image(
                    image_id,
                    gts.get(key, []),
                    sorted_dts.get(key, []),
                    area_range,
                    ious[key],
                    MAX_DETS[-1],
                )
                if match is not None:
                    matches.append(match)
            for m, max_det in enumerate(MAX_DETS):
                kept = a == 0 and m == len(MAX_DETS) - 1  # the curves explain shows
                for t, threshold in enumerate(IOU_THRESHOLDS):
                    result = accumulate(matches, max_det, t, category_id, float(threshold), kept)
                    if result is None:
                        continue
                    q = np.array([step.precision for step in result.ap.points])
                    precision[t, :, k, a, m] = q
                    recall[t, k, a, m] = result.curve.recall[-1] if result.curve.recall.size else 0
                    if kept:
                        curves[(category_id, t)] = result
    stats = _summarise(precision, recall)
    return CocoEvaluation(gt, category_ids, precision, recall, stats, curves)


# ----------------------------------------------------------------------------- VOC


@dataclass(frozen=True)
class VocEvaluation:
    interpolation: Interpolation
    iou_threshold: float
    curves: dict[int, ClassCurve]  # classes with ground truth only
    excluded: tuple[int, ...]  # categories without (non-difficult) ground truth

    @property
    def map(self) -> float | None:
        aps = [c.ap.ap for c in self.curves.values()]
        return float(np.mean(aps)) if aps else None


def voc_iou(dt_xywh: Sequence[Sequence[float]], gt_xywh: Sequence[Sequence[float]]) -> np.ndarray:
    return coco_iou(np.asarray(dt_xywh, float), np.asarray(gt_xywh, float), np.zeros(len(gt_xywh)))


def _voc_row(
    d: Detection, best: Annotation | None, iou: float, threshold: float, taken: set[int]
) -> RankedDetection:
    """The devkit's decision for one detection, given its best-overlapping ground truth."""
    if best is None:
        return RankedDetection(
            d.image_id, d.bbox, d.score, "FP", -1, float("nan"), "no ground truth of its class"
        )
    if iou <= 0:
        reason = "overlaps no ground truth of its class"
        return RankedDetection(d.image_id, d.bbox, d.score, "FP", -1, iou, reason)
    if iou < threshold:
        reason = f"best IoU {iou:.3f} < {threshold:.2f} (annotation {best.id})"
        return RankedDetection(d.image_id, d.bbox, d.score, "FP", -1, iou, reason)
    if best.iscrowd:
        reason = f"best match, annotation {best.id}, is difficult (iscrowd)"
        return RankedDetection(d.image_id, d.bbox, d.score, "ignored", best.id, iou, reason)
    if best.id in taken:
        reason = f"annotation {best.id} (IoU {iou:.3f}) was already detected"
        return RankedDetection(d.image_id, d.bbox, d.score, "FP", best.id, iou, reason)
    taken.add(best.id)
    reason = f"IoU {iou:.3f} ≥ {threshold:.2f} with annotation {best.id}"
    return RankedDetection(d.image_id, d.bbox, d.score, "TP", best.id, iou, reason)


def evaluate_voc(
    gt: GroundTruth,
    detections: Sequence[Detection],
    interpolation: Interpolation | str = Interpolation.voc,
    iou_threshold: float = 0.5,
) -> VocEvaluation:
    """PASCAL VOC AP per class (the devkit's VOCevaldet matching: IoU ≥ threshold).

    Crowd boxes stand for VOC's *difficult* objects: a detection whose best match is one
    is neither a true nor a false positive, and they do not count in P.
    """
    interpolation = Interpolation(interpolation)
    curves: dict[int, ClassCurve] = {}
    excluded = []
    by_image = _group(gt.annotations, lambda a: (a.image_id, a.category_id))
    for category in sorted(gt.categories, key=lambda c: c.id):
        found = [d for d in detections if d.category_id == category.id]
        order = np.argsort([-d.score for d in found], kind="mergesort")
        found = [found[i] for i in order]
        positives = sum(1 for a in gt.annotations if a.category_id == category.id and not a.iscrowd)
        if positives == 0:
            excluded.append(category.id)
            continue
        taken: set[int] = set()
        rows, flags, scores = [], [], []
        for d in found:
            candidates = by_image.get((d.image_id, category.id), [])
            best, best_iou = -1, -np.inf
            if candidates:
                overlaps = voc_iou([d.bbox], [c.bbox for c in candidates])[0]
                best = int(np.argmax(overlaps))
                best_iou = float(overlaps[best])
            row = _voc_row(
                d, candidates[best] if best >= 0 else None, best_iou, iou_threshold, taken
            )
            rows.append(row)
            if row.outcome != "ignored":
                flags.append(row.outcome == "TP")
                scores.append(d.score)
        curve = pr_curve(np.asarray(scores), np.asarray(flags, bool), positives)
        curves[category.id] = ClassCurve(
            category.id, iou_threshold, curve, tuple(rows), average_precision(curve, interpolation)
        )
    return VocEvaluation(interpolation, iou_threshold, curves, tuple(excluded))
