"""Segmentation data: a folder of ``image/`` and ``label/`` PNGs paired by name, the value →
class map of the masks, and the U-Net paper's weight map.

Masks hold one value per class (ISBI 2012: 0 = membrane, 255 = cell interior). Values are
numbered in increasing order, so the smallest value is class 0: the border / background
class that separates objects (the weight map's "cells" and the Rand error's segments are the
connected regions of the other classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlens.errors import DataError

MAX_CLASSES = 16  # more distinct values than this in the masks: not a label image


@dataclass(frozen=True)
class Section:
    """One image (H, W) float32 in [0, 1] and, when labelled, its mask of class indices."""

    name: str
    image: np.ndarray  # (H, W) float32
    mask: np.ndarray | None  # (H, W) int64 in 0..K-1


def read_grey(path: Path) -> np.ndarray:
    """A greyscale PNG as (H, W) uint8; RGB(A) only when its colour channels are equal."""
    import skimage.io

    try:
        array = np.asarray(skimage.io.imread(path))
    except Exception as err:
        raise DataError(f"{path} is not a readable image ({type(err).__name__}: {err}).") from None
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
        if not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise DataError(
                f"{path} is a colour image; the segmentation lab takes greyscale images and masks."
            )
        array = rgb[..., 0]
    if array.ndim != 2:
        raise DataError(f"{path} has shape {array.shape}; expected a 2-D greyscale image.")
    if array.dtype == np.uint16:
        return array  # masks may number many classes; images are scaled by their own maximum
    if array.dtype != np.uint8:
        if array.dtype == bool:
            return array.astype(np.uint8) * 255
        raise DataError(f"{path} holds {array.dtype} pixels; expected 8- or 16-bit integers.")
    return array


def _pngs(folder: Path) -> list[str]:
    return sorted(
        (p.name for p in folder.iterdir() if p.suffix.lower() == ".png"), key=_natural_key
    )


def _natural_key(name: str) -> list[object]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def paired_names(data: str | Path, need_labels: bool = True) -> list[str]:
    """The PNG names of ``DIR/image`` (in natural order: 2.png before 10.png), checked to
    have a partner in ``DIR/label`` (and back) when ``need_labels``."""
    root = Path(data)
    images, labels = root / "image", root / "label"
    if not root.is_dir():
        raise DataError(f"--data: {root} does not exist.")
    if not images.is_dir():
        raise DataError(f"--data: {root} has no image/ folder (it needs image/ and label/).")
    names = _pngs(images)
    if not names:
        raise DataError(f"--data: {images} holds no PNG images.")
    if not need_labels:
        return names
    if not labels.is_dir():
        raise DataError(f"--data: {root} has no label/ folder (it needs image/ and label/).")
    masks = _pngs(labels)
    for name in names:
        if name not in masks:
            raise DataError(f"{images / name} has no mask: {labels / name} is missing.")
    for name in masks:
        if name not in names:
            raise DataError(f"{labels / name} has no image: {images / name} is missing.")
    return names


def class_values(data: str | Path, names: list[str]) -> list[int]:
    """The sorted distinct mask values over the sections ``names`` of ``DIR/label``."""
    values: set[int] = set()
    for name in names:
        path = Path(data) / "label" / name
        found = np.unique(read_grey(path))
        if len(found) > MAX_CLASSES:
            raise DataError(
                f"{path} has {len(found)} distinct values; a mask holds one value per class "
                f"(at most {MAX_CLASSES}), e.g. 0 and 255. Was it saved with smoothing or as JPEG?"
            )
        values.update(int(v) for v in found)
        if len(values) > MAX_CLASSES:
            raise DataError(
                f"the masks in {Path(data) / 'label'} have more than {MAX_CLASSES} distinct values "
                f"(after {path}); a mask holds one value per class."
            )
    if len(values) < 2:
        raise DataError(
            f"every mask in {Path(data) / 'label'} holds the single value {min(values)}; "
            "segmentation needs at least two classes."
        )
    return sorted(values)


def to_classes(mask: np.ndarray, values: list[int], path: Path) -> np.ndarray:
    """Mask values → class indices 0..K-1; a value outside ``values`` is an error naming
    the file, the pixel and the values expected."""
    lookup = np.full(max(int(mask.max()), max(values)) + 1, -1, np.int64)
    lookup[values] = np.arange(len(values))
    classes = lookup[mask]
    if (classes < 0).any():
        row, col = np.argwhere(classes < 0)[0]
        raise DataError(
            f"{path} has the value {int(mask[row, col])} at row {row}, column {col}; the masks "
            f"use the values {', '.join(map(str, values))} (one per class)."
        )
    return classes


def load_sections(
    data: str | Path, names: list[str], values: list[int] | None, labelled: bool = True
) -> list[Section]:
    """Images as floats in [0, 1] (by their bit depth) and masks as class indices."""
    root = Path(data)
    sections = []
    for name in names:
        raw = read_grey(root / "image" / name)
        image = raw.astype(np.float32) / (65535.0 if raw.dtype == np.uint16 else 255.0)
        mask = None
        if labelled:
            assert values is not None
            path = root / "label" / name
            label = read_grey(path)
            if label.shape != raw.shape:
                raise DataError(
                    f"{path} is {label.shape[0]}×{label.shape[1]} but its image is "
                    f"{raw.shape[0]}×{raw.shape[1]}; a mask must match its image."
                )
            mask = to_classes(label, values, path)
        sections.append(Section(name, image, mask))
    return sections


def split_validation(names: list[str], val: int, seed: int) -> tuple[list[str], list[str]]:
    """(training names, validation names): ``val`` sections drawn with ``seed``, the rest
    for training, both in natural order."""
    if not 0 <= val < len(names):
        raise DataError(
            f"--val {val}: the folder has {len(names)} sections; keep between 0 and "
            f"{len(names) - 1} for validation (at least one must remain to train on)."
        )
    chosen = set(np.random.default_rng([seed, 12]).choice(len(names), val, replace=False))
    return (
        [n for i, n in enumerate(names) if i not in chosen],
        [n for i, n in enumerate(names) if i in chosen],
    )


# -----------------------------------------------------------------------------
# the weight map of Ronneberger et al. 2015, eq. (2)


def objects(mask: np.ndarray) -> np.ndarray:
    """Connected regions (4-connectivity) of each class except 0, numbered 1…; class 0 → 0."""
    from skimage.measure import label

    out = np.zeros(mask.shape, np.int64)
    count = 0
    for k in np.unique(mask):
        if k == 0:
            continue
        regions, n = label(mask == k, connectivity=1, return_num=True)
        out[regions > 0] = regions[regions > 0] + count
        count += n
    return out


def class_weights(masks: list[np.ndarray], k: int) -> np.ndarray:
    """w_c per class: N / (K · N_c), so every class carries the same total weight (a class
    absent from the masks gets 0)."""
    counts = np.zeros(k, np.float64)
    for mask in masks:
        counts += np.bincount(mask.ravel(), minlength=k)[:k]
    total = counts.sum()
    return np.where(counts > 0, total / (k * np.maximum(counts, 1)), 0.0)


def nearest_two_distances(cells: np.ndarray, cutoff: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(d1, d2): per pixel, the Euclidean distances to the nearest and the second-nearest
    object of ``cells`` (0 inside an object for d1). An object's distances are computed in
    its bounding box grown by ``cutoff`` pixels (exact there; farther pixels get inf);
    ``cutoff=None`` uses the whole image (exact everywhere, slower)."""
    from scipy.ndimage import (  # type: ignore[import-untyped]
        distance_transform_edt,
        find_objects,
    )

    h, w = cells.shape
    d1 = np.full((h, w), np.inf)
    d2 = np.full((h, w), np.inf)
    for index, box in enumerate(find_objects(cells), start=1):
        if box is None:
            continue
        if cutoff is None:
            rows, cols = slice(0, h), slice(0, w)
        else:
            grow = int(np.ceil(cutoff))
            rows = slice(max(box[0].start - grow, 0), min(box[0].stop + grow, h))
            cols = slice(max(box[1].start - grow, 0), min(box[1].stop + grow, w))
        distance = distance_transform_edt(cells[rows, cols] != index)  # 0 on the object
        near, second = d1[rows, cols], d2[rows, cols]
        d2[rows, cols] = np.minimum(second, np.maximum(near, distance))
        d1[rows, cols] = np.minimum(near, distance)
    return d1, d2


def weight_map(
    mask: np.ndarray,
    w_class: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    exact: bool = False,
) -> np.ndarray:
    """w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²)) (Ronneberger et al. eq. 2), with
    d1, d2 the distances to the nearest and second-nearest object; float32 (H, W).

    Each object's distances are computed within 6σ of it, where the border term has fallen
    below w0 · e⁻¹⁸ ≈ 2·10⁻⁷ (fast: one small distance transform per object);
    ``exact=True`` computes them over the whole image."""
    cells = objects(mask)
    d1, d2 = nearest_two_distances(cells, None if exact else 6 * sigma)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))  # 0 where d2 = inf
    return (w_class[mask] + border).astype(np.float32)
