"""Palette (k-means), nearest-colour targets, grayscale input and palette files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from colourize_data import COLOURS
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from convlens.errors import ArgumentError, DataError
from convlens.labs.colourize import (
    decode,
    grayscale,
    kmeans_palette,
    load_palette,
    nearest_colour,
)


def constructed_image() -> np.ndarray:
    """(1, 32, 32, 3) in [0, 1]: four quadrants of four known colours."""
    image = np.empty((1, 32, 32, 3), np.float32)
    image[0, :16, :16], image[0, :16, 16:] = COLOURS[0], COLOURS[1]
    image[0, 16:, :16], image[0, 16:, 16:] = COLOURS[2], COLOURS[3]
    return image / 255.0


def test_kmeans_finds_the_colours_of_a_constructed_image() -> None:
    image = constructed_image()
    palette = kmeans_palette(image, k=4, seed=0)
    expected = COLOURS[np.lexsort(COLOURS.T[::-1])] / 255.0  # sorted by R, then G, then B
    np.testing.assert_allclose(palette, expected, atol=1e-6)


def test_targets_are_the_nearest_colour_of_every_pixel() -> None:
    image = constructed_image()
    palette = kmeans_palette(image, k=4, seed=0)
    targets = nearest_colour(image, palette)  # (1, 32, 32)
    assert targets.shape == (1, 32, 32) and targets.dtype == torch.int64
    index = {tuple(np.round(c * 255).astype(int)): i for i, c in enumerate(palette)}
    for (rows, cols), colour in zip(
        [
            (slice(0, 16), slice(0, 16)),
            (slice(0, 16), slice(16, 32)),
            (slice(16, 32), slice(0, 16)),
            (slice(16, 32), slice(16, 32)),
        ],
        COLOURS,
        strict=True,
    ):
        assert (targets[0, rows, cols] == index[tuple(int(v) for v in colour)]).all()
    np.testing.assert_allclose(decode(targets, palette), image, atol=1e-6)  # exact round trip


def test_a_pixel_between_colours_goes_to_the_nearer_one() -> None:
    palette = np.array([[0, 0, 0], [1, 1, 1]], np.float32)
    pixels = np.array([[[[0.4, 0.4, 0.4], [0.6, 0.5, 0.6], [0.1, 0.9, 0.4]]]], np.float32)
    # distances² to black / white: 0.48 / 1.08; 0.97 / 0.57; 0.98 / 1.18
    assert nearest_colour(pixels, palette).tolist() == [[[0, 1, 0]]]


@given(
    arrays(np.float32, (3, 5, 3), elements=st.floats(0, 1, width=32)),
    arrays(np.float32, (4, 3), elements=st.floats(0, 1, width=32), unique=False),
)
def test_nearest_colour_matches_brute_force(pixels: np.ndarray, palette: np.ndarray) -> None:
    got = nearest_colour(pixels[None], palette)[0].numpy()  # (3, 5)
    d = ((pixels[..., None, :].astype(np.float64) - palette.astype(np.float64)) ** 2).sum(-1)
    best = d.min(-1, keepdims=True)
    # the chosen colour is at the minimal distance (ties: any minimiser, up to rounding)
    chosen = np.take_along_axis(d, got[..., None], -1)
    np.testing.assert_allclose(chosen, best, rtol=0, atol=1e-12)


def test_kmeans_is_reproducible_and_seeded() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.random((5000, 3)).astype(np.float32)
    a = kmeans_palette(pixels, 8, seed=3, sample=2000, iters=5)
    b = kmeans_palette(pixels, 8, seed=3, sample=2000, iters=5)
    c = kmeans_palette(pixels, 8, seed=4, sample=2000, iters=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (8, 3) and a.dtype == np.float32


def test_more_colours_than_distinct_pixels_still_gives_k_colours() -> None:
    palette = kmeans_palette(constructed_image(), k=6, seed=0)
    assert palette.shape == (6, 3) and np.isfinite(palette).all()


def test_grayscale_is_the_mean_of_r_g_b() -> None:
    rgb = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    grey = grayscale(rgb)
    assert grey.shape == (2, 1, 32, 32)
    np.testing.assert_allclose(grey[:, 0].numpy(), rgb.mean(-1), rtol=1e-6)


def test_palette_file_size_must_match(tmp_path: Path) -> None:
    path = tmp_path / "palette.npy"
    np.save(path, np.zeros((3, 3), np.float32))
    assert load_palette(path, 3).shape == (3, 3)
    with pytest.raises(ArgumentError, match=r"holds 3 colours but --num-colours is 24"):
        load_palette(path, 24)


def test_bad_palette_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_palette(tmp_path / "none.npy", 4)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(DataError, match=r"not a NumPy \.npy file"):
        load_palette(tmp_path / "junk.npy", 4)
    np.save(tmp_path / "flat.npy", np.zeros(12))
    with pytest.raises(DataError, match=r"\(K, 3\)"):
        load_palette(tmp_path / "flat.npy", 4)
    np.save(tmp_path / "bytes.npy", np.full((4, 3), 200.0))
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        load_palette(tmp_path / "bytes.npy", 4)
