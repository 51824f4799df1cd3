"""COCO JSON in and out: ground truth (images, annotations, categories) and detection results.

Ground truth is a dict with ``images`` (``id``, ``width``, ``height``, ``file_name``),
``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox`` = [x, y, w, h],
``area``, ``iscrowd``) and ``categories`` (``id``, ``name``). Results are a list of
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``, as the COCO evaluation
server and pycocotools' ``loadRes`` take them.

Every problem raises ``DataError`` naming the file and the item (``annotations[4]``,
``detection 7``) and what was expected; nothing is evaluated on half-read data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlens.errors import DataError


@dataclass(frozen=True)
class Image:
    id: int
    width: int
    height: int
    file_name: str = ""


@dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclass(frozen=True)
class Annotation:
    """One ground-truth box. ``area`` decides the COCO size range (small/medium/large)."""

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h
    area: float
    iscrowd: bool = False


@dataclass(frozen=True)
class Detection:
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h
    score: float


@dataclass(frozen=True)
class GroundTruth:
    images: tuple[Image, ...]
    categories: tuple[Category, ...]
    annotations: tuple[Annotation, ...]

    def category_name(self, category_id: int) -> str:
        return {c.id: c.name for c in self.categories}[category_id]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_id(value: Any, where: str, key: str = "id") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise DataError(f"{where}: '{key}' is {value!r}; expected an integer.")
    return value


def _bbox(value: Any, where: str) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value)):
        raise DataError(f"{where}: 'bbox' is {value!r}; expected [x, y, width, height].")
    box = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in box):
        raise DataError(f"{where}: 'bbox' {value} has a value that is not finite.")
    if box[2] < 0 or box[3] < 0:
        raise DataError(
            f"{where}: 'bbox' {value} has a negative width or height (COCO boxes are "
            "[x, y, width, height], not corners)."
        )
    return box  # type: ignore[return-value]


def _require(item: Any, keys: Iterable[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object, got {type(item).__name__}.")
    missing = [k for k in keys if k not in item]
    if missing:
        raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)}.")
    return item


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file, or a ``DataError`` saying which file and where it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {what} file {path}: {err}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
        ) from None


def parse_ground_truth(data: Any, source: str = "ground truth") -> GroundTruth:
    """Validate a COCO ground-truth dict; ``source`` (a file name) prefixes every message."""
    if not isinstance(data, dict):
        raise DataError(
            f"{source}: expected a COCO object with 'images', 'annotations' and "
            f"'categories', got a {type(data).__name__}."
        )
    _require(data, ("images", "annotations", "categories"), source)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{source}: '{key}' must be a list.")
    images: dict[int, Image] = {}
    for i, raw in enumerate(data["images"]):
        where = f"{source}: images[{i}]"
        item = _require(raw, ("id",), where)
        image_id = _int_id(item["id"], where)
        if image_id in images:
            raise DataError(f"{where}: image id {image_id} appears twice.")
        width, height = item.get("width", 0), item.get("height", 0)
        if not (_number(width) and _number(height) and width >= 0 and height >= 0):
            raise DataError(f"{where}: width and height must be non-negative numbers.")
        images[image_id] = Image(image_id, int(width), int(height), str(item.get("file_name", "")))
    categories: dict[int, Category] = {}
    for i, raw in enumerate(data["categories"]):
        where = f"{source}: categories[{i}]"
        item = _require(raw, ("id",), where)
        category_id = _int_id(item["id"], where)
        if category_id in categories:
            raise DataError(f"{where}: category id {category_id} appears twice.")
        categories[category_id] = Category(category_id, str(item.get("name", category_id)))
    annotations: list[Annotation] = []
    seen: set[int] = set()
    for i, raw in enumerate(data["annotations"]):
        where = f"{source}: annotations[{i}]"
        item = _require(raw, ("id", "image_id", "category_id", "bbox"), where)
        ann_id = _int_id(item["id"], where)
        if ann_id in seen:
            raise DataError(f"{where}: annotation id {ann_id} appears twice.")
        seen.add(ann_id)
        image_id = _int_id(item["image_id"], where, "image_id")
        category_id = _int_id(item["category_id"], where, "category_id")
        if image_id not in images:
            raise DataError(f"{where}: image_id {image_id} is not in 'images'.")
        if category_id not in categories:
            raise DataError(f"{where}: category_id {category_id} is not in 'categories'.")
        box = _bbox(item["bbox"], where)
        area = item.get("area", box[2] * box[3])  # COCO's area is the mask's; else the box's
        if not (_number(area) and math.isfinite(area) and area >= 0):
            raise DataError(f"{where}: 'area' is {area!r}; expected a non-negative number.")
        crowd = item.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            raise DataError(f"{where}: 'iscrowd' is {crowd!r}; expected 0 or 1.")
        annotations.append(Annotation(ann_id, image_id, category_id, box, float(area), bool(crowd)))
    return GroundTruth(tuple(images.values()), tuple(categories.values()), tuple(annotations))


def parse_detections(
    data: Any, ground_truth: GroundTruth | None = None, source: str = "detections"
) -> tuple[Detection, ...]:
    """Validate a COCO results list; with ``ground_truth``, unknown images or categories fail.

    (pycocotools refuses unknown images and silently drops unknown categories; a
    detection of a category the ground truth does not have is almost always an id
    mapping bug, so it is an error here.)
    """
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]  # a full COCO file of predictions
    if not isinstance(data, list):
        raise DataError(
            f"{source}: expected a list of detections "
            '[{"image_id", "category_id", "bbox", "score"}, …], got a '
            f"{type(data).__name__}."
        )
    image_ids = {im.id for im in ground_truth.images} if ground_truth else None
    category_ids = {c.id for c in ground_truth.categories} if ground_truth else None
    detections = []
    for i, raw in enumerate(data):
        where = f"{source}: detection {i}"
        item = _require(raw, ("image_id", "category_id", "bbox", "score"), where)
        image_id = _int_id(item["image_id"], where, "image_id")
        category_id = _int_id(item["category_id"], where, "category_id")
        if image_ids is not None and image_id not in image_ids:
            raise DataError(f"{where}: image_id {image_id} is not an image of the ground truth.")
        if category_ids is not None and category_id not in category_ids:
            known = ", ".join(str(c) for c in sorted(category_ids))
            raise DataError(
                f"{where}: category_id {category_id} is not a category of the ground truth "
                f"(its ids: {known})."
            )
        score = item["score"]
        if not (_number(score) and math.isfinite(score)):
            raise DataError(f"{where}: 'score' is {score!r}; expected a finite number.")
        detections.append(Detection(image_id, category_id, _bbox(item["bbox"], where), score))
    return tuple(detections)


def load_ground_truth(path: str | Path) -> GroundTruth:
    return parse_ground_truth(read_json(path, "ground-truth"), str(path))


def load_detections(
    path: str | Path, ground_truth: GroundTruth | None = None
) -> tuple[Detection, ...]:
    return parse_detections(read_json(path, "detections"), ground_truth, str(path))


def ground_truth_json(gt: GroundTruth) -> dict[str, Any]:
    return {
        "images": [
            {"id": im.id, "width": im.width, "height": im.height, "file_name": im.file_name}
            for im in gt.images
        ],
        "annotations": [
            {
                "id": a.id,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "bbox": list(a.bbox),
                "area": a.area,
                "iscrowd": int(a.iscrowd),
            }
            for a in gt.annotations
        ],
        "categories": [{"id": c.id, "name": c.name} for c in gt.categories],
    }


def detections_json(detections: Sequence[Detection]) -> list[dict[str, Any]]:
    return [
        {
            "image_id": d.image_id,
            "category_id": d.category_id,
            "bbox": list(d.bbox),
            "score": d.score,
        }
        for d in detections
    ]
