"""Reshapes, parts, linear layers and resizing in PyTorch: flatten, view, narrow, crop,
linear, upsample, upsample1d/3d (rules: core/rules/reshape.py).

The reshape and part handlers find the batch wherever it is (``Tracer.batch_axis``): axes
are translated to the rules' per-sample convention with ``Tracer.sample_axis``, and the
result's layout is passed on to ``Tracer.record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.batch_axis import STANDARD, layout_after_reshape
from convlens.torch.lowering.common import (
    described,
    expect_channels,
    feature_map,
    flag,
    per_axis,
    signal_or_volume,
    whole,
    whole_pair,
    whole_tuple,
)
from convlens.torch.lowering.conv import computed_weight
from convlens.torch.probes import is_contiguous, keeps_copy
from convlens.torch.registry import Choices, Handler, arg, calls, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- flatten and view ---------------------------------------------------------------------
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


RESHAPES = tuple(
    handles(func, any_layout=True)(_reshape_handler(func))
    for func in (
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
    )
)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


class View(nn.Module):
    def __init__(
        self, shape: tuple[int, ...], copies: bool = False, order: tuple[int, ...] | None = None
    ):
        super().__init__()
        self.shape, self.copies, self.order = shape, copies, order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order is not None:  # the sample's axes moved: a permuted view
            y = x.permute(0, *(a + 1 for a in self.order))
        else:
            y = x.reshape(x.shape[0], *self.shape)
        return y.clone() if self.copies else y


def view_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    options = [
        f"view ({c * h},{w})",
        f"view ({c},{h * w}) copies={flag(pick)}",
        f"view ({c * h * w})",
        f"view ({c},{w},{h}) order=(0,2,1)",  # H and W swapped: no receptive field follows
        f"view ({h},{w},{c}) order=(1,2,0)",  # channels last
    ]
    return described((c, h, w), pick.choice(options))


lowering(
    "flatten",
    traced_by=RESHAPES,
    build=lambda a, s: Flatten(),
    examples=lambda pick: described(feature_map(pick), "flatten"),
)
lowering(
    "view",
    traced_by=RESHAPES,
    traced_as=["view", "flatten"],  # a view to one axis is a flatten
    build=lambda a, s: View(
        tuple(whole(d) for d in a["shape"]),
        a["copies"],
        None if a["order"] is None else tuple(whole(d) for d in a["order"]),
    ),
    examples=view_examples,
)


# -- narrow and crop: parts of axes -------------------------------------------------------
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
def trace_narrow(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
def trace_select(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
def trace_chunk(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.chunk, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.split, torch.Tensor.split, any_layout=True)
def trace_split(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.split, args, kwargs, arg(args, kwargs, 2, "dim", 0))


@handles(torch.unbind, torch.Tensor.unbind, any_layout=True)
def trace_unbind(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
def trace_getitem(t: Tracer, args: tuple, kwargs: dict) -> Any:
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


class Narrow(nn.Module):
    """x.narrow(dim, start, length), or x.select(dim, start) when the axis is dropped."""

    def __init__(self, dim: int, start: int, length: int, keepdim: bool):
        super().__init__()
        self.dim, self.start, self.length, self.keepdim = dim, start, length, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keepdim:
            return x.narrow(self.dim, self.start, self.length)
        return x.select(self.dim, self.start)


def narrow_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    dim = pick.integer(1, 3)
    size = (c, h, w)[dim - 1]
    start = pick.integer(0, size - 1)
    options = [
        f"narrow {dim} {start} {pick.integer(1, size - start)}",
        f"narrow {dim} {start} 1 keepdim=false",
    ]
    return described((c, h, w), pick.choice(options))


PARTS = (trace_narrow, trace_select, trace_chunk, trace_split, trace_unbind, trace_getitem)
lowering(
    "narrow",
    traced_by=PARTS,
    build=lambda a, s: Narrow(whole(a["dim"]), whole(a["start"]), whole(a["length"]), a["keepdim"]),
    examples=narrow_examples,
)


class Crop(nn.Module):
    """x[..., top:top + height, left:left + width] (centred unless an offset is given)."""

    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__()
        self.box = (top, left, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left, height, width = self.box
        return x[..., top : top + height, left : left + width]


def build_crop(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """The rule's offsets: the given ones, or ⌊(I − O)/2⌋."""
    _c, h, w = shape
    oh, ow = (whole(v) for v in args["size"])
    top, left = (
        ((h - oh) // 2, (w - ow) // 2) if args["offset"] is None else whole_pair(args["offset"])
    )
    return Crop(top, left, oh, ow)


def crop_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    return described((c, h, w), f"crop ({pick.integer(1, h)},{pick.integer(1, w)})")


lowering(
    "crop",
    traced_by=[trace_getitem],
    traced_as=["crop", "narrow"],
    build=build_crop,
    examples=crop_examples,
)


# -- linear -------------------------------------------------------------------------------
@handles(F.linear, torch._C._nn.linear, any_layout=True)
def trace_linear(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    layout = t.batch_axis(x)
    if layout is None or layout.axis == x.dim() - 1:
        return NotImplemented  # the features are the batch's axis
    if weight.dim() != 2:
        return NotImplemented  # a 1-D weight: a dot product per row, no linear layer
    expect_channels(t, x, int(weight.shape[1]), "input features", axis=x.dim() - 1)
    # F.linear folds a ≥ 3-D input into rows with reshape: a strided one (after a
    # transpose) is copied, and backward keeps that copy instead of the input. A
    # contiguous or 2-D input is kept as it is: no need to ask PyTorch (which would load
    # its meta decompositions, ~0.8 s on first use).
    copies = (
        x.dim() >= 3
        and not is_contiguous(x)
        and keeps_copy(
            x,
            lambda probe: F.linear(
                probe,
                torch.empty(tuple(weight.shape), device="meta", requires_grad=True),
                None if bias is None else torch.empty(tuple(bias.shape), device="meta"),
            ),
        )
    )
    return t.record(
        "linear",
        {
            "out_features": int(weight.shape[0]),
            "bias": bias is not None,
            "copies_input": copies,
            "derived_weight": computed_weight(t, weight),
        },
        [x],
        [weight, bias],
        layout=layout,
    )


lowering(
    "linear",
    traced_by=[trace_linear],
    build=lambda a, s: nn.Linear(whole(s[-1]), whole(a["out_features"]), a["bias"]),
    examples=lambda pick: described(
        feature_map(pick), f"linear {pick.integer(1, 7)} bias={flag(pick)}"
    ),
)


# -- upsample, upsample1d, upsample3d -----------------------------------------------------
# The interpolating mode of each rank of input, and the kind it becomes.
_RESAMPLED = {
    3: ("linear", "upsample1d"),
    4: ("bilinear", "upsample"),
    5: ("trilinear", "upsample3d"),
}


@handles(F.interpolate)
def trace_interpolate(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    size, scale = arg(args, kwargs, 1, "size"), arg(args, kwargs, 2, "scale_factor")
    mode = arg(args, kwargs, 3, "mode", "nearest")
    align = bool(arg(args, kwargs, 4, "align_corners", False) or False)
    if x.dim() not in _RESAMPLED or mode not in ("nearest", _RESAMPLED[x.dim()][0]):
        return NotImplemented
    if x.dim() != 4:
        return _interpolate_nd(t, x, size, scale, mode, align)
    if scale is None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return t.record(
            "upsample", {"size": (int(h), int(w)), "mode": mode, "align_corners": align}, [x]
        )
    if isinstance(scale, tuple | list):
        if len(set(scale)) != 1:
            return NotImplemented
        scale = scale[0]
    return t.record("upsample", {"scale_factor": scale, "mode": mode, "align_corners": align}, [x])


def _interpolate_nd(t: Tracer, x: Any, size: Any, scale: Any, mode: str, align: bool) -> Any:
    """F.interpolate of a signal (upsample1d) or a volume (upsample3d)."""
    axes = x.dim() - 2
    kind = _RESAMPLED[x.dim()][1]
    if scale is None:
        return t.record(
            kind, {"size": per_axis(size, axes), "mode": mode, "align_corners": align}, [x]
        )
    if isinstance(scale, tuple | list):
        if len(set(scale)) != 1:
            return NotImplemented
        scale = scale[0]
    return t.record(kind, {"scale_factor": scale, "mode": mode, "align_corners": align}, [x])


class Upsample(nn.Module):
    def __init__(self, scale: float, mode: str, align_corners: bool):
        super().__init__()
        self.scale, self.mode = scale, mode
        self.align_corners = align_corners if mode in ("linear", "bilinear", "trilinear") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale, mode=self.mode, align_corners=self.align_corners
        )


def build_upsample(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    if args["size"] is None:
        return Upsample(float(args["scale_factor"]), args["mode"], args["align_corners"])
    return nn.Upsample(
        size=whole_pair(args["size"]),
        mode=args["mode"],
        align_corners=args["align_corners"] or None,
    )


def build_upsample_nd(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """nn.Upsample of a signal or a volume (the rank of its input says which)."""
    if args["size"] is None:
        return Upsample(float(args["scale_factor"]), args["mode"], args["align_corners"])
    return nn.Upsample(
        size=whole_tuple(args["size"]),
        mode=args["mode"],
        align_corners=args["align_corners"] or None,
    )


def upsample_examples(pick: Choices) -> str:
    options = [
        f"upsample {pick.integer(1, 3)}",
        f"upsample {pick.integer(1, 3)} mode=bilinear align_corners={flag(pick)}",
    ]
    return described(feature_map(pick), pick.choice(options))


def upsample_nd_examples(pick: Choices, axes: int) -> str:
    linear = "linear" if axes == 1 else "trilinear"
    channels = pick.integer(1, 4)
    form = pick.integer(0, 2)
    if form == 0:
        line = f"upsample{axes}d {pick.integer(1, 3)} mode={pick.choice(['nearest', linear])}"
    elif form == 1:
        line = f"upsample{axes}d {pick.integer(1, 3)} mode={linear} align_corners={flag(pick)}"
    else:  # a size that is one scale of every axis
        size = pick.integer(1, 3) * 4
        mode = pick.choice(["nearest", linear])
        return described((channels, *(4,) * axes), f"upsample{axes}d size={size} mode={mode}")
    return described(signal_or_volume(pick, axes, channels), line)


lowering(
    "upsample",
    traced_by=[trace_interpolate],
    build=build_upsample,
    examples=upsample_examples,
)
lowering(
    "upsample1d",
    traced_by=[trace_interpolate],
    build=build_upsample_nd,
    examples=lambda pick: upsample_nd_examples(pick, 1),
)
lowering(
    "upsample3d",
    traced_by=[trace_interpolate],
    build=build_upsample_nd,
    examples=lambda pick: upsample_nd_examples(pick, 3),
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
calls(nn.Flatten, how=lambda m, x: (torch.Tensor.flatten, (x, m.start_dim, m.end_dim), {}))
calls(
    nn.Upsample,
    how=lambda m, x: (
        F.interpolate,
        (x,),
        {
            "size": m.size,
            "scale_factor": m.scale_factor,
            "mode": m.mode,
            "align_corners": m.align_corners,
            "recompute_scale_factor": m.recompute_scale_factor,
            "antialias": False,
        },
    ),
)
