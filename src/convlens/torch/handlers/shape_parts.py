"""Layout: concatenation, flatten, views and reshapes, contiguous copies, and parts of an
axis (narrow, chunk, split, unbind, indexing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from convlens.torch.handlers.registry import arg, handles, sample_dim
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(torch.cat, torch.concat)
def _cat(t: Tracer, args: tuple, kwargs: dict) -> Any:
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = arg(args, kwargs, 1, "dim", 0)
    if dim % tensors[0].dim() != 1 or not all(isinstance(x, ShapeTensor) for x in tensors):
        return NotImplemented
    return t.record("concat", {}, tensors)


@handles(torch.flatten, torch.Tensor.flatten)
def _flatten_op(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    start = arg(args, kwargs, 1, "start_dim", 0)
    end = arg(args, kwargs, 2, "end_dim", -1)
    if start % x.dim() != 1 or end % x.dim() != x.dim() - 1:
        return NotImplemented
    return t.record("flatten", {}, [x])


@handles(torch.Tensor.contiguous)
def _contiguous(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A no-op on a contiguous tensor; a copy (an identity row) of a strided view."""
    x = args[0]
    with torch._C.DisableTorchFunctionSubclass():
        if x.is_contiguous(memory_format=kwargs.get("memory_format", torch.contiguous_format)):
            return x
    return t.record("identity", {}, [x])


@handles(torch.Tensor.view, torch.Tensor.reshape, torch.reshape)
def _view(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    shape = (
        args[1:]
        if len(args) > 2 or (len(args) == 2 and isinstance(args[1], int))
        else (args[1] if len(args) > 1 else kwargs.get("shape"))
    )
    shape = list(shape)
    if shape and shape[0] in (x.shape[0], -1) and shape.count(-1) <= 1:
        known = 1
        for d in shape[1:]:
            known *= d if d != -1 else 1
        rest = [d if d != -1 else x[0].numel() // known for d in shape[1:]]
        if shape[0] == -1 and x.numel() != x.shape[0] * known:
            return NotImplemented  # -1 is not the batch (x.reshape(-1, W)): PyTorch's shape
        if len(rest) == 1:
            return t.record("flatten", {}, [x])
        return t.record("view", {"shape": tuple(int(d) for d in rest)}, [x])
    return NotImplemented


def part(t: Tracer, x: Any, dim: int, start: int, length: int, keepdim: bool = True) -> ShapeTensor:
    """One contiguous part of axis ``dim`` (counted with the batch) as a ``narrow`` row."""
    t.pending = (
        (torch.narrow, (x, dim, start, length), {})
        if keepdim
        else (torch.select, (x, dim, start), {})
    )
    return t.record(
        "narrow", {"dim": dim, "start": start, "length": length, "keepdim": keepdim}, [x]
    )


@handles(torch.narrow, torch.Tensor.narrow)
def _narrow(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0] if args else kwargs["input"]
    dim = sample_dim(x, arg(args, kwargs, 1, "dim"))
    start, length = arg(args, kwargs, 2, "start"), arg(args, kwargs, 3, "length")
    if dim is None or not isinstance(start, int) or not isinstance(length, int):
        return NotImplemented
    begin = start + int(x.shape[dim]) if start < 0 else start
    if begin < 0 or length < 0 or begin + length > int(x.shape[dim]):
        return NotImplemented  # PyTorch's own error, from its meta kernel
    return part(t, x, dim, begin, length)


def _sections(
    t: Tracer, func: Any, args: tuple, kwargs: dict, dim: Any, keepdim: bool = True
) -> Any:
    """chunk, split, unbind: PyTorch's own kernel on a bare meta tensor gives the parts'
    sizes (so its rules, and errors, hold); each part becomes a ``narrow`` row."""
    x = args[0] if args else kwargs.get("input", kwargs.get("tensor", kwargs.get("self")))
    axis = sample_dim(x, dim)
    if axis is None or not isinstance(x, ShapeTensor):
        return NotImplemented
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty(tuple(x.shape), device="meta")
        rest = {k: v for k, v in kwargs.items() if k not in ("input", "tensor", "self")}
        pieces = func(probe, *args[1:], **rest)
    parts, start = [], 0
    for piece in pieces:
        length = int(piece.shape[axis]) if keepdim else 1
        parts.append(part(t, x, axis, start, length, keepdim))
        start += length
    return tuple(parts)


@handles(torch.chunk, torch.Tensor.chunk)
def _chunk(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.chunk, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.split, torch.Tensor.split)
def _split(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.split, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.unbind, torch.Tensor.unbind)
def _unbind(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.unbind, args, kwargs, arg(args, kwargs, 1, "dim", 0), keepdim=False)


def _index_parts(x: Any, key: Any) -> list[tuple[int, int, int, bool]] | None:
    """``x[key]`` as (dim, start, length, keepdim) parts, for keys of unit-step slices and
    integers that leave the batch axis whole; None for anything else."""
    key = key if isinstance(key, tuple) else (key,)
    if sum(k is Ellipsis for k in key) > 1:
        return None
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (x.dim() - len(key) + 1) + key[at + 1 :]
    if len(key) > x.dim() or not key:
        return None
    key = key + (slice(None),) * (x.dim() - len(key))
    parts = []
    for dim, k in enumerate(key):
        size = int(x.shape[dim])
        if (
            isinstance(k, slice)
            and k.step in (None, 1)
            and all(isinstance(v, int | None) for v in (k.start, k.stop))
        ):
            start, stop, _ = k.indices(size)
            length = max(stop - start, 0)
            if (start, length) != (0, size) or (dim == 0 and size == 0):
                parts.append((dim, min(start, size), length, True))
        elif isinstance(k, int) and not isinstance(k, bool) and -size <= k < size:
            parts.append((dim, k % size, 1, False))
        else:
            return None
    if any(dim == 0 for dim, *_ in parts):
        return None  # the batch axis: not a per-sample operation
    return parts


@handles(torch.Tensor.__getitem__)
def _getitem(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """x[:, :, a:b, c:d] is a crop; other unit-step slices and integer indices (x[:, a:b],
    x[:, i]) are ``narrow`` rows, one per axis; other indexing falls back to meta kernels."""
    x, key = args
    parts = _index_parts(x, key)
    if parts is None:
        return NotImplemented
    if (
        x.dim() == 4
        and parts
        and all(dim >= 2 and keep and length > 0 for dim, _, length, keep in parts)
    ):
        box = {dim: (start, length) for dim, start, length, _ in parts}
        offset = tuple(box.get(d, (0, 0))[0] for d in (2, 3))
        size = tuple(box.get(d, (0, int(x.shape[d])))[1] for d in (2, 3))
        return t.record("crop", {"size": size, "offset": offset}, [x])
    if not parts:  # x[:] or x[...]: the same tensor
        return part(t, x, 1, 0, int(x.shape[1])) if x.dim() > 1 else NotImplemented
    out = x
    for dim, start, length, keepdim in sorted(parts, reverse=True):  # later axes first:
        out = part(t, out, dim, start, length, keepdim)  # the earlier ones keep their place
    return out
