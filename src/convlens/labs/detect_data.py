"""The detection lab's data: a COCO folder (``train.json``, ``val.json`` and their PNGs, as
``make_data`` writes it) checked and held in memory — images (N, 3, H, W) uint8, boxes
(K, 4) xyxy and class indices per image — and the seeded flips that augment it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convlens.detection.coco import Category, GroundTruth, load_ground_truth
from convlens.detection.synthetic import ShapesConfig, load_images, make_dataset
from convlens.errors import ArgumentError, DataError
from convlens.labs.runtime.loop import epoch_generator

STRIDE = 8  # TinyYolo's output grid: one cell per 8 × 8 pixels (image sides are multiples)


def make_data(
    folder: str | Path,
    num_train: int = 4000,
    num_val: int = 500,
    seed: int = 0,
    shapes: ShapesConfig | None = None,  # default: the lab's 64 × 64 shapes
    written: Callable[[], None] | None = None,  # called after each image (a progress bar)
) -> dict[str, Any]:
    """The synthetic shapes (``detection.synthetic``) in a new ``folder``: built beside it
    and moved into place at the end, so an interrupted run leaves no half data set."""
    out, shapes = Path(folder), shapes or ShapesConfig()
    for flag, count in (("--train", num_train), ("--val", num_val)):
        if count < 1:
            raise ArgumentError(f"{flag} must be at least 1 image (got {count}).")
    if not 1 <= shapes.min_size <= shapes.max_size <= shapes.image_size:
        raise ArgumentError(
            f"shape sizes must satisfy 1 ≤ --min-size ≤ --max-size ≤ --image-size; got "
            f"{shapes.min_size}, {shapes.max_size}, {shapes.image_size}."
        )
    shapes.check()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArgumentError(
            f"{out} already exists and is not an empty folder; make-data writes a new one "
            "(nothing is overwritten)."
        )
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        paths = make_dataset(partial, num_train, num_val, seed, shapes, written)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    boxes = {
        split: len(load_ground_truth(out / path.name).annotations) for split, path in paths.items()
    }
    return {
        "folder": str(out),
        "train": num_train,
        "val": num_val,
        "boxes": boxes,
        "image_size": shapes.image_size,
        "seed": seed,
    }


@dataclass(frozen=True)
class Split:
    gt: GroundTruth
    images: torch.Tensor  # (N, 3, H, W) uint8
    boxes: list[np.ndarray]  # per image (K, 4) xyxy pixels (crowd boxes left out)
    labels: list[np.ndarray]  # per image (K,) class index 0..C-1


def _annotations_file(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise DataError(
            f"--data: {root} is not a folder. Make a data set with "
            f"'convlens lab detect make-data {root}'."
        )
    path = root / f"{split}.json"
    if not path.is_file():
        raise DataError(
            f"--data: {root} holds no {split}.json (COCO ground truth of the {split} images, "
            "as 'convlens lab detect make-data' writes it)."
        )
    return path


def load_split(root: str | Path, split: str, categories: Sequence[Category]) -> Split:
    """One split, checked: images that exist and share one size (a multiple of the stride),
    boxes of positive size, at least one box, and the categories of ``categories``."""
    root = Path(root)
    path = _annotations_file(root, split)
    gt = load_ground_truth(path)
    if tuple(sorted(gt.categories, key=lambda c: c.id)) != tuple(categories):
        raise DataError(
            f"{path}: its categories {_names(gt.categories)} differ from "
            f"{_names(categories)}; the detector predicts one fixed set of classes."
        )
    if not gt.images:
        raise DataError(f"{path}: 'images' is empty.")
    boxes, labels = boxes_by_image(gt, path)
    if not sum(len(b) for b in boxes):
        raise DataError(f"{path}: no boxes (no annotations that are not crowds) to learn from.")
    pixels = load_images(root, gt)  # (N, H, W, 3) uint8
    height, width = pixels.shape[1:3]
    if height % STRIDE or width % STRIDE:
        raise DataError(
            f"{path}: the images are {width}×{height} pixels; the detector needs sides that "
            f"are multiples of its stride {STRIDE}."
        )
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    return Split(gt, images, boxes, labels)


def _names(categories: Sequence[Category]) -> str:
    return "[" + ", ".join(f"{c.id}: {c.name}" for c in categories) + "]"


def data_categories(root: str | Path) -> tuple[Category, ...]:
    """The training split's categories, by id (class index k is the k-th)."""
    gt = load_ground_truth(_annotations_file(Path(root), "train"))
    if not gt.categories:
        raise DataError(f"{Path(root) / 'train.json'}: 'categories' is empty.")
    return tuple(sorted(gt.categories, key=lambda c: c.id))


def boxes_by_image(gt: GroundTruth, source: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """xyxy boxes (K, 4) and class indices (K,) per image, in the order of ``gt.images``."""
    index = {im.id: i for i, im in enumerate(gt.images)}
    category_index = {c: k for k, c in enumerate(sorted(c.id for c in gt.categories))}
    boxes: list[list[list[float]]] = [[] for _ in gt.images]
    labels: list[list[int]] = [[] for _ in gt.images]
    for a in gt.annotations:
        if a.iscrowd:
            continue
        x, y, w, h = a.bbox
        if w <= 0 or h <= 0:
            raise DataError(
                f"{source}: annotation id {a.id} has the empty box {list(a.bbox)}; a box to "
                "learn needs a positive width and height."
            )
        boxes[index[a.image_id]].append([x, y, x + w, y + h])
        labels[index[a.image_id]].append(category_index[a.category_id])
    return (
        [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes],
        [np.asarray(lab, np.int64) for lab in labels],
    )


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255)  # uint8 → [0, 1]


def flip(
    images: torch.Tensor,
    boxes: Sequence[np.ndarray],
    horizontal: torch.Tensor,
    vertical: torch.Tensor,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Mirror image i (B, C, H, W) left-right where ``horizontal[i]`` and up-down where
    ``vertical[i]``, with its xyxy boxes: x ↦ W − x, y ↦ H − y (corners swap)."""
    height, width = images.shape[-2:]
    images = torch.where(horizontal[:, None, None, None], images.flip(-1), images)
    images = torch.where(vertical[:, None, None, None], images.flip(-2), images)
    flipped = []
    for b, h, v in zip(boxes, horizontal.tolist(), vertical.tolist(), strict=True):
        if h:
            b = np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
        if v:
            b = np.stack([b[:, 0], height - b[:, 3], b[:, 2], height - b[:, 1]], 1)
        flipped.append(b)
    return images, flipped


def epoch_vertical_flips(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Which training images are mirrored up-down in ``epoch``: a function of (seed, epoch)."""
    return torch.rand(n, generator=epoch_generator(seed, epoch, 2)) < 0.5
