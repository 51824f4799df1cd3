"""``convlens detect iou | nms | decode | anchors | map``: parse, then ``convlens.detection``.

Boxes come inline (``[[0,0,10,10],[5,5,15,15]]`` or ``0,0,10,10``), or from a .txt, .csv
or .npy file, one box a row; ``--box-format`` says how the four numbers are meant.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from convlens.cli.console import handle_errors, print_text
from convlens.detection.boxes import BoxFormat
from convlens.errors import ArgumentError


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class IouKind(StrEnum):
    iou = "iou"
    giou = "giou"
    diou = "diou"
    ciou = "ciou"
    all = "all"


class Version(StrEnum):
    v1 = "v1"
    v2 = "v2"
    v3 = "v3"


class Metric(StrEnum):
    coco = "coco"
    voc = "voc"
    voc07 = "voc07"


FORMAT = Annotated[Format, typer.Option("--format", help="text, markdown or json.")]
EXPLAIN = Annotated[bool, typer.Option(help="Show the working step by step.")]


def read_boxes(source: str, option: str, fmt: BoxFormat) -> np.ndarray:
    """Boxes (N, 4) as xyxy, checked; an empty file or ``[]`` gives no boxes."""
    from convlens.detection.boxes import check_boxes, convert
    from convlens.reference.parse import parse_matrix

    if source.strip() in ("[]", "none"):
        return np.zeros((0, 4))
    array = parse_matrix(source, option)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ArgumentError(
            f"{option}: expected boxes of 4 numbers each ({fmt.value}), one a row; got shape "
            f"{array.shape}."
        )
    check_boxes(array, option, fmt.value)
    return check_boxes(convert(array, fmt.value, "xyxy"), option)


def read_vector(source: str, option: str) -> np.ndarray:
    from convlens.reference.parse import parse_matrix

    if source.strip() in ("[]", "none"):
        return np.zeros(0)
    return parse_matrix(source, option).reshape(-1)


def threshold(value: float, option: str) -> float:
    from convlens.detection.boxes import check_threshold

    return check_threshold(value, option)


def emit(payload: Any, fmt: Format, text: str) -> None:
    print_text(json.dumps(payload, ensure_ascii=False) if fmt is Format.json else text)


def _pairs(value: str | None, option: str) -> list[tuple[float, float]] | None:
    """'116,90 156,198' or '116x90;156x198' → [(116, 90), (156, 198)]."""
    if value is None:
        return None
    pairs = []
    for part in value.replace(";", " ").split():
        try:
            w, h = (float(v) for v in part.replace("x", ",").split(","))
        except ValueError:
            raise ArgumentError(
                f"{option}: {part!r} is not a width,height pair; write e.g. '116,90 156,198'."
            ) from None
        pairs.append((w, h))
    if not pairs:
        raise ArgumentError(f"{option} is empty; give width,height pairs.")
    return pairs


def _ints(value: str, option: str, count: int) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        raise ArgumentError(f"{option} takes {count} integers like 3,4; got {value!r}.") from None
    if len(numbers) != count:
        raise ArgumentError(f"{option} takes {count} integers like 3,4; got {value!r}.")
    return numbers


def register(app: typer.Typer) -> None:
    detect = typer.Typer(
        name="detect",
        help="Object detection after the network: IoU, NMS, YOLO decoding, anchors, mAP.",
        no_args_is_help=True,
    )

    @detect.command("iou")
    @handle_errors
    def iou_command(
        a: Annotated[str, typer.Option("--a", help="Boxes a: inline [[x1,y1,x2,y2],…] or a file.")],
        b: Annotated[str, typer.Option("--b", help="Boxes b, the same way.")],
        kind: Annotated[IouKind, typer.Option(help="iou, giou, diou, ciou or all.")] = IouKind.iou,
        box_format: Annotated[
            BoxFormat, typer.Option(help="How the 4 numbers are meant.")
        ] = BoxFormat.xyxy,
        explain: EXPLAIN = False,
        fmt: FORMAT = Format.text,
    ) -> None:
        """Pairwise IoU (or GIoU, DIoU, CIoU) of boxes a with boxes b: an N×M matrix.

        Example: convlens detect iou --a "[[0,0,10,10]]" --b "[[5,5,15,15]]" --kind all --explain
        """
        from convlens.detection.boxes import IOU_KINDS
        from convlens.detection.explain import pair_work
        from convlens.detection.render import EXPLAIN_PAIRS, render_iou

        boxes_a, boxes_b = read_boxes(a, "--a", box_format), read_boxes(b, "--b", box_format)
        kinds = list(IOU_KINDS) if kind is IouKind.all else [kind.value]
        matrices = {k: IOU_KINDS[k](boxes_a, boxes_b) for k in kinds}
        pairs = [(i, j) for i in range(len(boxes_a)) for j in range(len(boxes_b))]
        works = (
            [(i, j, pair_work(boxes_a[i], boxes_b[j])) for i, j in pairs[:EXPLAIN_PAIRS]]
            if explain
            else []
        )
        payload = {k: m.tolist() for k, m in matrices.items()}
        emit(payload, fmt, render_iou(boxes_a, boxes_b, matrices, works, fmt.value))

    @detect.command("nms")
    @handle_errors
    def nms_command(
        boxes: Annotated[str, typer.Option(help="Boxes: inline [[x1,y1,x2,y2],…] or a file.")],
        scores: Annotated[str, typer.Option(help="One score a box: 0.9,0.8,… or a file.")],
        classes: Annotated[
            str | None, typer.Option(help="Class of each box: NMS within each class only.")
        ] = None,
        iou: Annotated[float, typer.Option(help="IoU threshold: suppress above it.")] = 0.5,
        soft: Annotated[
            str | None, typer.Option(help="Soft-NMS instead: linear or gaussian.")
        ] = None,
        sigma: Annotated[float, typer.Option(help="Gaussian Soft-NMS: σ.")] = 0.5,
        score_threshold: Annotated[
            float, typer.Option(help="Soft-NMS: drop boxes whose score falls below this.")
        ] = 0.001,
        box_format: Annotated[
            BoxFormat, typer.Option(help="How the 4 numbers are meant.")
        ] = BoxFormat.xyxy,
        explain: EXPLAIN = False,
        fmt: FORMAT = Format.text,
    ) -> None:
        """Non-maximum suppression: which boxes survive, and (--explain) which box removed which.

        Example: convlens detect nms --boxes "[[0,0,10,10],[1,1,11,11]]" --scores 0.9,0.8 --explain
        """
        from convlens.detection.boxes import check_scores
        from convlens.detection.nms import batched_nms_steps, nms_steps, soft_nms
        from convlens.detection.render import render_nms, render_soft_nms

        array = read_boxes(boxes, "--boxes", box_format)
        values = check_scores(read_vector(scores, "--scores"), len(array), "--scores")
        limit = threshold(iou, "--iou")
        if soft is not None:
            if soft not in ("linear", "gaussian"):
                raise ArgumentError(f"--soft takes linear or gaussian; got {soft!r}.")
            if classes is not None:
                raise ArgumentError("--classes does not apply to Soft-NMS here.")
            result = soft_nms(array, values, limit, sigma, score_threshold, soft, explain=True)
            payload = {"keep": result.keep.tolist(), "scores": result.scores.tolist()}
            text = render_soft_nms(result, array, limit, sigma, score_threshold, explain, fmt.value)
            emit(payload, fmt, text)
            return
        labels = None
        if classes is not None:
            labels = read_vector(classes, "--classes")
            nms_result = batched_nms_steps(array, values, labels, limit)
            labels = labels.astype(int)
        else:
            nms_result = nms_steps(array, values, limit)
        payload = {
            "keep": nms_result.keep.tolist(),
            "steps": [
                {
                    "kept": s.kept,
                    "suppressed": [
                        {"box": c.index, "iou": c.iou} for c in s.compared if c.suppressed
                    ],
                }
                for s in nms_result.steps
            ],
        }
        emit(payload, fmt, render_nms(nms_result, array, values, labels, explain, fmt.value))

    @detect.command("decode")
    @handle_errors
    def decode_command(
        version: Annotated[Version, typer.Argument(help="v1, v2 or v3.")],
        raw: Annotated[
            list[Path] | None,
            typer.Option(
                help="The network's output as .npy (v3: one file per map, coarsest first)."
            ),
        ] = None,
        t: Annotated[
            str | None,
            typer.Option(
                help="One prediction instead: tx,ty,tw,th,to,class values… (v1: x,y,√w,√h,c,…)."
            ),
        ] = None,
        cell: Annotated[str, typer.Option(help="With --t: the cell as row,col.")] = "0,0",
        stride: Annotated[float, typer.Option(help="With --t: the stride in pixels.")] = 32,
        grid: Annotated[int, typer.Option(help="With --t and v1: the grid size S.")] = 7,
        anchor: Annotated[
            str | None, typer.Option(help="With --t: the anchor as width,height in pixels.")
        ] = None,
        anchors: Annotated[
            str | None,
            typer.Option(
                help="Anchors 'w,h w,h …' (v2: grid cells; v3: pixels, 3 per map, coarsest "
                "map first). Default: the published cfg's."
            ),
        ] = None,
        img_size: Annotated[int, typer.Option(help="Input image size (square).")] = 416,
        num_boxes: Annotated[int, typer.Option(help="v1: boxes per cell B.")] = 2,
        score_threshold: Annotated[
            float, typer.Option(help="Keep boxes whose objectness × class score exceeds this.")
        ] = 0.25,
        iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.45,
        explain: EXPLAIN = False,
        fmt: FORMAT = Format.text,
    ) -> None:
        """Turn YOLO outputs into boxes: grid offsets, σ/exp, anchors, objectness × class score.

        Example: convlens detect decode v3 --t 0.2,-0.4,0.5,0.1,2,1.5 --cell 6,7 --anchor 116,90
        """
        from convlens.detection import decode as dec
        from convlens.detection.render import render_decode

        if (raw is None) == (t is None):
            raise ArgumentError("give either --raw (the network output) or --t (one prediction).")
        if t is not None:
            values = read_vector(t, "--t")
            row, col = _ints(cell, "--cell", 2)
            wh = _pairs(anchor, "--anchor")
            if version is not Version.v1 and wh is None:
                raise ArgumentError(f"YOLO{version.value} needs --anchor width,height in pixels.")
            work = dec.decode_cell(
                version.value,
                values,
                row,
                col,
                stride,
                wh[0] if wh else None,
                anchor=-1,  # given by its size, not by an index
                grid=grid,
            )
            payload = {
                "box_cxcywh": list(work.box),
                "objectness": work.objectness,
                "class_scores": list(work.class_scores),
                "score": work.score,
            }
            emit(payload, fmt, render_decode(version.value, [work], None, 1, fmt.value))
            return
        maps = [dec.load_map(path) for path in raw or []]
        limit = threshold(iou, "--iou")
        decoded, locate = dec.decode_outputs(
            version.value, maps, _pairs(anchors, "--anchors"), img_size, num_boxes
        )
        (result, *_) = dec.select_boxes(decoded[:1], score_threshold, limit)
        works = [locate(int(r)) for r in result.rows] if explain else []
        payload = {
            "boxes_xyxy": result.boxes.tolist(),
            "scores": result.scores.tolist(),
            "classes": result.classes.tolist(),
        }
        text = render_decode(version.value, works, result, int(decoded.shape[1]), fmt.value)
        emit(payload, fmt, text)

    @detect.command("anchors")
    @handle_errors
    def anchors_command(
        gt: Annotated[Path, typer.Option(help="COCO ground truth: the boxes to cluster.")],
        k: Annotated[int, typer.Option("-k", help="Anchors to show in detail.")] = 5,
        k_max: Annotated[int, typer.Option(help="Mean IoU for k = 1 … k-max.")] = 9,
        seed: Annotated[int, typer.Option(help="Seed of the k-means++ start.")] = 0,
        grid: Annotated[
            int | None,
            typer.Option(help="Give sizes in cells of an S×S grid over each image (YOLOv2)."),
        ] = None,
        plot: Annotated[Path | None, typer.Option(help="Write the mean-IoU plot (PNG).")] = None,
        explain: EXPLAIN = False,
        fmt: FORMAT = Format.text,
    ) -> None:
        """YOLOv2's dimension clusters: k-means on box sizes with the distance 1 − IoU.

        Example: convlens detect anchors --gt train.json -k 5 --grid 13 --plot anchors.png
        """
        from convlens.detection.anchors import box_sizes, mean_iou_by_k, plot_mean_iou
        from convlens.detection.coco import load_ground_truth
        from convlens.detection.render import render_anchors

        truth = load_ground_truth(gt)
        sizes, unit = box_sizes(truth, grid)
        if not 1 <= k <= k_max:
            raise ArgumentError(f"-k must be between 1 and --k-max ({k_max}); got {k}.")
        if len(sizes) < k_max:
            raise ArgumentError(f"{gt} has {len(sizes)} boxes: too few for --k-max {k_max}.")
        results = mean_iou_by_k(sizes, range(1, k_max + 1), seed)
        chosen = results[k - 1]
        if plot is not None:
            plot_mean_iou(results, str(plot), k)
        payload = {
            "unit": unit,
            "mean_iou": {str(r.k): r.mean_iou for r in results},
            "anchors": chosen.anchors.tolist(),
        }
        emit(payload, fmt, render_anchors(results, chosen, sizes, unit, explain, fmt.value))

    @detect.command("map")
    @handle_errors
    def map_command(
        gt: Annotated[
            Path, typer.Option(help="COCO ground truth (images, annotations, categories).")
        ],
        dt: Annotated[
            Path, typer.Option(help="COCO results: [{image_id, category_id, bbox, score}].")
        ],
        metric: Annotated[
            Metric, typer.Option(help="coco (101-point, IoU .50:.95), voc (all-point), voc07.")
        ] = Metric.coco,
        iou: Annotated[
            float, typer.Option(help="VOC: the IoU threshold; COCO: the one --explain shows.")
        ] = 0.5,
        category: Annotated[
            list[str] | None, typer.Option(help="Work out these categories only (name or id).")
        ] = None,
        plot: Annotated[
            Path | None, typer.Option(help="Write per-class precision–recall curves (PNG).")
        ] = None,
        explain: EXPLAIN = False,
        fmt: FORMAT = Format.text,
    ) -> None:
        """Mean average precision of detections against ground truth (COCO JSON in).

        Example: convlens detect map --gt GT.json --dt DT.json --format json
        """
        from convlens.detection.coco import load_detections, load_ground_truth
        from convlens.detection.evaluate import IOU_THRESHOLDS, evaluate_coco, evaluate_voc
        from convlens.detection.plots import plot_pr_curves
        from convlens.detection.render import coco_json, render_coco, render_voc, voc_json

        truth = load_ground_truth(gt)
        detections = load_detections(dt, truth)
        limit = threshold(iou, "--iou")
        names = {c.id: c.name for c in truth.categories}
        explain = explain or bool(category)  # naming a category asks for its working
        chosen = _categories(category, names) if explain else []
        if metric is Metric.coco:
            if not np.isclose(IOU_THRESHOLDS, limit).any():
                raise ArgumentError(
                    f"--iou {limit} is not one of COCO's thresholds 0.50, 0.55, …, 0.95."
                )
            result = evaluate_coco(truth, detections)
            if explain and not category:
                chosen = list(result.category_ids)
            if plot is not None:
                plot_pr_curves(result, names, plot, limit)
            payload = coco_json(result)
            emit(payload, fmt, render_coco(result, chosen, limit, fmt.value))
            return
        voc = evaluate_voc(truth, detections, metric.value, limit)
        at75 = evaluate_voc(truth, detections, metric.value, 0.75)
        if explain and not category:
            chosen = sorted(names)
        if plot is not None:
            plot_pr_curves(voc, names, plot, limit)
        emit(voc_json(voc, at75, names), fmt, render_voc(voc, names, chosen, fmt.value))

    app.add_typer(detect)


def _categories(given: list[str] | None, names: dict[int, str]) -> list[int]:
    """--category values (names or ids) → category ids."""
    by_name = {v: k for k, v in names.items()}
    chosen = []
    for item in given or []:
        if item in by_name:
            chosen.append(by_name[item])
        elif item.isdigit() and int(item) in names:
            chosen.append(int(item))
        else:
            known = ", ".join(names.values())
            raise ArgumentError(
                f"--category {item!r} is not a category of the ground truth ({known})."
            )
    return chosen
