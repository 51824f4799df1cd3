"""Where the batch is in a traced tensor, and where operations send it.

Rules count per sample, so the tracer must know, for every tensor, which part of it is the
batch: axis 0 (the usual case), another axis after an axis move (``qkv.permute(2, 0, 3, 1,
4)`` puts it on axis 1), or the outer factor of an axis that merged it with another (Swin's
windows ``(N·nW, w, w, C)``, LeViT's ``x.flatten(0, 1)``). A ``Layout`` says which; per
sample, a tensor is its full shape with the batch's axis removed (or divided by N where it
is merged). Reshapes keep the row-major order, so the batch stays the outer factor of the
first axis that is not 1, and is followed through a merge and a split again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from convlens.torch.registry import arg


@dataclass(frozen=True)
class Layout:
    """Axis ``axis`` is the batch itself, or (``merged``) holds it as a factor: size
    ``outer``·N·m, m per sample — sample-major when ``outer`` is 1 (Swin's windows), the
    batch inside when it is not (nn.MultiheadAttention folds (L, N, E) into (L·N, E) for
    its output projection). Counting per sample needs only the m; what mixes positions
    along the axis refuses a merged batch either way."""

    axis: int = 0
    merged: bool = False
    outer: int = 1

    def sample_shape(self, full: Sequence[int], batch: int) -> tuple[int, ...]:
        a = self.axis
        if self.merged:
            return (*full[:a], full[a] // batch, *full[a + 1 :])
        return (*full[:a], *full[a + 1 :])

    def full_shape(self, sample: Sequence[Any], batch: int) -> tuple[int, ...]:
        a = self.axis
        if self.merged:
            return (*sample[:a], sample[a] * batch, *sample[a + 1 :])
        return (*sample[:a], batch, *sample[a:])

    def sample_axis(self, dim: Any, rank: int) -> int | None:
        """The per-sample index of axis ``dim`` of the full tensor (negative from the end);
        None for the batch's own axis or anything that is no axis."""
        if not isinstance(dim, int) or isinstance(dim, bool) or not -rank <= dim < rank:
            return None
        d = dim % rank
        if d == self.axis:
            return None
        return d if self.merged or d < self.axis else d - 1

    def full_axis(self, sample_axis: int) -> int:
        """The inverse of ``sample_axis``."""
        return sample_axis if self.merged or sample_axis < self.axis else sample_axis + 1

    def dropping(self, full_axes: Sequence[int]) -> Layout:
        """The layout once ``full_axes`` (none of them the batch's) are removed."""
        return replace(self, axis=self.axis - sum(1 for d in full_axes if d < self.axis))


STANDARD = Layout()


def layout_after_reshape(
    layout: Layout, before: Sequence[int], after: Sequence[int], batch: int
) -> Layout | None:
    """Where the batch is after a reshape (view, flatten, unflatten, squeeze …) from
    ``before`` to ``after``, or None if the reshape splits it.

    A reshape keeps the row-major order, so the batch is one digit of the flat index:
    ``front`` positions in front of it (the axes before its own, times its ``outer``
    factor), N of it, the rest behind. After the reshape it lies in the first axis whose
    span passes ``front`` if that axis starts on a boundary of ``front`` (whole axes in
    front of it hold the front's positions) and its span ends on a boundary of
    ``front``·N; otherwise the reshape mixes the batch with other axes. So
    nn.MultiheadAttention's (L, N, E) → (L, N·h, E/h) holds it as the outer factor of
    axis 1, and (L, N, E) → (L·N, E) → (L, N, E) loses nothing. A batch of one has no size
    to be found by: it stays on a unit axis where there is one, else it leads the next
    axis, or ends the one before when the next is the last (the features, which a linear
    layer reads).
    """
    a = layout.axis
    front = math.prod(before[:a]) * layout.outer
    if front == 1:
        first = next((i for i, d in enumerate(after) if d != 1), None)
        if first is None:
            return STANDARD if batch == 1 and after else None
        if after[first] % batch:
            return None
        if batch == 1 and first > 0:  # one sample: the batch is axis 0 (of size 1)
            return STANDARD
        return Layout(first, after[first] != batch)
    held = 1  # positions spanned by the axes of ``after`` before axis j
    for j, size in enumerate(after):
        if held == front and size == batch == 1:  # one sample: the unit axis where it was
            return Layout(j)
        if held * size <= front:  # axis j lies wholly in front of the batch
            held *= size
            continue
        if batch == 1 and held == front and j == len(after) - 1:
            return _trailing(after, j - 1)  # one sample ending axis j − 1: (L, 1, E) → (L, E)
        if front % held or (held * size) % (front * batch):
            return None  # axis j straddles the start or the end of the batch
        outer = front // held
        return Layout(j, size != batch, outer)
    return _trailing(after, len(after) - 1) if batch == 1 and held == front else None


def _trailing(after: Sequence[int], axis: int) -> Layout:
    """A batch of one as the last factor of ``after[axis]``: (L·1, E) is L of one sample."""
    return Layout(axis, after[axis] != 1, after[axis])


# Operations that only move axes (and unsqueeze, which adds one): where the batch axis
# goes is asked of PyTorch (``moved_axes``), so one that leaves axis 0 is never taken
# for a per-sample reshape.
AXIS_MOVES = {
    torch.transpose,
    torch.Tensor.transpose,
    torch.permute,
    torch.Tensor.permute,
    torch.swapaxes,
    torch.Tensor.swapaxes,
    torch.swapdims,
    torch.Tensor.swapdims,
    torch.movedim,
    torch.Tensor.movedim,
    torch.moveaxis,
    torch.Tensor.moveaxis,
    torch.t,
    torch.Tensor.t,
    torch.adjoint,
    torch.Tensor.adjoint,
    torch.unsqueeze,
    torch.Tensor.unsqueeze,
    # the properties' getters (torch's stubs type a property as its value, hence the ignores)
    torch.Tensor.T.__get__,  # type: ignore[attr-defined]
    torch.Tensor.mT.__get__,  # type: ignore[attr-defined]
    torch.Tensor.H.__get__,  # type: ignore[attr-defined]
    torch.Tensor.mH.__get__,  # type: ignore[attr-defined]
}

# Tensor methods that make a new tensor from sizes alone (x only names dtype and device):
# the result is a constant, like a model's own tensors (drop-path's N×1×1×1 mask is one per
# sample, drawn from nothing the model computed).
CONSTANT_MAKERS = {
    torch.Tensor.new_zeros,
    torch.Tensor.new_ones,
    torch.Tensor.new_empty,
    torch.Tensor.new_full,
    torch.Tensor.new_tensor,
}


def moved_axes(func: Any, args: tuple, kwargs: dict, x: torch.Tensor) -> tuple[int, ...] | None:
    """For each output axis of an axis move, the axis of ``x`` it is (-1 for one it adds):
    the same call on a meta tensor whose axes all have different sizes (≥ 2), each found
    again in the result; None if PyTorch refuses the call."""
    sizes = [2 + i for i in range(x.dim())]
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty(sizes, device="meta")
        try:
            out = func(
                *(probe if a is x else a for a in args),
                **{k: probe if v is x else v for k, v in kwargs.items()},
            )
        except Exception:
            return None
    return tuple(sizes.index(d) if d in sizes else -1 for d in out.shape)


def sample_order(moved: Sequence[int], layout: Layout) -> tuple[int, ...]:
    """``moved_axes`` per sample: without the batch's own axis (which a merged batch does
    not have), the others renumbered."""
    if layout.merged:
        return tuple(moved)
    b = layout.axis
    return tuple(a - (a > b) if a >= 0 else a for a in moved if a != b)


def joins_batch(func: Any, args: tuple, kwargs: dict) -> bool:
    """torch.stack along axis 0 (a new axis in front of the batch), or torch.cat of
    several tensors along it: axis 0 is not the batch even where its size says so."""
    if func not in (torch.stack, torch.cat, torch.concat, torch.concatenate):
        return False
    tensors = arg(args, kwargs, 0, "tensors")
    dim = arg(args, kwargs, 1, "dim", 0)
    if not isinstance(tensors, list | tuple) or not tensors or not isinstance(dim, int):
        return False
    rank = tensors[0].dim() + (func is torch.stack)
    return dim % max(rank, 1) == 0 and (func is torch.stack or len(tensors) > 1)


def indexes_batch(key: Any) -> bool:
    """``x[key]`` picks, slices or adds an axis in front (x[0], x[:1], x[None], x[idx]):
    the result's axis 0 is not the whole batch even where its size says so."""
    first = key[0] if isinstance(key, tuple) and key else key
    return not (first is Ellipsis or (isinstance(first, slice) and first == slice(None)))
