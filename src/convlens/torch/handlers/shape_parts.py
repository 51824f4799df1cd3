"""Layout: concatenation and stacking, reshapes (which follow the batch through a merge and a
split again), contiguous copies, parts of an axis (narrow, select, chunk, split, unbind,
indexing), padding and cyclic shifts.

Every handler here finds the batch wherever it is (``Tracer.batch_axis``): axes are
translated to the rules' per-sample convention with ``Tracer.sample_axis``, and the result's
layout is passed on to ``Tracer.record``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.batch_axis import STANDARD, Layout, layout_after_reshape
from convlens.torch.handlers.registry import Handler, arg, handles, owned_tensor
from convlens.torch.shape_tensor import ShapeTensor, ranks

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- joining ------------------------------------------------------------------------------
@handles(torch.cat, torch.concat, torch.concatenate, any_layout=True)
def _cat(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """Outputs joined along an axis other than the batch's (``concat``), or one output
    joined with fixed tensors expanded over the batch (``concat_tensor``: a class token)."""
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = arg(args, kwargs, 1, "dim", 0)
    traced = [x for x in tensors if isinstance(x, ShapeTensor)]
    if not traced or not isinstance(dim, int):
        return NotImplemented
    if not all(isinstance(v, torch.Tensor) for v in tensors):
        return NotImplemented  # PyTorch's own error
    x, rank = traced[0], ranks(tensors)
    layout = t.batch_axis(x)
    axis = None if layout is None else layout.sample_axis(dim, rank[0])
    if layout is None or axis is None or any(r != rank[0] for r in rank):
        return NotImplemented  # along the batch's axis, or PyTorch's own error
    axis += 1  # counted with the batch, as the rules count axes
    if len(traced) == len(tensors):
        if any(t.batch_axis(v) != layout for v in tensors):
            return NotImplemented
        return t.record("concat", {"dim": axis}, tensors, layout=layout)
    if len(traced) == 1:
        return _concat_tensor(t, tensors, x, dim % rank[0], axis, layout)
    return NotImplemented


def _concat_tensor(
    t: Tracer, tensors: list, x: ShapeTensor, dim: int, axis: int, layout: Layout
) -> Any:
    """``torch.cat((cls.expand(N, -1, -1), x), dim=1)``: each fixed part must be the same
    for every sample (expanded: stride 0 along the batch's axis) and one whole parameter,
    buffer or constant."""
    if layout.merged:
        return NotImplemented
    at = next(i for i, v in enumerate(tensors) if v is x)
    kinds, owners, sizes = set(), [], []
    for w in tensors[:at] + tensors[at + 1 :]:
        if (
            not isinstance(w, torch.Tensor)
            or w.dtype != x.dtype
            or (w.stride(layout.axis) != 0 and w.shape[layout.axis] != 1)
        ):
            return NotImplemented  # not one sample's tensor expanded over the batch
        base = w._base if w._base is not None else w
        owner = owned_tensor(t, base)
        if (owner is None and id(base) in t.owned) or (
            owner is not None and owner.numel() * x.shape[layout.axis] != w.numel()
        ):
            return NotImplemented  # a part of a model tensor: its parameters live elsewhere
        kinds.add(
            "constant"
            if owner is None
            else ("parameter" if isinstance(owner, torch.nn.Parameter) else "buffer")
        )
        owners.append(owner)
        sizes.append(int(w.shape[dim]))
    if len(kinds) != 1:
        return NotImplemented  # parameters beside constants: no one rule
    spec = {
        "dim": axis,
        "before": tuple(sizes[:at]),
        "after": tuple(sizes[at:]),
        "weight_kind": kinds.pop(),
    }
    weights = [o for o in owners if o is not None]
    return t.record("concat_tensor", spec, [x], weights, own_buffers=False, layout=layout)


@handles(torch.stack, any_layout=True)
def _stack(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """Equal outputs stacked on a new axis; ``torch.stack(xs)`` (dim 0) puts the new axis in
    front of the batch, which moves to axis 1 (smp's FPN then sums over axis 0)."""
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = arg(args, kwargs, 1, "dim", 0)
    if not tensors or not all(isinstance(x, ShapeTensor) for x in tensors):
        return NotImplemented
    x, rank = tensors[0], tensors[0].dim() + 1
    layout = t.batch_axis(x)
    if (
        layout is None
        or not isinstance(dim, int)
        or not -rank <= dim < rank
        or any(t.batch_axis(v) != layout or v.shape != x.shape for v in tensors)
    ):
        return NotImplemented
    d = dim % rank
    out = Layout(layout.axis + (d <= layout.axis), layout.merged)
    spec = {"dim": out.sample_axis(d, rank) + 1}  # type: ignore[operator]
    return t.record("stack", spec, tensors, layout=out)


# -- reshapes -----------------------------------------------------------------------------
def _reshape_like(t: Tracer, func: Any, args: tuple, kwargs: dict) -> Any:
    """view, reshape, flatten, unflatten, squeeze, view_as, reshape_as: PyTorch's own call
    on a meta tensor with x's shape and strides gives the new shape and whether it copies;
    the batch is followed through it (``layout_after_reshape``)."""
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, ShapeTensor) or any(
        isinstance(a, torch.dtype) for a in (*args[1:], *kwargs.values())
    ):
        return NotImplemented  # x.view(torch.float16) reinterprets bytes: no reshape
    layout = t.batch_axis(x)
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty_strided(tuple(x.shape), x.stride(), dtype=x.dtype, device="meta")
        rest = {k: v for k, v in kwargs.items() if k != "input"}
        try:
            real = func(probe, *args[1:], **rest)
        except Exception:
            return NotImplemented  # PyTorch's own error, from the fallback
        copies = real.untyped_storage()._cdata != probe.untyped_storage()._cdata
    after = tuple(int(d) for d in real.shape)
    new = None if layout is None else layout_after_reshape(layout, x.shape, after, t.batch)
    if new is None:
        return NotImplemented  # the reshape splits the batch: not per sample
    sample = new.sample_shape(after, t.batch)
    if new == STANDARD and len(sample) == 1 and not copies:
        return t.record("flatten", {}, [x])
    spec: dict[str, Any] = {"shape": sample}
    if copies:
        spec["copies"] = True
    return t.record("view", spec, [x], layout=new)


def _reshape_handler(func: Any) -> Handler:
    """``_reshape_like`` bound to ``func``: the probe runs the very reshape the model called."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        return _reshape_like(t, func, args, kwargs)

    return handler


for _func in (
    torch.Tensor.view,
    torch.Tensor.reshape,
    torch.reshape,
    torch.flatten,
    torch.Tensor.flatten,
    torch.Tensor.unflatten,
    torch.unflatten,
    torch.squeeze,
    torch.Tensor.squeeze,
    torch.Tensor.view_as,
    torch.Tensor.reshape_as,
):
    handles(_func, any_layout=True)(_reshape_handler(_func))


@handles(torch.Tensor.contiguous, any_layout=True)
def _contiguous(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A no-op on a contiguous tensor; a copy (an identity row) of a strided view."""
    x = args[0]
    with torch._C.DisableTorchFunctionSubclass():
        if x.is_contiguous(memory_format=kwargs.get("memory_format", torch.contiguous_format)):
            return x
    return t.record("identity", {}, [x], layout=t.batched_layout(x))


@handles(torch.clone, torch.Tensor.clone, any_layout=True)
def _clone(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A copy: an identity row, as a copying ``contiguous`` is."""
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, ShapeTensor):
        return NotImplemented
    return t.record("identity", {}, [x], layout=t.batched_layout(x))


# -- parts of an axis ---------------------------------------------------------------------
def part(t: Tracer, x: Any, dim: int, start: int, length: int, keepdim: bool = True) -> ShapeTensor:
    """One contiguous part of axis ``dim`` of the full tensor (not the batch's) as a
    ``narrow`` row."""
    t.pending = (
        (torch.narrow, (x, dim, start, length), {})
        if keepdim
        else (torch.select, (x, dim, start), {})
    )
    layout = t.batched_layout(x)
    out = layout if keepdim else layout.dropping([dim])
    spec = {"dim": t.sample_axis(x, dim), "start": start, "length": length, "keepdim": keepdim}
    return t.record("narrow", spec, [x], layout=out)


def _full_axis(t: Tracer, x: Any, dim: Any) -> int | None:
    """``dim`` as a non-negative axis of x, or None for the batch's axis or a non-axis."""
    if t.sample_axis(x, dim) is None:
        return None
    return dim % x.dim()


@handles(torch.narrow, torch.Tensor.narrow, any_layout=True)
def _narrow(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0] if args else kwargs["input"]
    dim = _full_axis(t, x, arg(args, kwargs, 1, "dim"))
    start, length = arg(args, kwargs, 2, "start"), arg(args, kwargs, 3, "length")
    if dim is None or not isinstance(start, int) or not isinstance(length, int):
        return NotImplemented
    begin = start + int(x.shape[dim]) if start < 0 else start
    if begin < 0 or length < 0 or begin + length > int(x.shape[dim]):
        return NotImplemented  # PyTorch's own error, from its meta kernel
    return part(t, x, dim, begin, length)


@handles(torch.select, torch.Tensor.select, any_layout=True)
def _select(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0] if args else kwargs["input"]
    dim = _full_axis(t, x, arg(args, kwargs, 1, "dim"))
    index = arg(args, kwargs, 2, "index")
    if dim is None or not isinstance(index, int) or not -x.shape[dim] <= index < x.shape[dim]:
        return NotImplemented
    return part(t, x, dim, index % int(x.shape[dim]), 1, keepdim=False)


def _sections(
    t: Tracer, func: Any, args: tuple, kwargs: dict, dim: Any, keepdim: bool = True
) -> Any:
    """chunk, split, unbind: PyTorch's own kernel on a bare meta tensor gives the parts'
    sizes (so its rules, and errors, hold); each part becomes a ``narrow`` row."""
    x = args[0] if args else kwargs.get("input", kwargs.get("tensor", kwargs.get("self")))
    if not isinstance(x, ShapeTensor):
        return NotImplemented
    axis = _full_axis(t, x, dim)
    if axis is None:
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


@handles(torch.chunk, torch.Tensor.chunk, any_layout=True)
def _chunk(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.chunk, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.split, torch.Tensor.split, any_layout=True)
def _split(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.split, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.unbind, torch.Tensor.unbind, any_layout=True)
def _unbind(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """``q, k, v = qkv.unbind(0)`` after timm's ``permute(2, 0, 3, 1, 4)``: the batch is on
    axis 1, so each part has it on axis 0 again."""
    return _sections(t, torch.unbind, args, kwargs, arg(args, kwargs, 1, "dim", 0), keepdim=False)


def _index_parts(x: Any, key: Any, batch_axis: int) -> list[tuple[int, int, int, bool]] | None:
    """``x[key]`` as (dim, start, length, keepdim) parts, for keys of unit-step slices and
    integers that leave the batch's axis whole; None for anything else."""
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
            if (start, length) != (0, size) or (dim == batch_axis and size == 0):
                parts.append((dim, min(start, size), length, True))
        elif isinstance(k, int) and not isinstance(k, bool) and -size <= k < size:
            parts.append((dim, k % size, 1, False))
        else:
            return None
    if any(dim == batch_axis for dim, *_ in parts):
        return None  # the batch's axis: not a per-sample operation
    return parts


@handles(torch.Tensor.__getitem__, any_layout=True)
def _getitem(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """x[:, :, a:b, c:d] is a crop; other unit-step slices and integer indices (x[:, a:b],
    x[:, i]) are ``narrow`` rows, one per axis; other indexing falls back to meta kernels."""
    x, key = args
    layout = t.batch_axis(x)
    parts = None if layout is None else _index_parts(x, key, layout.axis)
    if parts is None or layout is None:
        return NotImplemented
    if (
        layout == STANDARD
        and x.dim() == 4
        and parts
        and all(dim >= 2 and keep and length > 0 for dim, _, length, keep in parts)
    ):
        box = {dim: (start, length) for dim, start, length, _ in parts}
        offset = tuple(box.get(d, (0, 0))[0] for d in (2, 3))
        size = tuple(box.get(d, (0, int(x.shape[d])))[1] for d in (2, 3))
        return t.record("crop", {"size": size, "offset": offset}, [x])
    if not parts:  # x[:] or x[...]: the same tensor, as a part of its first other axis
        other = next((d for d in range(x.dim()) if d != layout.axis), None)
        return NotImplemented if other is None else part(t, x, other, 0, int(x.shape[other]))
    out = x
    for dim, start, length, keepdim in sorted(parts, reverse=True):  # later axes first:
        out = part(t, out, dim, start, length, keepdim)  # the earlier ones keep their place
    return out


# -- padding and shifts -------------------------------------------------------------------
def _sample_pads(
    t: Tracer, x: Any, pad: tuple[int, ...], trim: bool = True
) -> tuple[int, ...] | None:
    """F.pad's pads (last axis first) for one sample: the batch's axis must not be padded;
    its pair is dropped where the batch is the whole axis. ``trim`` drops trailing (0, 0)
    pairs, which only constant padding may: in the other modes the number of pairs says
    which axes PyTorch pads (and which shapes it accepts)."""
    layout = t.batch_axis(x)
    if layout is None or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]  # last axis first
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(pairs):
        if x.dim() - 1 - i == layout.axis:
            if pair != (0, 0):
                return None  # padding the batch
            if not layout.merged:
                continue
        out.append(pair)
    while trim and out and out[-1] == (0, 0) and len(out) > 1:
        out.pop()  # trailing unpadded axes need no entry
    return tuple(v for pair in out for v in pair)


@handles(F.pad, torch._C._nn.pad, any_layout=True)
def _pad(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """F.pad in every mode (timm's TensorFlow-style "same" padding, Swin's window padding,
    nn.ZeroPad2d); the shape comes from the rule, never from a meta kernel (whose first use
    imports PyTorch's decompositions)."""
    x, pad = args[0] if args else kwargs.get("input"), arg(args, kwargs, 1, "pad")
    mode, value = arg(args, kwargs, 2, "mode", "constant"), arg(args, kwargs, 3, "value")
    return _padded(t, x, pad, mode, value)


@handles(torch.constant_pad_nd, any_layout=True)
def _constant_pad_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, pad = args[0] if args else kwargs.get("input"), arg(args, kwargs, 1, "pad")
    return _padded(t, x, pad, "constant", arg(args, kwargs, 2, "value"))


def _padded(t: Tracer, x: Any, pad: Any, mode: Any, value: Any) -> Any:
    if not isinstance(x, ShapeTensor) or not isinstance(pad, list | tuple):
        return NotImplemented
    pads = tuple(int(p) for p in pad)
    if mode != "constant" and (
        t.batch_axis(x) != STANDARD or not 1 <= len(pads) // 2 <= 3 or len(pads) % 2
    ):
        return NotImplemented  # PyTorch's own rules for these modes: from its kernel
    sample = _sample_pads(t, x, pads, trim=mode == "constant")
    if sample is None:
        return NotImplemented
    spec = {"pad": sample, "mode": mode, "value": float(value or 0.0)}
    return t.record("pad", spec, [x], layout=t.batched_layout(x))


@handles(torch.roll, torch.Tensor.roll, any_layout=True)
def _roll(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """torch.roll along axes other than the batch's (Swin's shifted windows)."""
    x = args[0] if args else kwargs.get("input")
    shifts, dims = arg(args, kwargs, 1, "shifts"), arg(args, kwargs, 2, "dims")
    if not isinstance(x, ShapeTensor) or dims is None:
        return NotImplemented  # without dims the flattened tensor rolls across samples
    shifts = tuple(shifts) if isinstance(shifts, list | tuple) else (shifts,)
    dims = tuple(dims) if isinstance(dims, list | tuple) else (dims,)
    axes = [t.sample_axis(x, d) for d in dims]
    if None in axes or len(shifts) != len(dims):
        return NotImplemented
    spec = {"shifts": tuple(int(s) for s in shifts), "dims": tuple(axes)}
    return t.record("roll", spec, [x], layout=t.batched_layout(x))
