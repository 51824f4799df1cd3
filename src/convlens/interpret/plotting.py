"""Figures of interpretation results; they only read the numbers other modules computed.

Built on ``matplotlib.figure.Figure`` (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from convlens.interpret.faithfulness import FaithfulnessResult
from convlens.interpret.maps import METHODS, Attribution
from convlens.interpret.maximize import Visualisation
from convlens.interpret.sanity import SanityResult


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def image_array(pixels: Any) -> np.ndarray:
    """(3, H, W) tensor or (H, W, 3) array in [0, 1] → (H, W, 3) float array."""
    array = np.asarray(pixels.detach() if hasattr(pixels, "detach") else pixels, dtype=np.float32)
    return array.transpose(1, 2, 0) if array.shape[0] == 3 and array.ndim == 3 else array


def _map_style(values: np.ndarray, signed: bool) -> dict[str, Any]:
    """Signed maps on a diverging scale centred at 0; magnitudes from 0 up."""
    if signed:
        limit = float(np.abs(values).max()) or 1.0
        return {"cmap": "coolwarm", "vmin": -limit, "vmax": limit}
    return {"cmap": "inferno", "vmin": 0.0, "vmax": float(values.max()) or 1.0}


def attribution_figure(pixels: Any, result: Attribution, title: str) -> Any:
    """Image, map, and the map over the image (alpha 0.5)."""
    image = image_array(pixels)
    style = _map_style(result.map, METHODS[result.method].signed)
    fig = _figure(9, 3.4)
    axes = fig.subplots(1, 3)
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title("image")
    shown = axes[1].imshow(result.map, interpolation="nearest", **style)
    axes[1].set_title(result.method)
    fig.colorbar(shown, ax=axes[1], shrink=0.8)
    axes[2].imshow(image.mean(axis=2), cmap="gray", interpolation="nearest")
    axes[2].imshow(result.map, alpha=0.55, interpolation="bilinear", **style)
    axes[2].set_title("overlay")
    for axis in axes:
        axis.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig


def tile(maps: np.ndarray, columns: int) -> np.ndarray:
    """(n, h, w) → one mosaic with a one-pixel NaN gap between tiles (drawn as background)."""
    n, h, w = maps.shape
    rows = math.ceil(n / columns)
    mosaic = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = maps[i]
    return mosaic


def activations_figure(layers: Mapping[str, np.ndarray], max_channels: int = 64) -> Any:
    """One mosaic per layer, 16 channels a row, one colour scale per layer (a dead channel
    stays dark instead of being stretched to full contrast)."""
    mosaics = {}
    for name, maps in layers.items():
        shown = maps[:max_channels]
        mosaics[name] = (tile(shown, min(16, len(shown))), len(shown))
    width = 9.0
    heights = [width * 0.85 * m.shape[0] / m.shape[1] + 0.35 for m, _ in mosaics.values()]
    fig = _figure(width, sum(heights) + 0.2)
    axes = np.atleast_1d(fig.subplots(len(layers), 1, gridspec_kw={"height_ratios": heights}))
    for axis, (name, (mosaic, count)) in zip(axes, mosaics.items(), strict=True):
        maps = layers[name]
        image = axis.imshow(mosaic, cmap="viridis", interpolation="nearest")
        more = f", first {count} shown" if count < len(maps) else ""
        axis.set_title(
            f"{name}: {maps.shape[0]} channels of {maps.shape[1]}×{maps.shape[2]}{more}",
            fontsize=9,
        )
        axis.set_axis_off()
        fig.colorbar(image, ax=axis, fraction=0.03, pad=0.01)
    return fig


def filters_figure(weights: np.ndarray, layer: str, max_channels: int = 32) -> Any:
    """RGB kernels when the layer reads 3 channels (one joint scale, grey = 0); otherwise a
    grid of output × input channels on a diverging scale."""
    out_channels, in_channels, kh, kw = weights.shape
    limit = float(np.abs(weights).max()) or 1.0
    fig = _figure(8, 8)
    axis = fig.subplots()
    if in_channels == 3:
        shown = weights[:64]
        columns = min(8, len(shown))
        rgb = np.stack([tile(shown[:, c], columns) for c in range(3)], axis=-1)
        rgb = np.where(np.isnan(rgb), 1.0, rgb / (2 * limit) + 0.5)
        axis.imshow(rgb, interpolation="nearest")
        axis.set_title(
            f"{layer}: {min(64, out_channels)} of {out_channels} kernels ({kh}×{kw}, RGB)"
        )
    else:
        rows, cols = min(out_channels, max_channels), min(in_channels, max_channels)
        grid = weights[:rows, :cols].reshape(rows * cols, kh, kw)
        image = axis.imshow(
            tile(grid, cols), cmap="coolwarm", vmin=-limit, vmax=limit, interpolation="nearest"
        )
        fig.colorbar(image, ax=axis, shrink=0.6)
        axis.set_title(
            f"{layer}: rows = {rows} of {out_channels} output channels, "
            f"columns = {cols} of {in_channels} input channels ({kh}×{kw})"
        )
    axis.set_axis_off()
    return fig


def maximize_figure(result: Visualisation, title: str) -> Any:
    fig = _figure(8, 3.6)
    left, right = fig.subplots(1, 2)
    left.imshow(result.image, interpolation="nearest")
    left.set_axis_off()
    left.set_title(result.unit)
    right.plot(np.arange(1, len(result.objective) + 1), result.objective)
    right.set_xlabel("step")
    right.set_ylabel("activation (jittered image)")
    right.set_title(f"{result.start:.3g} → {result.final:.3g}")
    right.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig


def sanity_figure(result: SanityResult, title: str) -> Any:
    """Mean rank correlation against the cascade (Adebayo et al. 2018, Fig. 2)."""
    fig = _figure(8, 4.2)
    axis = fig.subplots()
    means = result.mean()
    positions = np.arange(len(result.stages))
    for k, method in enumerate(result.methods):
        axis.plot(positions, means[k], marker="o", label=method)
    axis.axhline(0.0, color="grey", lw=0.8)
    axis.set_xticks(positions, result.stages, rotation=45, ha="right")
    axis.set_xlabel("re-initialised down to layer (cascade from the top)")
    axis.set_ylabel("Spearman ρ with the trained map (|map|)")
    axis.set_ylim(-0.25, 1.05)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    axis.set_title(title, fontsize=10)
    return fig


def sanity_maps_figure(result: SanityResult, pixels: Any) -> Any:
    """The first image's maps: one row per method, trained model then each cascade step."""
    stages = ("trained", *result.stages)
    rows, cols = len(result.methods), len(stages) + 1
    fig = _figure(1.3 * cols, 1.35 * rows + 0.3)
    axes = np.atleast_2d(fig.subplots(rows, cols))
    for r, method in enumerate(result.methods):
        axes[r, 0].imshow(image_array(pixels), interpolation="nearest")
        axes[r, 0].set_ylabel(method, fontsize=8)
        for c, stage in enumerate(stages):
            values = np.abs(result.example_maps[r, c])
            axes[r, c + 1].imshow(values, cmap="inferno", interpolation="nearest")
            if r == 0:
                axes[r, c + 1].set_title(stage, fontsize=7, rotation=30)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    return fig


def faithfulness_figure(result: FaithfulnessResult, title: str) -> Any:
    """Mean deletion and insertion curves, one line per method and the random order."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    for axis, name, curves in (
        (axes[0], "deletion (lower area is better)", result.deletion),
        (axes[1], "insertion (higher area is better)", result.insertion),
    ):
        areas = result.auc(curves).mean(axis=1)
        for k, order in enumerate(result.orders):
            style = {"color": "black", "ls": "--"} if order == "random" else {}
            axis.plot(
                result.fractions, curves[k].mean(axis=0), label=f"{order} ({areas[k]:.3f})", **style
            )
        axis.set_xlabel("share of pixels " + ("removed" if "deletion" in name else "inserted"))
        axis.set_ylabel("probability of the class")
        axis.set_title(name, fontsize=10)
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def methods_grid(images: list[Any], maps: Mapping[str, list[np.ndarray]], labels: list[str]) -> Any:
    """Rows: images (with their label); columns: the image, then each method's map over it."""
    methods = list(maps)
    fig = _figure(1.6 * (len(methods) + 1), 1.7 * len(images) + 0.3)
    axes = np.atleast_2d(fig.subplots(len(images), len(methods) + 1))
    for r, pixels in enumerate(images):
        image = image_array(pixels)
        axes[r, 0].imshow(image, interpolation="nearest")
        axes[r, 0].set_ylabel(labels[r], fontsize=7)
        for c, method in enumerate(methods, start=1):
            values = maps[method][r]
            style = _map_style(values, METHODS[method].signed)
            axes[r, c].imshow(image.mean(axis=2), cmap="gray", interpolation="nearest")
            axes[r, c].imshow(values, alpha=0.6, interpolation="bilinear", **style)
            if r == 0:
                axes[r, c].set_title(method, fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    return fig


def images_row(images: list[np.ndarray], titles: list[str]) -> Any:
    """A row of (H, W, 3) images with titles (feature visualisations of several units)."""
    fig = _figure(1.5 * len(images), 1.9)
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for axis, image, title in zip(axes, images, titles, strict=True):
        axis.imshow(image, interpolation="nearest")
        axis.set_title(title, fontsize=8)
        axis.set_axis_off()
    return fig
