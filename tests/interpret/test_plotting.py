"""The pictures of what is inside the network: mosaics, RGB kernels, per-channel kernels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from convlens.interpret.plotting import activations_figure, filters_figure, tile


def shown_image(fig: object) -> np.ndarray:
    (axis, *_) = fig.axes  # type: ignore[attr-defined]
    (image,) = axis.get_images()
    return np.asarray(image.get_array().filled(np.nan), dtype=np.float64)


def test_tile_lays_maps_out_row_major_with_one_pixel_gaps() -> None:
    maps = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    mosaic = tile(maps, 2)
    assert mosaic.shape == (3 * 3 - 1, 2 * 4 - 1)
    for i in range(5):
        r, c = divmod(i, 2)
        np.testing.assert_array_equal(mosaic[3 * r : 3 * r + 2, 4 * c : 4 * c + 3], maps[i])
    assert np.isnan(mosaic[2, :]).all() and np.isnan(mosaic[:, 3]).all()
    assert np.isnan(mosaic[6:, 4:]).all()  # the sixth tile is missing


def test_first_layer_kernels_are_rgb_with_grey_at_zero() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    fig = filters_figure(weights, "conv1")
    rgb = shown_image(fig)
    limit = np.abs(weights).max()
    assert rgb.shape == (3, 5 * 4 - 1, 3)  # one row of five kernels (8 a row)
    assert (rgb[:, 3::4] == 1.0).all()  # white gaps
    for k in range(5):
        kernel = rgb[0:3, 4 * k : 4 * k + 3]  # H × W × RGB
        np.testing.assert_allclose(
            kernel, weights[k].transpose(1, 2, 0) / (2 * limit) + 0.5, rtol=1e-6
        )
    assert "5 of 5 kernels (3×3, RGB)" in fig.axes[0].get_title()
    plt.close(fig)


def test_deeper_kernels_are_one_tile_per_output_and_input_channel() -> None:
    weights = np.arange(4 * 6 * 2 * 2, dtype=np.float32).reshape(4, 6, 2, 2) - 40
    fig = filters_figure(weights, "conv2")
    grid = shown_image(fig)
    assert grid.shape == (4 * 3 - 1, 6 * 3 - 1)
    for o in range(4):
        for i in range(6):
            np.testing.assert_array_equal(grid[3 * o : 3 * o + 2, 3 * i : 3 * i + 2], weights[o, i])
    assert (
        "rows = 4 of 4 output channels, columns = 6 of 6 input channels" in fig.axes[0].get_title()
    )
    plt.close(fig)


def test_activations_figure_has_one_mosaic_per_layer() -> None:
    layers = {"a": np.ones((20, 4, 4), np.float32), "b": np.zeros((3, 2, 2), np.float32)}
    fig = activations_figure(layers)
    titles = [axis.get_title() for axis in fig.axes if axis.get_title()]
    assert titles == ["a: 20 channels of 4×4", "b: 3 channels of 2×2"]
    plt.close(fig)
