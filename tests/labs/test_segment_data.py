"""Segmentation data: synthetic EM-like sections written by the tests (shared with the other
segment tests), folder pairing, the value → class map, bad folders and masks, and the
U-Net paper's weight map against a brute-force computation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from convlens.errors import DataError
from convlens.labs import seg_data


def cells(size: int, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """A Voronoi tessellation as a mask: 255 inside cells, 0 on 1–2-pixel borders."""
    seeds = rng.uniform(0, size, (n_cells, 2))
    rows, cols = np.mgrid[:size, :size]
    distance = np.hypot(rows[..., None] - seeds[:, 0], cols[..., None] - seeds[:, 1])
    nearest = distance.argmin(-1)
    border = np.zeros((size, size), bool)
    border[:-1] |= nearest[:-1] != nearest[1:]
    border[:, :-1] |= nearest[:, :-1] != nearest[:, 1:]
    return np.where(border, 0, 255).astype(np.uint8)


def write_sections(
    root: Path, n: int = 6, size: int = 64, seed: int = 0, values: tuple[int, int] = (0, 255)
) -> Path:
    """``n`` sections: image/i.png (dark borders, bright noisy cells) and label/i.png."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = cells(size, 9, rng)
        image = np.where(mask > 0, 170, 60) + rng.normal(0, 20, mask.shape)
        skimage.io.imsave(root / "image" / f"{i}.png", np.clip(image, 0, 255).astype(np.uint8),
                          check_contrast=False)  # fmt: skip
        label = np.where(mask > 0, values[1], values[0]).astype(np.uint8)
        skimage.io.imsave(root / "label" / f"{i}.png", label, check_contrast=False)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sections(tmp_path_factory.mktemp("sections"), n=12)


def test_pairs_in_natural_order_and_maps_values_to_classes(folder: Path) -> None:
    names = seg_data.paired_names(folder)
    assert names == [f"{i}.png" for i in range(12)]  # 2.png before 10.png
    assert seg_data.class_values(folder, names) == [0, 255]
    (section,) = seg_data.load_sections(folder, ["3.png"], [0, 255])
    raw = skimage.io.imread(folder / "label" / "3.png")
    assert section.mask is not None
    np.testing.assert_array_equal(section.mask, (raw == 255).astype(np.int64))
    np.testing.assert_array_equal(
        section.image, skimage.io.imread(folder / "image" / "3.png") / np.float32(255)
    )


def test_validation_split_is_seeded_and_disjoint(folder: Path) -> None:
    names = seg_data.paired_names(folder)
    train, val = seg_data.split_validation(names, 3, seed=0)
    assert len(val) == 3 and sorted(train + val, key=names.index) == names
    assert seg_data.split_validation(names, 3, seed=0) == (train, val)
    assert seg_data.split_validation(names, 3, seed=1)[1] != val


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda r: (r / "label" / "4.png").unlink(), r"image/4\.png has no mask: .*label/4\.png"),
        (lambda r: (r / "image" / "4.png").unlink(), r"label/4\.png has no image: .*image/4\.png"),
        (lambda r: [p.unlink() for p in (r / "image").iterdir()], r"image holds no PNG images"),
        (lambda r: (r / "label" / "0.png").rename(r / "label.png"), r"0\.png has no mask"),
    ],
)
def test_folders_that_do_not_pair_up_name_the_first_missing_partner(
    tmp_path: Path, break_it: object, message: str
) -> None:
    root = write_sections(tmp_path / "d", n=6)
    break_it(root)  # type: ignore[operator]
    with pytest.raises(DataError, match=message):
        seg_data.paired_names(root)


def test_masks_with_unexpected_values(tmp_path: Path) -> None:
    root = write_sections(tmp_path / "d", n=3)
    smooth = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 200
    skimage.io.imsave(root / "label" / "1.png", smooth.astype(np.uint8), check_contrast=False)
    with pytest.raises(DataError, match=r"label/1\.png has 200 distinct values"):
        seg_data.class_values(root, seg_data.paired_names(root))
    odd = np.zeros((64, 64), np.uint8)
    odd[5, 7] = 128
    with pytest.raises(DataError, match=r"x\.png has the value 128 at row 5, column 7.*0, 255"):
        seg_data.to_classes(odd, [0, 255], Path("x.png"))


def test_weight_map_matches_brute_force() -> None:
    """w = w_c + w0·exp(−(d1 + d2)²/2σ²), d1/d2 the distances to the nearest and
    second-nearest cell, found here by measuring every pixel against every cell pixel."""
    rng = np.random.default_rng(3)
    mask = (cells(24, 5, rng) > 0).astype(np.int64)
    mask[10:13, 4:6] = 0  # a small hole inside a cell: still one cell around it
    w_class = seg_data.class_weights([mask], 2)
    fraction = mask.mean()
    assert w_class == pytest.approx([1 / (2 * (1 - fraction)), 1 / (2 * fraction)])
    regions = seg_data.objects(mask)
    coords = {c: np.argwhere(regions == c) for c in range(1, regions.max() + 1)}
    expected = np.zeros(mask.shape)
    for r, c in itertools.product(range(24), range(24)):
        nearest = sorted(np.hypot(*(points - (r, c)).T).min() for points in coords.values())
        d1, d2 = nearest[0], nearest[1]
        expected[r, c] = w_class[mask[r, c]] + 10 * np.exp(-((d1 + d2) ** 2) / (2 * 5**2))
    np.testing.assert_allclose(seg_data.weight_map(mask, w_class, exact=True), expected, rtol=1e-6)
    # the default computes each cell's distances within 6σ of it: the same to 1e-6
    np.testing.assert_allclose(seg_data.weight_map(mask, w_class), expected, atol=1e-6)


def test_weight_map_with_one_cell_is_the_class_weight() -> None:
    mask = np.ones((10, 10), np.int64)
    mask[:, 0] = 0
    w_class = np.array([2.0, 0.5])
    np.testing.assert_array_equal(seg_data.weight_map(mask, w_class), w_class[mask])
