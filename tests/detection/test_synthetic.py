"""The synthetic shapes: deterministic for a seed, tight boxes, valid COCO, PNGs as drawn."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from convlens.detection.coco import load_ground_truth
from convlens.detection.synthetic import (
    CLASSES,
    ShapesConfig,
    generate,
    load_images,
    make_dataset,
    write_split,
)
from convlens.errors import DataError


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_files_and_images_do_not_depend_on_the_count(tmp_path) -> None:
    make_dataset(tmp_path / "a", num_train=6, num_val=3, seed=4)
    make_dataset(tmp_path / "b", num_train=6, num_val=3, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_split(tmp_path / "c", "train", 3, seed=4)
    for name in ("000000.png", "000001.png", "000002.png"):
        assert (tmp_path / "a/train" / name).read_bytes() == (
            tmp_path / "c/train" / name
        ).read_bytes()
    make_dataset(tmp_path / "d", num_train=6, num_val=3, seed=5)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "d")
    assert not list(tmp_path.rglob(".*"))  # no temporary files left


def test_train_and_val_differ() -> None:
    (train, _), (val, _) = next(generate(0, "train", 1)), next(generate(0, "val", 1))
    assert not np.array_equal(train, val)


def test_boxes_are_the_tight_boxes_of_the_shapes_pixels() -> None:
    # Without noise a shape is one flat colour, so its pixels can be found again.
    config = ShapesConfig(noise=0.0)
    for pixels, shapes in generate(11, "train", 40, config):
        for shape in shapes:
            x1, y1, x2, y2 = shape.box
            inside = pixels[y1:y2, x1:x2].reshape(-1, 3)
            colours, counts = np.unique(inside, axis=0, return_counts=True)
            colour = colours[counts.argmax()]
            mask = (pixels == colour).all(-1)
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == shape.box
            assert mask.sum() == shape.area


def test_shapes_respect_the_configuration() -> None:
    config = ShapesConfig(image_size=64, min_objects=1, max_objects=4, min_size=10, max_size=30)
    counts = []
    for pixels, shapes in generate(2, "val", 60, config):
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        counts.append(len(shapes))
        for shape in shapes:
            x1, y1, x2, y2 = shape.box
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert max(x2 - x1, y2 - y1) <= 30
            assert 0.4 * (x2 - x1) * (y2 - y1) <= shape.area <= (x2 - x1) * (y2 - y1)
        for i, a in enumerate(shapes):  # boxes never touch
            for b in shapes[i + 1 :]:
                apart_x = a.box[2] < b.box[0] or b.box[2] < a.box[0]
                apart_y = a.box[3] < b.box[1] or b.box[3] < a.box[1]
                assert apart_x or apart_y
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1
    categories = {s.category for _, shapes in generate(2, "val", 60, config) for s in shapes}
    assert categories == set(range(len(CLASSES)))


def test_written_files_are_coco_and_read_back_as_drawn(tmp_path) -> None:
    paths = make_dataset(tmp_path, num_train=4, num_val=2, seed=1)
    gt = load_ground_truth(paths["train"])
    assert [c.name for c in gt.categories] == list(CLASSES)
    assert [im.file_name for im in gt.images] == [f"train/{i:06d}.png" for i in range(4)]
    drawn = list(generate(1, "train", 4))
    np.testing.assert_array_equal(load_images(tmp_path, gt), np.stack([p for p, _ in drawn]))
    boxes = [(a.image_id, a.bbox, a.area) for a in gt.annotations]
    expected = [
        (
            i + 1,
            (
                float(s.box[0]),
                float(s.box[1]),
                float(s.box[2] - s.box[0]),
                float(s.box[3] - s.box[1]),
            ),
            float(s.area),
        )
        for i, (_, shapes) in enumerate(drawn)
        for s in shapes
    ]
    assert boxes == expected


def test_bad_configuration_and_missing_images(tmp_path) -> None:
    with pytest.raises(DataError, match="min_size ≤ max_size"):
        next(generate(0, "train", 1, ShapesConfig(min_size=40, max_size=20)))
    with pytest.raises(DataError, match="split must be one of train, val"):
        next(generate(0, "test", 1))
    paths = make_dataset(tmp_path, num_train=2, num_val=1)
    (tmp_path / "train" / "000001.png").unlink()
    with pytest.raises(DataError, match=r"cannot read image .*000001.png \(image id 2\)"):
        load_images(tmp_path, load_ground_truth(paths["train"]))
