"""Decoding YOLOv1, v2 and v3 outputs into boxes — one implementation for the zoo and the labs.

All three predict, for each cell (row c_y, column c_x) of an S_h × S_w grid over the
image, boxes as offsets; they differ in how the offsets become pixels:

    v1  b_x = (x + c_x)·s,  b_y = (y + c_y)·s,  b_w = (√w)²·W,  b_h = (√h)²·H
        confidence and C class probabilities as predicted (linear outputs); B boxes per
        cell share the cell's classes; score = confidence × class probability.
    v2  b_x = (σ(t_x) + c_x)·s,  b_y = (σ(t_y) + c_y)·s,  b_w = p_w·e^{t_w},  b_h = p_h·e^{t_h}
        objectness σ(t_o), classes softmax(t_1 … t_C); score = σ(t_o)·softmax_i.
    v3  as v2 at each of several maps (own stride and anchors); classes σ(t_i) each
        (independent logistic classifiers).

s is the stride (image size / grid size) and (p_w, p_h) the anchor in pixels. Decoded
rows are (cx, cy, w, h, objectness, class scores…) in pixels, so any of them can be
checked by hand; ``decode_cell`` returns the working for one prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convlens.errors import DataError

Anchors = Sequence[tuple[float, float]]

# yolo-voc.2.0.cfg: YOLOv2's VOC anchors (the paper's k = 5 dimension clusters), in grid
# cells of the 13×13 map (multiply by the stride, 32, for pixels).
YOLOV2_VOC_ANCHORS: tuple[tuple[float, float], ...] = (
    (1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52),
)  # fmt: skip
# yolov2.cfg: the COCO model's anchors, grid cells.
YOLOV2_COCO_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.57273, 0.677385), (1.87446, 2.06253), (3.33843, 5.47434),
    (7.88282, 3.52778), (9.77052, 9.16828),
)  # fmt: skip
# yolov3.cfg: anchor (width, height) in pixels at 416², per output in the order the zoo
# model returns them — stride 32 (13×13), 16 (26×26), 8 (52×52): masks 6-8, 3-5, 0-2.
YOLOV3_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((116, 90), (156, 198), (373, 326)),
    ((30, 61), (62, 45), (59, 119)),
    ((10, 13), (16, 30), (33, 23)),
)
YOLOV3_STRIDES: tuple[int, int, int] = (32, 16, 8)


class ClassActivation(StrEnum):
    none = "none"  # v1: the network's outputs are the probabilities
    softmax = "softmax"  # v2
    sigmoid = "sigmoid"  # v3


def _size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    return (img_size, img_size) if isinstance(img_size, int) else (img_size[0], img_size[1])


def _tensor(raw: Any) -> torch.Tensor:
    return raw if isinstance(raw, torch.Tensor) else torch.as_tensor(np.asarray(raw))


def _grid(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=like.dtype, device=like.device),
        torch.arange(w, dtype=like.dtype, device=like.device),
        indexing="ij",
    )
    return cols, rows  # c_x, c_y: (H, W) each


def decode_anchor_map(
    raw: Any,
    anchors: Anchors,
    stride: float,
    classes: ClassActivation | str,
    img_size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """One v2/v3 map (N, A·(5 + C), H, W) → (N, A·H·W, 5 + C) rows, anchor by anchor.

    ``anchors`` are (p_w, p_h) in pixels. Row order: anchor, then row y, then column x.
    With ``img_size``, H·stride and W·stride must cover the image exactly.
    """
    raw = _tensor(raw)
    if raw.ndim != 4:
        raise DataError(f"a YOLO map is (N, A·(5 + C), H, W); got shape {tuple(raw.shape)}.")
    n, channels, h, w = raw.shape
    a = len(anchors)
    if a == 0 or channels % a or channels // a < 5:
        raise DataError(f"a map with {channels} channels cannot hold {a} anchors × (5 + C).")
    if img_size is not None:
        img_h, img_w = _size(img_size)
        if h * stride != img_h or w * stride != img_w:
            raise DataError(
                f"a {h}×{w} map at stride {stride:g} does not cover a {img_h}×{img_w} image."
            )
    p = raw.reshape(n, a, channels // a, h, w).permute(0, 1, 3, 4, 2)  # (N, A, H, W, 5 + C)
    c_x, c_y = _grid(h, w, p)
    anchor_wh = torch.as_tensor(anchors, dtype=p.dtype, device=p.device).view(1, a, 1, 1, 2)
    cx = (torch.sigmoid(p[..., 0]) + c_x) * stride
    cy = (torch.sigmoid(p[..., 1]) + c_y) * stride
    wh = anchor_wh * torch.exp(p[..., 2:4])
    objectness = torch.sigmoid(p[..., 4:5])
    logits = p[..., 5:]
    if ClassActivation(classes) is ClassActivation.softmax:
        scores = torch.softmax(logits, dim=-1)
    else:
        scores = torch.sigmoid(logits)
    decoded = torch.cat([cx.unsqueeze(-1), cy.unsqueeze(-1), wh, objectness, scores], -1)
    return decoded.reshape(n, a * h * w, channels // a)


def decode_yolov2(
    raw: Any,
    anchors: Anchors = YOLOV2_VOC_ANCHORS,
    img_size: int | tuple[int, int] = 416,
) -> torch.Tensor:
    """YOLOv2's region layer: (N, A·(5 + C), S, S) → (N, A·S·S, 5 + C) in pixels.

    ``anchors`` are in grid cells, as in the Darknet cfg files (multiplied by the stride).
    """
    raw = _tensor(raw)
    img_h, img_w = _size(img_size)
    if raw.ndim != 4 or img_h % raw.shape[2] or img_w % raw.shape[3]:
        raise DataError(
            f"a YOLOv2 output of shape {tuple(raw.shape)} does not divide a "
            f"{img_h}×{img_w} image into whole cells."
        )
    stride = img_h // raw.shape[2]
    if img_w // raw.shape[3] != stride:
        raise DataError("YOLOv2 cells must be square: the same stride across and down.")
    pixels = [(pw * stride, ph * stride) for pw, ph in anchors]
    return decode_anchor_map(raw, pixels, stride, ClassActivation.softmax, (img_h, img_w))


def decode_yolov3(
    outputs: Sequence[Any],
    anchors: Sequence[Anchors] = YOLOV3_ANCHORS,
    strides: Sequence[int] = YOLOV3_STRIDES,
    img_size: int | tuple[int, int] = 416,
) -> torch.Tensor:
    """YOLOv3's three maps → (N, Σ_k A·H_k·W_k, 5 + C) in pixels, map by map.

    ``outputs[k]`` is (N, A·(5 + C), H_k, W_k), ``anchors[k]`` its A anchors in pixels and
    ``strides[k]`` its stride; H_k·s_k must equal the image height (W likewise).
    """
    if not len(outputs) == len(anchors) == len(strides):
        raise DataError(
            f"got {len(outputs)} maps, {len(anchors)} anchor sets and {len(strides)} strides; "
            "give one of each per map."
        )
    maps = [
        decode_anchor_map(raw, map_anchors, stride, ClassActivation.sigmoid, img_size)
        for raw, map_anchors, stride in zip(outputs, anchors, strides, strict=True)
    ]
    return torch.cat(maps, 1)


def decode_yolov1(
    output: Any, num_boxes: int = 2, img_size: int | tuple[int, int] = 448, sqrt_wh: bool = True
) -> torch.Tensor:
    """YOLOv1 (N, S, S, B·5 + C), cell-major → (N, S·S·B, 5 + C) in pixels.

    Each row is (cx, cy, w, h, confidence, the cell's C class probabilities); the order
    is row y, column x, then box b. YOLOv1 predicts √w and √h (``sqrt_wh``), relative
    to the image, and x, y relative to the cell.
    """
    out = _tensor(output)
    if out.ndim != 4 or out.shape[1] != out.shape[2] or out.shape[3] < 5 * num_boxes:
        raise DataError(
            f"a YOLOv1 output is (N, S, S, B·5 + C) with B = {num_boxes}; got shape "
            f"{tuple(out.shape)}."
        )
    n, s, _, depth = out.shape
    img_h, img_w = _size(img_size)
    boxes = out[..., : 5 * num_boxes].reshape(n, s, s, num_boxes, 5)  # (N, S, S, B, 5)
    probs = out[..., 5 * num_boxes :].unsqueeze(3).expand(n, s, s, num_boxes, depth - 5 * num_boxes)
    c_x, c_y = _grid(s, s, out)
    c_x, c_y = c_x[None, :, :, None], c_y[None, :, :, None]  # (1, S, S, 1)
    cx = (boxes[..., 0] + c_x) / s * img_w
    cy = (boxes[..., 1] + c_y) / s * img_h
    power = 2 if sqrt_wh else 1
    w = boxes[..., 2] ** power * img_w
    h = boxes[..., 3] ** power * img_h
    decoded = torch.cat([torch.stack([cx, cy, w, h, boxes[..., 4]], -1), probs], -1)
    return decoded.reshape(n, s * s * num_boxes, 5 + depth - 5 * num_boxes)  # 5 + C


@dataclass(frozen=True)
class Boxes:
    """Final detections of one image: xyxy pixels, scores and class indices."""

    boxes: np.ndarray  # (K, 4)
    scores: np.ndarray  # (K,)
    classes: np.ndarray  # (K,) int
    rows: np.ndarray  # (K,) which decoded row each came from


def select_boxes(
    decoded: Any, score_threshold: float = 0.25, iou_threshold: float = 0.45
) -> list[Boxes]:
    """Decoded rows (N, R, 5 + C) → per image: score = objectness × best class score,
    kept above ``score_threshold``, then class-aware NMS at ``iou_threshold``."""
    from convlens.detection.boxes import check_threshold, convert
    from convlens.detection.nms import batched_nms

    check_threshold(iou_threshold)
    rows = _tensor(decoded).detach().cpu().to(torch.float64).numpy()
    results = []
    for image in rows:  # (R, 5 + C)
        class_scores = image[:, 5:] * image[:, 4:5]
        classes = class_scores.argmax(1) if class_scores.shape[1] else np.zeros(len(image), int)
        scores = (
            class_scores[np.arange(len(image)), classes] if class_scores.shape[1] else image[:, 4]
        )
        chosen = np.flatnonzero(scores > score_threshold)
        boxes = convert(image[chosen, :4], "cxcywh", "xyxy")
        keep = batched_nms(boxes, scores[chosen], classes[chosen], iou_threshold)
        results.append(
            Boxes(boxes[keep], scores[chosen][keep], classes[chosen][keep], chosen[keep])
        )
    return results


@dataclass(frozen=True)
class CellWork:
    """The working for one prediction: raw values in, each formula, box out."""

    version: str
    row: int
    col: int
    anchor: int  # box b for v1, anchor a for v2/v3
    stride: float
    anchor_wh: tuple[float, float] | None  # pixels (v2/v3)
    raw: tuple[float, ...]  # t_x, t_y, t_w, t_h, t_o, class values
    box: tuple[float, float, float, float]  # cx, cy, w, h in pixels
    objectness: float
    class_scores: tuple[float, ...]
    grid: int | None = None  # v1: S, the image is S·stride wide

    @property
    def best_class(self) -> int:
        return int(np.argmax(self.class_scores)) if self.class_scores else -1

    @property
    def score(self) -> float:
        best = self.class_scores[self.best_class] if self.class_scores else 1.0
        return self.objectness * best


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def decode_cell(
    version: str,
    raw: Iterable[float],
    row: int,
    col: int,
    stride: float,
    anchor_wh: tuple[float, float] | None = None,
    anchor: int = 0,
    grid: int | None = None,
) -> CellWork:
    """One prediction decoded in plain Python, for ``--explain`` (and as a second opinion).

    v1 needs ``grid`` (S: image size = S·stride); v2 / v3 need the anchor in pixels.
    """
    values = [float(v) for v in raw]
    if len(values) < 5:
        raise DataError(f"a prediction needs at least 5 numbers (t_x … t_o); got {len(values)}.")
    tx, ty, tw, th, to, *cls = values
    if version == "v1":
        if grid is None:
            raise DataError("YOLOv1 needs the grid size S.")
        size = grid * stride
        box = ((tx + col) * stride, (ty + row) * stride, tw * tw * size, th * th * size)
        return CellWork(
            "v1", row, col, anchor, stride, None, tuple(values), box, to, tuple(cls), grid
        )
    if anchor_wh is None:
        raise DataError(f"YOLO{version} needs the anchor (width, height).")
    box = (
        (sigmoid(tx) + col) * stride,
        (sigmoid(ty) + row) * stride,
        anchor_wh[0] * math.exp(tw),
        anchor_wh[1] * math.exp(th),
    )
    if version == "v2":
        top = max(cls) if cls else 0.0
        exps = [math.exp(c - top) for c in cls]
        scores = tuple(e / sum(exps) for e in exps)
    else:
        scores = tuple(sigmoid(c) for c in cls)
    objectness = sigmoid(to)
    return CellWork(
        version, row, col, anchor, stride, anchor_wh, tuple(values), box, objectness, scores
    )


def load_map(path: str | Path) -> np.ndarray:
    """A saved network output (.npy of finite floats), or a ``DataError`` naming the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path} as a .npy array ({err}).") from None
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise DataError(f"{path} must hold finite floating-point numbers.")
    return array


def decode_outputs(
    version: str,
    maps: Sequence[np.ndarray],
    anchors: Sequence[tuple[float, float]] | None,
    img_size: int,
    num_boxes: int = 2,
) -> tuple[torch.Tensor, Callable[[int], CellWork]]:
    """Saved outputs of one image → decoded rows (1, R, 5 + C), and row → its ``CellWork``.

    ``anchors``: v2 in grid cells (default YOLOv2's VOC anchors), v3 in pixels, the same
    number per map, coarsest map first (default yolov3.cfg's); unused for v1.
    """
    maps = [m if m.ndim == 4 else m[None] for m in maps]  # one image without a batch axis
    if version == "v1":
        if len(maps) != 1:
            raise DataError("YOLOv1 has one output: give one map.")
        out = maps[0]
        s, depth = out.shape[1], out.shape[-1]
        decoded = decode_yolov1(out, num_boxes, img_size)

        def locate_v1(row: int) -> CellWork:
            cell, b = divmod(row, num_boxes)
            r, c = divmod(cell, s)
            values = [*out[0, r, c, 5 * b : 5 * b + 5], *out[0, r, c, 5 * num_boxes : depth]]
            return decode_cell("v1", values, r, c, img_size / s, anchor=b, grid=s)

        return decoded, locate_v1
    if version == "v2":
        if len(maps) != 1:
            raise DataError("YOLOv2 has one output map: give one map.")
        cells = list(anchors or YOLOV2_VOC_ANCHORS)
        decoded = decode_yolov2(maps[0], cells, img_size)
        strides = [img_size / maps[0].shape[2]]
        per_map = [[(w * strides[0], h * strides[0]) for w, h in cells]]
    else:
        if anchors is None:
            per_map = [list(a) for a in YOLOV3_ANCHORS]
        elif len(anchors) % len(maps):
            raise DataError(f"{len(anchors)} anchors do not split evenly over {len(maps)} maps.")
        else:
            size = len(anchors) // len(maps)
            per_map = [list(anchors[i * size : (i + 1) * size]) for i in range(len(maps))]
        strides = [img_size / m.shape[2] for m in maps]
        decoded = decode_yolov3(maps, per_map, strides, img_size)

    def locate(row: int) -> CellWork:
        for raw, map_anchors, stride in zip(maps, per_map, strides, strict=True):
            _, channels, h, w = raw.shape
            if row < len(map_anchors) * h * w:
                a, rest = divmod(row, h * w)
                r, c = divmod(rest, w)
                depth = channels // len(map_anchors)
                values = raw[0, a * depth : (a + 1) * depth, r, c]
                return decode_cell(version, values, r, c, stride, map_anchors[a], anchor=a)
            row -= len(map_anchors) * h * w
        raise IndexError(row)

    return decoded, locate
