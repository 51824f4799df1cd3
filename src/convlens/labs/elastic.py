"""Elastic deformation as in the U-Net paper (Ronneberger et al. 2015, §3.1): "random
displacement vectors on a coarse 3 by 3 grid … sampled from a Gaussian distribution with
10 pixels standard deviation. Per-pixel displacements are then computed using bicubic
interpolation."

One field moves the image, its mask and its weight map alike: the image and the weight map
are read bilinearly at the displaced positions, the mask by its nearest pixel, so a warped
mask holds only labels that were there (never a mix of two). Positions beyond the image are
mirrored (reflection about the border pixels), as the paper extrapolates missing context.
Every draw comes from a ``torch.Generator`` the caller seeds, so a run is reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRID = 3  # coarse grid points per side
SIGMA = 10.0  # pixels


def coarse_displacements(
    n: int, generator: torch.Generator, sigma: float = SIGMA, grid: int = GRID
) -> torch.Tensor:
    """(n, 2, grid, grid) displacement vectors (rows, columns) ~ N(0, σ²) in pixels."""
    return torch.randn(n, 2, grid, grid, generator=generator) * sigma


def dense_displacements(coarse: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 2, g, g) → (n, 2, size, size) by bicubic interpolation; the coarse points sit on
    the window's corners, edge midpoints and centre (``align_corners=True``)."""
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)


def warp(
    source: torch.Tensor,  # (C, H, W) float
    top: int,
    left: int,
    displacement: torch.Tensor,  # (2, S, S) pixels: rows, columns
    mode: str = "bilinear",
) -> torch.Tensor:
    """The S × S window of ``source`` at (top, left), each output pixel (i, j) read at
    (top + i + dy, left + j + dx): (C, S, S). ``mode`` "nearest" for labels."""
    _, h, w = source.shape
    size = displacement.shape[-1]
    span = torch.arange(size, dtype=torch.float32)
    rows = top + span[:, None] + displacement[0]  # (S, S) source row of each output pixel
    cols = left + span[None, :] + displacement[1]
    # grid_sample's normalised coordinates, −1 and 1 on the centres of the border pixels
    grid = torch.stack(
        (2 * cols / max(w - 1, 1) - 1, 2 * rows / max(h - 1, 1) - 1), dim=-1
    )  # (S, S, 2) as (x, y)
    return F.grid_sample(
        source[None],
        grid[None],
        mode=mode,
        padding_mode="reflection",
        align_corners=True,
    )[0]
