"""A seeded synthetic detection data set: shapes on textured backgrounds, PNG + COCO JSON.

Each image is a smooth random colour field with stripes and pixel noise, and one to a
few non-overlapping shapes — ellipses, rectangles and triangles of random size, aspect,
colour and position. The ground-truth box of a shape is the tight box of its pixels
(x from the first covered column to one past the last, as COCO counts), and its
``area`` is its pixel count, as COCO's is the mask's.

Image i of split s depends only on (seed, s, i): the same seed gives the same pixels and
the same JSON whatever the number of images, and the train and validation splits never
share an image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlens.detection.coco import Annotation, Category, GroundTruth, Image, ground_truth_json
from convlens.detection.files import atomic_write, write_json
from convlens.errors import DataError

CLASSES = ("ellipse", "rectangle", "triangle")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class ShapesConfig:
    """What the generator draws; the defaults make the detection lab's data set."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 10  # the longer side of a shape, pixels
    max_size: int = 30
    max_aspect: float = 1.6  # width / height between 1/max_aspect and max_aspect
    min_contrast: float = 0.35  # RGB distance (0–√3) between a shape and the background under it
    noise: float = 0.04  # σ of the per-pixel noise, in [0, 1] units

    def check(self) -> None:
        if not 8 <= self.image_size <= 4096:
            raise DataError(f"image_size must be between 8 and 4096; got {self.image_size}.")
        if not 1 <= self.min_size <= self.max_size <= self.image_size:
            raise DataError(
                f"shape sizes must satisfy 1 ≤ min_size ≤ max_size ≤ image_size; got "
                f"{self.min_size}, {self.max_size}, {self.image_size}."
            )
        if not 0 <= self.min_objects <= self.max_objects:
            raise DataError("objects per image must satisfy 0 ≤ min_objects ≤ max_objects.")


@dataclass(frozen=True)
class Shape:
    category: int  # index into CLASSES
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 of its pixels (x2, y2 one past)
    area: int  # pixels covered


def _background(rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """(H, W, 3) in [0, 1]: a bilinear colour field, faint stripes and pixel noise."""
    coarse = rng.uniform(0.1, 0.9, (4, 4, 3))
    t = np.linspace(0, 3, size)
    i0 = np.minimum(t.astype(int), 2)
    f = (t - i0)[:, None]
    rows = coarse[i0] * (1 - f[..., None]) + coarse[i0 + 1] * f[..., None]  # (size, 4, 3)
    field = rows[:, i0] * (1 - f.T[..., None]) + rows[:, i0 + 1] * f.T[..., None]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 12)
    y, x = np.mgrid[0:size, 0:size]
    stripes = 0.08 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    image = field + stripes[..., None] + rng.normal(0, noise, (size, size, 3))
    return np.clip(image, 0, 1)


def _mask(category: int, box: tuple[int, int, int, int], size: int, flip: bool) -> np.ndarray:
    """Pixels (by their centres) inside the shape drawn in ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if CLASSES[category] == "rectangle":
        return (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    if CLASSES[category] == "ellipse":
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    # Triangle: apex at the top centre (bottom centre when flipped), base the other side.
    v = (y - y1) / (y2 - y1)
    if flip:
        v = 1 - v
    return (v >= 0) & (v <= 1) & (np.abs(x - cx) <= rx * v)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render_image(rng: np.random.Generator, config: ShapesConfig) -> tuple[np.ndarray, list[Shape]]:
    """One image (H, W, 3) uint8 and its shapes; draws from ``rng`` only."""
    size = config.image_size
    image = _background(rng, size, config.noise)
    shapes: list[Shape] = []
    taken = np.zeros((size, size), bool)
    wanted = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(wanted * 20):  # tries; a crowded image may end with fewer shapes
        if len(shapes) == wanted:
            break
        category = int(rng.integers(len(CLASSES)))
        longer = rng.uniform(config.min_size, config.max_size)
        aspect = np.exp(rng.uniform(-np.log(config.max_aspect), np.log(config.max_aspect)))
        w = max(3, round(longer * min(1.0, aspect)))
        h = max(3, round(longer * min(1.0, 1 / aspect)))
        x1, y1 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        mask = _mask(category, (x1, y1, x1 + w, y1 + h), size, bool(rng.integers(2)))
        box = _tight_box(mask) if mask.any() else None
        # Boxes may not touch (a one-pixel margin), so every box is unambiguous.
        if (
            box is None
            or taken[max(box[1] - 1, 0) : box[3] + 1, max(box[0] - 1, 0) : box[2] + 1].any()
        ):
            continue
        under = image[mask].mean(0)
        for _attempt in range(20):
            colour = rng.uniform(0, 1, 3)
            if np.linalg.norm(colour - under) >= config.min_contrast:
                break
        else:
            colour = 1 - under  # the opposite colour always contrasts
        image[mask] = np.clip(colour + rng.normal(0, config.noise, (int(mask.sum()), 3)), 0, 1)
        taken[box[1] : box[3], box[0] : box[2]] = True
        shapes.append(Shape(category, box, int(mask.sum())))
    return (image * 255).round().astype(np.uint8), shapes


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def generate(
    seed: int, split: str, count: int, config: ShapesConfig = ShapesConfig()
) -> Iterator[tuple[np.ndarray, list[Shape]]]:
    """Images and shapes of one split, in order, without writing anything."""
    config.check()
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")
    for index in range(count):
        yield render_image(image_rng(seed, split, index), config)


def categories() -> tuple[Category, ...]:
    return tuple(Category(i + 1, name) for i, name in enumerate(CLASSES))


def _write_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image as PILImage

    PILImage.fromarray(pixels).save(path, "PNG")


def write_split(
    root: str | Path,
    split: str,
    count: int,
    seed: int,
    config: ShapesConfig = ShapesConfig(),
    written: Callable[[], None] | None = None,  # called after each image (a progress bar)
) -> Path:
    """``root/split/000000.png …`` and ``root/split.json`` (COCO); returns the JSON path."""
    root = Path(root)
    images: list[Image] = []
    annotations: list[Annotation] = []
    for index, (pixels, shapes) in enumerate(generate(seed, split, count, config)):
        name = f"{split}/{index:06d}.png"
        atomic_write(root / name, functools.partial(_write_png, pixels))
        if written is not None:
            written()
        image_id = index + 1
        images.append(Image(image_id, config.image_size, config.image_size, name))
        for shape in shapes:
            x1, y1, x2, y2 = shape.box
            annotations.append(
                Annotation(
                    len(annotations) + 1,
                    image_id,
                    shape.category + 1,
                    (float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                    float(shape.area),
                )
            )
    gt = GroundTruth(tuple(images), categories(), tuple(annotations))
    return write_json(root / f"{split}.json", ground_truth_json(gt))


def make_dataset(
    root: str | Path,
    num_train: int = 4000,
    num_val: int = 500,
    seed: int = 0,
    config: ShapesConfig = ShapesConfig(),
    written: Callable[[], None] | None = None,  # called after each image (a progress bar)
) -> dict[str, Path]:
    """Write both splits under ``root``; returns {"train": train.json, "val": val.json}."""
    config.check()
    return {
        "train": write_split(root, "train", num_train, seed, config, written),
        "val": write_split(root, "val", num_val, seed, config, written),
    }


def load_images(root: str | Path, gt: GroundTruth) -> np.ndarray:
    """(N, H, W, 3) uint8 of the ground truth's images, in its order, read from ``root``.

    Every image must have the size its JSON entry gives (when it gives one: the boxes are
    in those pixels) and the size of the first, so they stack into one array.
    """
    from PIL import Image as PILImage

    root = Path(root)
    arrays: list[np.ndarray] = []
    for image in gt.images:
        path = root / image.file_name
        try:
            with PILImage.open(path) as handle:
                pixels = np.asarray(handle.convert("RGB"))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read image {path} (image id {image.id}): {err}.") from None
        height, width = pixels.shape[:2]
        if (image.width or image.height) and (width, height) != (image.width, image.height):
            raise DataError(
                f"image {path} (image id {image.id}) is {width}×{height} pixels, but its "
                f"entry in 'images' says {image.width}×{image.height}."
            )
        if arrays and pixels.shape != arrays[0].shape:
            first = arrays[0].shape
            raise DataError(
                f"image {path} (image id {image.id}) is {width}×{height} pixels, but the first "
                f"image is {first[1]}×{first[0]}; all images must have one size."
            )
        arrays.append(pixels)
    return np.stack(arrays) if arrays else np.zeros((0, 0, 0, 3), np.uint8)
