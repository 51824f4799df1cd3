"""Text and Markdown for the detection results and their worked examples.

Only reads the numbers the other modules collected (``explain.PairWork``, ``nms.NmsStep``,
``decode.CellWork``, ``ap.APResult`` …); computes nothing new but sums shown for checking.
The text layout follows ``convlens op --explain``: a title, underlined sections, one
line of working per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from convlens.detection.anchors import AnchorClusters
from convlens.detection.ap import APResult, Interpolation, PointStep
from convlens.detection.decode import Boxes, CellWork
from convlens.detection.evaluate import (
    IOU_THRESHOLDS,
    SUMMARY,
    ClassCurve,
    CocoEvaluation,
    VocEvaluation,
)
from convlens.detection.explain import PairWork
from convlens.detection.nms import NmsResult, SoftNmsResult
from convlens.reference.writer import num

FORMATS = ("text", "markdown")
EXPLAIN_PAIRS = 12  # pairs worked out in full by `detect iou --explain`
EXPLAIN_RANKS = 40  # rows of a precision–recall table before it is cut


def p4(value: float) -> str:
    """A ratio to four decimals (IoU, precision, recall, AP)."""
    return "nan" if np.isnan(value) else f"{value:.4f}"


def box(values: Sequence[float]) -> str:
    return "(" + ", ".join(num(v) for v in values) + ")"


@dataclass
class Doc:
    """Lines in one format; ``section`` and ``table`` know how each format spells them."""

    fmt: str
    lines: list[str] = field(default_factory=list)

    def title(self, text: str) -> None:
        self.lines += [f"## {text}" if self.fmt == "markdown" else text, ""]

    def section(self, text: str) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")
        if self.fmt == "markdown":
            self.lines += [f"### {text}", ""]
        else:
            self.lines += [text, "-" * len(text)]

    def line(self, text: str = "") -> None:
        self.lines.append(text)

    def item(self, text: str) -> None:
        self.lines.append(f"- {text}" if self.fmt == "markdown" else f"  {text}")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
    ) -> None:
        """Markdown, or aligned text: the ``left`` columns (names, reasons) left, numbers right."""
        if self.fmt == "markdown":
            self.lines.append("| " + " | ".join(headers) + " |")
            self.lines.append("|" + "|".join("---:" for _ in headers) + "|")
            self.lines += ["| " + " | ".join(r) + " |" for r in rows]
            self.lines.append("")
            return
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if i in left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        self.lines.append(line(headers))
        self.lines += [line(r) for r in rows]

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- IoU


def render_iou(
    a: np.ndarray,
    b: np.ndarray,
    matrices: dict[str, np.ndarray],
    works: Sequence[tuple[int, int, PairWork]],
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    kinds = ", ".join(matrices)
    doc.title(
        f"{kinds} of {len(a)} box(es) a with {len(b)} box(es) b (xyxy, continuous coordinates)"
    )
    for kind, matrix in matrices.items():
        doc.section(f"{kind}: rows a, columns b")
        doc.table(
            ["", *(f"b{j}" for j in range(len(b)))],
            [[f"a{i}", *(p4(v) for v in row)] for i, row in enumerate(matrix)],
        )
    if works:
        doc.section("Working")
        for i, j, w in works:
            _iou_steps(doc, i, j, w, set(matrices))
        if len(works) < len(a) * len(b):
            doc.line(f"(the first {len(works)} of {len(a) * len(b)} pairs are worked out)")
    return doc.text()


def _iou_steps(doc: Doc, i: int, j: int, w: PairWork, kinds: set[str]) -> None:
    doc.line(f"a{i} {box(w.a)} and b{j} {box(w.b)}:")
    x1, y1, x2, y2 = w.intersection
    doc.item(
        f"intersection: x from max({num(w.a[0])}, {num(w.b[0])}) = {num(x1)} to "
        f"min({num(w.a[2])}, {num(w.b[2])}) = {num(x2)}, y from {num(y1)} to {num(y2)} → "
        f"{num(w.inter_w)} × {num(w.inter_h)} = {num(w.inter)}"
        + ("" if w.inter > 0 else " (no overlap)")
    )
    doc.item(
        f"union: {num(w.area_a)} + {num(w.area_b)} − {num(w.inter)} = {num(w.union)}; "
        f"IoU = {num(w.inter)} / {num(w.union)} = {p4(w.iou)}"
        if w.inter > 0
        else f"union: {num(w.area_a)} + {num(w.area_b)} = {num(w.union)}; IoU = 0"
    )
    if "giou" in kinds:
        doc.item(
            f"GIoU: enclosing box {box(w.enclosing)}, area C = {num(w.enclosing_area)}; "
            f"IoU − (C − union)/C = {p4(w.iou)} − ({num(w.enclosing_area)} − {num(w.union)})"
            f"/{num(w.enclosing_area)} = {p4(w.giou)}"
        )
    if "diou" in kinds or "ciou" in kinds:
        doc.item(
            f"DIoU: centres {box(w.centre_a)} and {box(w.centre_b)}, "
            f"ρ² = {num(w.centre_distance2)}; enclosing diagonal c² = {num(w.diagonal2)}; "
            f"IoU − ρ²/(c² + ε) = {p4(w.diou)}"
        )
    if "ciou" in kinds:
        doc.item(
            f"CIoU: aspect angles atan(w/h) = {w.angle_a:.4f} and {w.angle_b:.4f}; "
            f"v = 4/π²·(difference)² = {w.v:.4f}; α = v/(1 − IoU + v + ε) = {w.alpha:.4f}; "
            f"DIoU − α·v = {p4(w.ciou)}"
        )


# ----------------------------------------------------------------------------- NMS


def render_nms(
    result: NmsResult,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    explain: bool,
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    aware = " per class" if classes is not None else ""
    doc.title(
        f"greedy NMS{aware} of {len(boxes)} boxes at IoU threshold {num(result.threshold)}: "
        f"a box is suppressed when its IoU with a kept box is > {num(result.threshold)}"
    )
    if explain and len(boxes):
        doc.section("Boxes by decreasing score (ties: the earlier box first)")
        headers = ["rank", "box", "x1, y1, x2, y2", "score"] + (
            ["class"] if classes is not None else []
        )
        rows = [
            [str(r + 1), str(i), box(boxes[i]), num(scores[i])]
            + ([str(classes[i])] if classes is not None else [])
            for r, i in enumerate(result.order)
        ]
        doc.table(headers, rows)
        doc.section("Working")
        for step in result.steps:
            doc.line(
                f"keep box {step.kept} (score {num(step.score)}); compare the boxes still waiting:"
            )
            if not step.compared:
                doc.item("none left")
            for s in step.compared:
                verdict = (
                    f"> {num(result.threshold)} → suppressed"
                    if s.suppressed
                    else f"≤ {num(result.threshold)} → stays"
                )
                doc.item(f"box {s.index}: IoU {p4(s.iou)} {verdict}")
    doc.section("Result")
    if len(result.keep) == 0:
        doc.line("no boxes kept (no boxes given)")
    else:
        doc.line(
            f"kept {len(result.keep)} of {len(boxes)}, by decreasing score: "
            + ", ".join(map(str, result.keep))
        )
        doc.table(
            ["box", "x1, y1, x2, y2", "score"],
            [[str(i), box(boxes[i]), num(scores[i])] for i in result.keep],
        )
    return doc.text()


def render_soft_nms(
    result: SoftNmsResult,
    boxes: np.ndarray,
    threshold: float,
    sigma: float,
    floor: float,
    explain: bool,
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    rule = (
        f"s ← s·(1 − IoU) when IoU > {num(threshold)}"
        if result.method == "linear"
        else f"s ← s·exp(−IoU²/{num(sigma)})"
    )
    doc.title(
        f"Soft-NMS ({result.method}) of {len(boxes)} boxes: {rule}; dropped below {num(floor)}"
    )
    if explain:
        doc.section("Working")
        for step in result.steps:
            doc.line(f"select box {step.selected} (score {num(step.score)}); decay the others:")
            if not step.decays:
                doc.item("none left")
            for d in step.decays:
                dropped = " → dropped" if d.index in step.dropped else ""
                doc.item(
                    f"box {d.index}: IoU {p4(d.iou)}, score {num(d.before)} → "
                    f"{num(d.after)}{dropped}"
                )
    doc.section("Result")
    if len(result.keep) == 0:
        doc.line("no boxes kept")
    else:
        doc.table(
            ["order", "box", "x1, y1, x2, y2", "score when selected"],
            [
                [str(k + 1), str(i), box(boxes[i]), num(s)]
                for k, (i, s) in enumerate(zip(result.keep, result.scores, strict=True))
            ],
        )
    return doc.text()


# ----------------------------------------------------------------------------- decode


def _cell_steps(doc: Doc, w: CellWork) -> None:
    if w.version == "v1":
        which = f"box {w.anchor}" if w.anchor >= 0 else "one box"
    else:
        pw, ph = w.anchor_wh or (float("nan"), float("nan"))
        size = f"{num(pw)}×{num(ph)} px"
        which = f"anchor {w.anchor} ({size})" if w.anchor >= 0 else f"anchor {size}"
    where = f"cell (row {w.row}, column {w.col}), {which}"
    doc.line(f"{where}, stride {num(w.stride)}: raw {box(w.raw)}")
    tx, ty, tw, th, to = w.raw[:5]
    cx, cy, bw, bh = w.box
    if w.version == "v1":
        image_size = (w.grid or 0) * w.stride
        doc.item(f"b_x = (x + c_x)·s = ({num(tx)} + {w.col})·{num(w.stride)} = {num(cx)}")
        doc.item(f"b_y = (y + c_y)·s = ({num(ty)} + {w.row})·{num(w.stride)} = {num(cy)}")
        doc.item(f"b_w = (√w)²·image = {num(tw)}²·{num(image_size)} = {num(bw)}")
        doc.item(f"b_h = (√h)²·image = {num(th)}²·{num(image_size)} = {num(bh)}")
        doc.item(f"confidence = {num(w.objectness)} (a linear output)")
    else:
        from convlens.detection.decode import sigmoid

        pw, ph = w.anchor_wh or (float("nan"), float("nan"))
        doc.item(
            f"b_x = (σ(t_x) + c_x)·s = ({sigmoid(tx):.4f} + {w.col})·{num(w.stride)} = {num(cx)}"
        )
        doc.item(
            f"b_y = (σ(t_y) + c_y)·s = ({sigmoid(ty):.4f} + {w.row})·{num(w.stride)} = {num(cy)}"
        )
        doc.item(f"b_w = p_w·e^(t_w) = {num(pw)}·e^{num(tw)} = {num(bw)}")
        doc.item(f"b_h = p_h·e^(t_h) = {num(ph)}·e^{num(th)} = {num(bh)}")
        doc.item(f"objectness σ(t_o) = σ({num(to)}) = {w.objectness:.4f}")
    if w.class_scores:
        how = {"v1": "as predicted", "v2": "softmax", "v3": "σ of each"}[w.version]
        scores = ", ".join(f"{p:.4f}" for p in w.class_scores[:10])
        more = ", …" if len(w.class_scores) > 10 else ""
        doc.item(f"class scores ({how}): {scores}{more}")
        doc.item(
            f"best class {w.best_class}: score = {w.objectness:.4f} × "
            f"{w.class_scores[w.best_class]:.4f} = {w.score:.4f}"
        )
    x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    doc.item(f"box (cx, cy, w, h) = {box(w.box)} → (x1, y1, x2, y2) = {box((x1, y1, x2, y2))}")


def render_decode(
    version: str, works: Sequence[CellWork], result: Boxes | None, rows: int, fmt: str = "text"
) -> str:
    doc = Doc(fmt)
    doc.title(f"YOLO{version} decoding" + (f": {rows} predictions" if result is not None else ""))
    if works:
        doc.section("Working")
        for w in works:
            _cell_steps(doc, w)
    if result is not None:
        doc.section("Result: score above the threshold, then class-aware NMS")
        if len(result.boxes) == 0:
            doc.line("no boxes kept")
        else:
            doc.table(
                ["row", "class", "score", "x1, y1, x2, y2"],
                [
                    [str(r), str(c), f"{s:.4f}", box(b)]
                    for r, c, s, b in zip(
                        result.rows, result.classes, result.scores, result.boxes, strict=True
                    )
                ],
            )
    return doc.text()


# ----------------------------------------------------------------------------- anchors


def render_anchors(
    results: Sequence[AnchorClusters],
    chosen: AnchorClusters,
    sizes: np.ndarray,
    unit: str,
    explain: bool,
    fmt: str = "text",
) -> str:
    doc = Doc(fmt)
    doc.title(f"anchor boxes by k-means with d = 1 − IoU on {len(sizes)} box sizes ({unit})")
    doc.section("Mean IoU of each box with its closest anchor")
    doc.table(["k", "mean IoU"], [[str(r.k), p4(r.mean_iou)] for r in results])
    doc.section(f"The k = {chosen.k} anchors (sorted by area)")
    from convlens.detection.anchors import wh_iou

    ious = wh_iou(sizes, chosen.anchors).max(1)
    rows = []
    for j, (w, h) in enumerate(chosen.anchors):
        members = chosen.assignment == j
        mean = p4(float(ious[members].mean())) if members.any() else "—"
        rows.append([str(j), f"{w:.2f}", f"{h:.2f}", str(int(members.sum())), mean])
    doc.table(["anchor", "width", "height", "boxes", "their mean IoU"], rows)
    if explain:
        doc.section("How")
        doc.item(
            "IoU of sizes: boxes share a corner, "
            "IoU = min(w₁,w₂)·min(h₁,h₂) / (w₁h₁ + w₂h₂ − min·min)"
        )
        doc.item(
            "start: k-means++ — each next centre drawn with probability ∝ (1 − IoU to the nearest)²"
        )
        doc.item(
            "repeat: assign every box to the anchor of highest IoU; "
            "move each anchor to the mean (w, h) of its boxes"
        )
        doc.item(
            f"stop when no assignment changes: {chosen.iterations} iterations for k = {chosen.k}"
        )
        doc.item(f"mean IoU = Σ max_j IoU(box, anchor_j) / {len(sizes)} = {p4(chosen.mean_iou)}")
    return doc.text()


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
