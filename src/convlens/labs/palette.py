"""Colour palettes for the colourization lab: k-means in RGB over training pixels (or
their distinct colours), the nearest palette colour of every pixel, and palette files.

Pure NumPy, seeded and reproducible: equal runs give equal files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convlens.errors import ArgumentError, DataError


def kmeans_palette(
    pixels: np.ndarray, k: int, seed: int, sample: int = 200_000, iters: int = 25
) -> np.ndarray:
    """k colours (k, 3) float32 by k-means over ``pixels`` (P, 3), reproducible from ``seed``.

    A seeded subsample of at most ``sample`` pixels, k-means++ initialisation, then a
    fixed number of Lloyd iterations (no tolerance test, so the result does not depend
    on float noise near a threshold). An empty cluster is moved to the pixel farthest
    from its centre. The palette is sorted by (R, G, B) so equal runs give equal files.
    """
    rng = np.random.default_rng(seed)
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 3)
    if len(pixels) > sample:
        pixels = pixels[rng.choice(len(pixels), size=sample, replace=False)]
    # k-means++: each next centre drawn with probability ∝ D(x)², D = distance to nearest centre
    centres = np.empty((k, 3))
    centres[0] = pixels[rng.integers(len(pixels))]
    nearest = ((pixels - centres[0]) ** 2).sum(1)  # (P,)
    for j in range(1, k):
        total = nearest.sum()
        pick = (
            rng.choice(len(pixels), p=nearest / total) if total > 0 else rng.integers(len(pixels))
        )
        centres[j] = pixels[pick]
        nearest = np.minimum(nearest, ((pixels - centres[j]) ** 2).sum(1))
    for _ in range(iters):
        assign, dist2 = _nearest(pixels, centres)
        counts = np.bincount(assign, minlength=k)  # (k,)
        sums = np.zeros((k, 3))
        np.add.at(sums, assign, pixels)
        for empty in np.flatnonzero(counts == 0):  # empty cluster → farthest pixel
            far = int(dist2.argmax())
            sums[empty], counts[empty], dist2[far] = pixels[far], 1, 0.0
        centres = sums / counts[:, None]
    order = np.lexsort(centres.T[::-1])  # sort by R, then G, then B
    return centres[order].astype(np.float32)


def distinct_colours(rgb: np.ndarray) -> np.ndarray:
    """Every distinct 8-bit colour among the pixels of ``rgb`` (…, 3) in [0, 1], once each."""
    levels = np.rint(np.asarray(rgb).reshape(-1, 3) * 255).astype(np.int64)  # (P, 3)
    codes = np.unique((levels[:, 0] << 16) | (levels[:, 1] << 8) | levels[:, 2])  # (U,)
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1) / 255.0


def _nearest(
    pixels: np.ndarray, centres: np.ndarray, chunk: int = 262_144
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre, in chunks of pixels.

    ‖p − c‖² = ‖p‖² − 2 p·c + ‖c‖²; ties go to the lower index (argmin).
    """
    assign = np.empty(len(pixels), dtype=np.int64)
    dist2 = np.empty(len(pixels), dtype=pixels.dtype)
    c2 = (centres**2).sum(1)  # (k,)
    for start in range(0, len(pixels), chunk):
        p = pixels[start : start + chunk]  # (B, 3)
        d = (p**2).sum(1, keepdims=True) - 2.0 * p @ centres.T + c2  # (B, k)
        assign[start : start + chunk] = d.argmin(1)
        dist2[start : start + chunk] = np.maximum(d.min(1), 0.0)
    return assign, dist2


def nearest_colour(rgb: np.ndarray, palette: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) → (N, H, W) int64 index of the nearest palette colour (Euclidean RGB)."""
    # float64 so that a pixel equal to a palette colour is assigned exactly to it
    assign, _ = _nearest(rgb.reshape(-1, 3).astype(np.float64), palette.astype(np.float64))
    return torch.from_numpy(assign.reshape(rgb.shape[:-1]))


def load_palette(path: str | Path, num_colours: int) -> np.ndarray:
    try:
        palette = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"--palette: {path} does not exist.") from None
    except Exception as err:
        raise DataError(f"--palette: {path} is not a NumPy .npy file ({err}).") from None
    if palette.ndim != 2 or palette.shape[1] != 3 or not np.issubdtype(palette.dtype, np.number):
        raise DataError(
            f"--palette: {path} must hold a (K, 3) array of RGB colours; got {palette.shape}."
        )
    if palette.shape[0] != num_colours:
        raise ArgumentError(
            f"--palette: {path} holds {palette.shape[0]} colours but --num-colours is "
            f"{num_colours}; pass --num-colours {palette.shape[0]} or another palette."
        )
    if palette.min() < 0 or palette.max() > 1:
        raise DataError(f"--palette: {path} must hold RGB colours in [0, 1].")
    return palette.astype(np.float32)


def decode(indices: torch.Tensor, palette: np.ndarray) -> np.ndarray:
    """(N, H, W) colour indices → (N, H, W, 3) RGB in [0, 1]."""
    return palette[indices.cpu().numpy()]
