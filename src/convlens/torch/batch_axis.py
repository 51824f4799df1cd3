"""Where the batch axis is: axis moves are followed, and operations that stack, concatenate
or index along axis 0 are recognised as taking the batch apart."""

from __future__ import annotations

from typing import Any

import torch

from convlens.torch.handlers.registry import arg

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
    torch.Tensor.T.__get__,
    torch.Tensor.mT.__get__,  # type: ignore[attr-defined]
    torch.Tensor.H.__get__,
    torch.Tensor.mH.__get__,
}  # type: ignore[attr-defined]

# Tensor methods that make a new tensor from sizes alone (x only names dtype and device):
# without a batch axis in front, the result is a constant, like a model's own tensors.
CONSTANT_MAKERS = {
    torch.Tensor.new_zeros,
    torch.Tensor.new_ones,
    torch.Tensor.new_empty,
    torch.Tensor.new_full,
    torch.Tensor.new_tensor,
}


def follow_batch(func: Any, args: tuple, kwargs: dict, x: torch.Tensor, axis: int) -> int | None:
    """Where an axis move sends axis ``axis`` of ``x``: the same call on a meta tensor
    whose axes all have different sizes (≥ 2), the marked one found again in the result."""
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
    found = [i for i, d in enumerate(out.shape) if d == sizes[axis]]
    return found[0] if len(found) == 1 else None


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
