"""Working for one set of boxes: IoU and its variants, greedy and Soft-NMS, YOLO decoding
and the k-means anchors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convlens.detection.anchors import AnchorClusters
from convlens.detection.decode import Boxes, CellWork
from convlens.detection.explain import PairWork
from convlens.detection.nms import NmsResult, SoftNmsResult
from convlens.detection.render.document import Doc, box, p4
from convlens.reference.writer import num

EXPLAIN_PAIRS = 12  # pairs worked out in full by `detect iou --explain`


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
