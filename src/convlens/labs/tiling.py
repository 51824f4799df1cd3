"""Overlap-tile prediction (Ronneberger et al. 2015, Fig. 2): segment an image of any size
with a network that sees a fixed tile, mirroring the image at its border for the missing
context.

A valid-convolution U-Net maps a tile of side T to the central T − 2m of it (m: the
margin, 92 for the paper's network). Tiles start at multiples of 2^depth, so every tile
sees the same 2×2-pooling grid as one pass over the whole (mirrored) image would: tiled
and whole-image predictions agree wherever both are computed (tested). A padded network
(output = input) is run on the whole mirrored image when it fits in one tile; larger
images are cut into tiles with ``context`` pixels of overlap on each side, whose borders
then see zero padding inside the network (close to, not equal to, one pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.zoo.segmentation import output_size

CONTEXT = 32  # pixels of overlap per side for padded networks cut into tiles


@dataclass(frozen=True)
class Geometry:
    """How a network's output relates to its input. ``depth``: 2×2 poolings (valid nets
    need every pooling to see an even size); ``multiple``: tiles start at multiples of it."""

    margin: int  # (input − output) / 2; 0 for a padded network
    multiple: int
    depth: int = 0  # > 0 for a valid-convolution U-Net

    @property
    def valid(self) -> bool:
        return self.margin > 0

    def output_for(self, size: int) -> int | None:
        """The output side for an input side, or None if that input is not accepted."""
        if not self.valid:
            return size
        return output_size(size, self.depth)

    def valid_outputs(self, largest: int) -> list[int]:
        """Output sides ≤ ``largest`` whose input is accepted."""
        sizes = (self.output_for(s) for s in range(1, largest + 2 * self.margin + 1))
        return sorted({o for o in sizes if o is not None and o <= largest})


def geometry_of(model: nn.Module) -> Geometry:
    """A valid U-Net says its margin and depth; any other network is taken as padded
    (output = input; the lab checks that with a forward), aligned to 2^depth if it has a
    ``depth``, else to 32 (the largest stride of common backbones)."""
    depth = getattr(model, "depth", None)
    margin = getattr(model, "margin", 0)
    if margin and isinstance(depth, int):
        return Geometry(int(margin), 2**depth, depth)
    return Geometry(0, 2**depth if isinstance(depth, int) else 32)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, K, H', W') logits of a model that returns them directly or as ``{"out": …}``
    (torchvision's segmentation models); a model whose first convolution takes 3 channels
    gets the grey image repeated (unless it says ``input_channels = 1``, as
    ``deeplabv3_cifar`` does, which repeats it itself)."""
    channels = input_channels(model)
    if channels != x.shape[1]:
        x = x.expand(-1, channels, -1, -1)
    out = model(x)
    return out["out"] if isinstance(out, dict) else out


def input_channels(model: nn.Module) -> int:
    """Channels the model takes: its ``input_channels`` if it says, else its first
    convolution's."""
    inner = getattr(model, "module", model)  # DDP
    if hasattr(inner, "input_channels"):
        return int(cast(Any, inner).input_channels)
    first = next((m for m in inner.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else 1


def smallest_tile(geometry: Geometry) -> int:
    """The smallest prediction tile that still steps along the pooling grid: its output
    must span at least one grid step (with the context of a padded network)."""
    if geometry.valid:
        side = geometry.multiple
        while (geometry.output_for(side) or 0) < geometry.multiple:
            side += 1
        return side
    return 2 * CONTEXT + geometry.multiple


@dataclass(frozen=True)
class AxisPlan:
    """Along one axis: tile input side, tile output side, output starts, mirror padding."""

    tile: int
    out: int
    starts: tuple[int, ...]
    before: int
    after: int


def plan_axis(length: int, geometry: Geometry, tile: int) -> AxisPlan:
    """Tiles covering ``length`` output pixels: one tile when the image (plus margins)
    fits in ``tile``, else tiles of side ≤ ``tile`` stepping by a multiple of the
    pooling grid."""
    g, m = geometry, geometry.margin
    if g.valid:
        if length + 2 * m <= tile:
            side = next(s for s in range(length + 2 * m, length + 2 * m + g.multiple + 1)
                        if g.output_for(s) is not None)  # fmt: skip
            return AxisPlan(side, side - 2 * m, (0,), m, side - m - length)
        side = max(s for s in range(1, tile + 1) if g.output_for(s) is not None)
        context = m
    else:
        whole = -(-length // g.multiple) * g.multiple
        if whole <= tile:
            return AxisPlan(whole, whole, (0,), 0, whole - length)
        side, context = tile // g.multiple * g.multiple, CONTEXT
    out = side - 2 * context
    step = out // g.multiple * g.multiple
    if step < 1:
        raise ValueError(f"tile {tile} is too small: the smallest that works is {smallest_tile(g)}")
    starts = [0]
    while starts[-1] + out < length:
        starts.append(starts[-1] + step)
    return AxisPlan(side, out, tuple(starts), context, starts[-1] + out - length + context)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, image: np.ndarray, geometry: Geometry, tile: int
) -> np.ndarray:
    """Class probabilities (K, H, W) of a (H, W) float image, in eval mode, in the
    parameters' dtype (float32, or float64 for exact comparisons)."""
    model.eval()
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    rows, cols = (plan_axis(n, geometry, tile) for n in image.shape)
    padded = np.pad(image, ((rows.before, rows.after), (cols.before, cols.after)), mode="reflect")
    source = torch.from_numpy(np.ascontiguousarray(padded)).to(device, dtype)
    canvas: torch.Tensor | None = None
    for top in rows.starts:
        for left in cols.starts:
            window = source[top : top + rows.tile, left : left + cols.tile]  # (T, T)
            logits = logits_of(model, window[None, None])[0]  # (K, T', T')
            trim_r = (logits.shape[-2] - rows.out) // 2  # padded nets: drop the context
            trim_c = (logits.shape[-1] - cols.out) // 2
            logits = logits[:, trim_r : trim_r + rows.out, trim_c : trim_c + cols.out]
            if canvas is None:
                k = logits.shape[0]
                canvas = torch.empty(
                    k, rows.starts[-1] + rows.out, cols.starts[-1] + cols.out,
                    device=device, dtype=logits.dtype,
                )  # fmt: skip
            canvas[:, top : top + rows.out, left : left + cols.out] = logits
    assert canvas is not None
    h, w = image.shape
    return F.softmax(canvas[:, :h, :w], dim=0).cpu().numpy()


def orientations() -> list[tuple[int, bool]]:
    """The eight orientations of a square (the dihedral group D4): quarter turns 0–3, each
    with and without a left-right mirror."""
    return [(turns, mirror) for turns in range(4) for mirror in (False, True)]


def predict_oriented(
    model: nn.Module,
    image: np.ndarray,
    geometry: Geometry,
    tile: int,
    orientation: tuple[int, bool],
) -> np.ndarray:
    """``predict_probabilities`` of the image turned and mirrored, mapped back to the
    image's own orientation: (K, H, W)."""
    turns, mirror = orientation
    moved = np.rot90(image, turns)
    if mirror:
        moved = moved[:, ::-1]
    probabilities = predict_probabilities(model, np.ascontiguousarray(moved), geometry, tile)
    if mirror:
        probabilities = probabilities[:, :, ::-1]
    return np.ascontiguousarray(np.rot90(probabilities, -turns, axes=(1, 2)))


def predict_averaged(
    model: nn.Module, image: np.ndarray, geometry: Geometry, tile: int, averaged: bool = True
) -> np.ndarray:
    """Class probabilities (K, H, W), the mean over the eight orientations when
    ``averaged`` (test-time augmentation), else of the image as it is."""
    if not averaged:
        return predict_probabilities(model, image, geometry, tile)
    each = [predict_oriented(model, image, geometry, tile, o) for o in orientations()]
    return np.mean(each, axis=0).astype(each[0].dtype)
