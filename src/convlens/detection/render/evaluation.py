"""Evaluation of detections: precision–recall tables, AP interpolation worked out, the
COCO and PASCAL VOC summaries, and their JSON."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convlens.detection.ap import APResult, Interpolation, PointStep
from convlens.detection.evaluate import (
    IOU_THRESHOLDS,
    SUMMARY,
    ClassCurve,
    CocoEvaluation,
    VocEvaluation,
)
from convlens.detection.render.document import Doc, p4
from convlens.reference.writer import num

EXPLAIN_RANKS = 40  # rows of a precision–recall table before it is cut


# ----------------------------------------------------------------------------- AP


def _pr_table(doc: Doc, curve: ClassCurve) -> None:
    c = curve.curve
    doc.line(
        f"{c.positives} ground-truth boxes count (P); detections ranked by score, "
        "precision = TP/(TP + FP), recall = TP/P; ignored detections take no rank"
    )
    rows, counted = [], 0
    for rank_row in curve.ranked[:EXPLAIN_RANKS]:
        cells = [str(rank_row.image_id), num(rank_row.score), rank_row.outcome]
        if rank_row.ignored:
            rows.append(["—", *cells, "", "", "", "", rank_row.reason])
            continue
        i = counted
        counted += 1
        rows.append(
            [
                str(i + 1),
                *cells,
                str(int(c.tp[i])),
                str(int(c.fp[i])),
                p4(c.precision[i]),
                p4(c.recall[i]),
                rank_row.reason,
            ]
        )
    headers = ["rank", "image", "score", "result", "TP", "FP", "precision", "recall", "why"]
    doc.table(headers, rows, left=(0, 3, 8))
    if not curve.ranked:
        doc.line("no detections of this class: recall stays 0")
    if len(curve.ranked) > EXPLAIN_RANKS:
        doc.line(f"… {len(curve.ranked) - EXPLAIN_RANKS} more detections")


def _point_runs(points: Sequence[PointStep]) -> list[list[PointStep]]:
    """Consecutive recall points that read the same precision, and either all reach a rank
    or all reach none (an all-false-positive class reads 0 at rank 1 for r = 0 and 0 at no
    rank after it): each shown as one line."""
    runs: list[list[PointStep]] = []
    for point in points:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.precision == point.precision
            and (last.rank is None) == (point.rank is None)
        ):
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _interpolation_steps(doc: Doc, result: APResult) -> None:
    if result.interpolation is Interpolation.voc:
        doc.line("precision envelope p̂ = max precision at this rank or any later one;")
        doc.line("AP = Σ (recall step) × p̂ at the rank where recall reaches it:")
        terms = []
        for segment in result.segments:
            doc.item(
                f"recall {p4(segment.recall_from)} → {p4(segment.recall_to)} "
                f"(rank {segment.rank + 1}): {p4(segment.recall_to - segment.recall_from)} "
                f"× {p4(segment.precision)} = {p4(segment.area)}"
            )
            terms.append(p4(segment.area))
        doc.line(f"AP = {' + '.join(terms) if terms else '0'} = {p4(result.ap)}")
        return
    if result.interpolation is Interpolation.voc07:
        doc.line(
            "for r = 0, 0.1, …, 1: the highest precision at any rank with recall ≥ r (0 if none):"
        )
        for point in result.points:
            where = f"rank {point.rank + 1}" if point.rank is not None else "no rank reaches it"
            doc.item(f"r = {point.recall_point:.1f}: {p4(point.precision)} ({where})")
        total = sum(point.precision for point in result.points)
        doc.line(f"AP = {p4(total)} / 11 = {p4(result.ap)}")
        return
    doc.line(
        "precision envelope p̂ = max precision at this rank or any later one; for each of "
        "the 101 recall points r = 0, 0.01, …, 1, p̂ at the first rank with recall ≥ r (0 if none):"
    )
    terms = []
    for run in _point_runs(result.points):
        first, last = run[0], run[-1]
        if first.rank is None or last.rank is None:
            where = "no rank reaches them"
        elif first.rank == last.rank:
            where = f"rank {first.rank + 1}"
        else:
            where = f"ranks {first.rank + 1}–{last.rank + 1}"
        doc.item(
            f"r = {first.recall_point:.2f} … {last.recall_point:.2f} ({len(run)} points): "
            f"p̂ = {p4(first.precision)} ({where})"
        )
        terms.append(f"{len(run)}×{p4(first.precision)}")
    total = sum(point.precision for point in result.points)
    doc.line(f"AP = ({' + '.join(terms)}) / 101 = {p4(total)} / 101 = {p4(result.ap)}")


def render_curve(doc: Doc, name: str, curve: ClassCurve) -> None:
    doc.section(f"{name} at IoU {curve.iou_threshold:.2f}: precision–recall table")
    _pr_table(doc, curve)
    doc.section(
        f"{name} at IoU {curve.iou_threshold:.2f}: interpolation ({curve.ap.interpolation})"
    )
    _interpolation_steps(doc, curve.ap)


def render_coco(
    result: CocoEvaluation,
    explain_categories: Sequence[int],
    explain_iou: float,
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    gt = result.ground_truth
    doc.title(
        f"COCO evaluation (as pycocotools' COCOeval, bbox): {len(gt.images)} images, "
        f"{len(result.category_ids)} categories"
    )
    doc.section("Summary (COCOeval.stats)")
    labels = {
        "AP": "AP @ IoU 0.50:0.95, all areas, 100 dets",
        "AP50": "AP @ IoU 0.50",
        "AP75": "AP @ IoU 0.75",
        "AP_small": "AP small (area < 32²)",
        "AP_medium": "AP medium (32² – 96²)",
        "AP_large": "AP large (area > 96²)",
        "AR1": "AR, 1 detection per image",
        "AR10": "AR, 10 detections per image",
        "AR100": "AR, 100 detections per image",
        "AR_small": "AR small",
        "AR_medium": "AR medium",
        "AR_large": "AR large",
    }
    doc.table(
        ["statistic", "value"],
        [
            [labels[key], "—" if result.stats[key] < 0 else p4(result.stats[key])]
            for key, *_ in SUMMARY
        ],
    )
    doc.section("Per category (all areas, 100 detections per image)")
    rows, excluded = [], []
    for k in result.category_ids:
        ap = result.class_ap(k)
        count = sum(1 for a in gt.annotations if a.category_id == k and not a.iscrowd)
        if ap is None:
            excluded.append(gt.category_name(k))
            rows.append([gt.category_name(k), str(count), "—", "—", "—"])
            continue
        rows.append(
            [
                gt.category_name(k),
                str(count),
                p4(ap),
                p4(result.class_ap(k, 0.5) or 0.0),
                p4(result.class_ap(k, 0.75) or 0.0),
            ]
        )
    doc.table(["category", "ground truth", "AP", "AP50", "AP75"], rows)
    if excluded:
        doc.line(
            f"no ground truth (none, or only crowd boxes): {', '.join(excluded)} — no AP, left "
            "out of the mean, as COCOeval does"
        )
    t = int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, explain_iou))[0]) if explain_categories else 0
    for k in explain_categories:
        curve = result.curves.get((k, t))
        if curve is None:
            doc.section(f"{gt.category_name(k)}: no AP")
            doc.line("no ground truth of this category: COCOeval gives it −1 and leaves it out")
            continue
        render_curve(doc, gt.category_name(k), curve)
    return doc.text()


def render_voc(
    result: VocEvaluation,
    names: dict[int, str],
    explain_categories: Sequence[int],
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    style = (
        "VOC2007 11-point" if result.interpolation is Interpolation.voc07 else "VOC2010+ all-point"
    )
    doc.title(f"PASCAL VOC evaluation ({style} AP) at IoU ≥ {result.iou_threshold:.2f}")
    rows = [
        [names[k], str(c.curve.positives), p4(c.ap.ap)] for k, c in sorted(result.curves.items())
    ]
    doc.table(["category", "ground truth", "AP"], rows)
    if result.excluded:
        doc.line(
            "no ground truth: "
            + ", ".join(names[k] for k in result.excluded)
            + " — no AP, left out of the mean"
        )
    doc.line(f"mAP = {'—' if result.map is None else p4(result.map)}")
    for k in explain_categories:
        if k in result.curves:
            render_curve(doc, names[k], result.curves[k])
        else:
            doc.section(f"{names[k]}: no AP")
            doc.line("no ground truth of this category (difficult boxes do not count)")
    return doc.text()


# ----------------------------------------------------------------------------- JSON


def _or_none(value: float | None) -> float | None:
    return None if value is None or value < 0 else value


def coco_json(result: CocoEvaluation) -> dict[str, object]:
    """{"map", "map50", "map75", "per_class", "stats"}: null where COCOeval has −1."""
    gt = result.ground_truth
    per_class: dict[str, object] = {}
    for k in result.category_ids:
        ap = result.class_ap(k)
        per_class[gt.category_name(k)] = (
            {"ap": None, "excluded": "no ground truth: COCOeval gives −1 and leaves it out"}
            if ap is None
            else {"ap": ap, "ap50": result.class_ap(k, 0.5), "ap75": result.class_ap(k, 0.75)}
        )
    return {
        "map": _or_none(result.stats["AP"]),
        "map50": _or_none(result.stats["AP50"]),
        "map75": _or_none(result.stats["AP75"]),
        "per_class": per_class,
        "stats": {key: _or_none(v) for key, v in result.stats.items()},
    }


def voc_json(at: VocEvaluation, at75: VocEvaluation, names: dict[int, str]) -> dict[str, object]:
    """{"map", "map50", "map75", "per_class"}: VOC's mAP at the chosen IoU and at 0.75."""
    per_class: dict[str, object] = {}
    for k in sorted(names):
        curve = at.curves.get(k)
        per_class[names[k]] = (
            {"ap": curve.ap.ap, "ground_truth": curve.curve.positives}
            if curve
            else {"ap": None, "excluded": "no ground truth: left out of the mean"}
        )
    return {
        "map": at.map,
        "map50": at.map if at.iou_threshold == 0.5 else None,
        "map75": at75.map,
        "per_class": per_class,
    }
