"""Convolutions in PyTorch: conv2d, depthwise, conv_transpose2d, and conv1d/3d and
conv_transpose1d/3d of (C, L) signals and (C, D, H, W) volumes (rules: core/rules/conv.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.lowering.common import (
    axes_text,
    described,
    expect_channels,
    flag,
    padded,
    pair,
    per_axis,
    signal_or_volume,
    size_text,
    whole,
    whole_pair,
    whole_tuple,
)
from convlens.torch.registry import Choices, Handler, arg, calls, handles, lowering

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def computed_weight(t: Tracer, weight: torch.Tensor) -> bool:
    """A weight that is no storage of the model's (computed in the forward, like LeNet-5's
    dense C3 kernel, or a constant): backward keeps it, so it counts as an activation. A
    view of a parameter (``self.weight.view(…)``) shares the parameter's storage: not one."""
    base = weight._base
    return id(weight) not in t.owned and (base is None or id(base) not in t.owned)


# -- conv2d -------------------------------------------------------------------------------
@handles(F.conv2d, torch.conv2d)
def trace_conv2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    if len(args) == 7 and not kwargs:  # as nn.Conv2d passes them
        x, weight, bias, stride, padding, dilation, groups = args
    else:
        x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        stride, padding = arg(args, kwargs, 3, "stride", 1), arg(args, kwargs, 4, "padding", 0)
        dilation, groups = arg(args, kwargs, 5, "dilation", 1), arg(args, kwargs, 6, "groups", 1)
    groups, size = int(groups), weight.shape
    expect_channels(t, x, int(size[1]) * groups, "input channels")
    spec = {
        "out_channels": int(size[0]),
        "kernel_size": pair(size[2:]),
        "stride": pair(stride),
        "padding": padding if isinstance(padding, str) else pair(padding),
        "dilation": pair(dilation),
        "groups": groups,
        "bias": bias is not None,
        "derived_weight": computed_weight(t, weight),
    }
    return t.record("conv2d", spec, [x], [weight, bias])


def build_conv2d(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    channels = whole(shape[0])
    if args["padding"] == "same":  # PyTorch's own 'same' (it refuses strided ones itself)
        return nn.Conv2d(
            channels,
            whole(args["out_channels"]),
            whole_pair(args["kernel_size"]),
            whole_pair(args["stride"]),
            "same",
            whole_pair(args["dilation"]),
            whole(args["groups"]),
            bias=args["bias"],
        )
    top, bottom, left, right = args["padding"]
    symmetric = top == bottom and left == right
    conv = nn.Conv2d(
        channels,
        whole(args["out_channels"]),
        whole_pair(args["kernel_size"]),
        whole_pair(args["stride"]),
        (whole(top), whole(left)) if symmetric else 0,
        whole_pair(args["dilation"]),
        whole(args["groups"]),
        bias=args["bias"],
    )
    return padded(conv, args["padding"])


def conv2d_examples(pick: Choices) -> str:
    groups = pick.choice([1, 1, 2, 3])
    c_in = groups * pick.integer(1, 3)
    c_out = groups * pick.integer(1, 3)
    k, _ = size_text(pick, 1, 5)
    s, stride = size_text(pick, 1, 3)
    d, _ = size_text(pick, 1, 3)
    if stride == (1, 1) and pick.integer(0, 4) == 0:
        p = pick.choice(["same", "valid"])
    else:
        p, _ = size_text(pick, 0, 3)
    line = f"conv2d {c_out} k={k} s={s} p={p} d={d} g={groups} bias={flag(pick)}"
    return described((c_in, pick.integer(1, 12), pick.integer(1, 12)), line)


lowering("conv2d", traced_by=[trace_conv2d], build=build_conv2d, examples=conv2d_examples)


# -- depthwise ----------------------------------------------------------------------------
def build_depthwise(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """A grouped conv2d with one group per input channel, as PyTorch users write it."""
    channels = whole(shape[0])
    grouped = {**args, "out_channels": channels * whole(args["multiplier"]), "groups": channels}
    return build_conv2d(grouped, shape)


def depthwise_examples(pick: Choices) -> str:
    k, _ = size_text(pick, 1, 4)
    s, _ = size_text(pick, 1, 2)
    m = pick.integer(1, 2)
    shape = (pick.integer(1, 4), pick.integer(1, 12), pick.integer(1, 12))
    return described(shape, f"depthwise {k} s={s} p=1 multiplier={m}")


lowering(
    "depthwise",
    traced_as=["conv2d"],
    build=build_depthwise,
    examples=depthwise_examples,
)


# -- conv_transpose2d ---------------------------------------------------------------------
@handles(F.conv_transpose2d, torch.conv_transpose2d)
def trace_conv_transpose2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    groups = int(arg(args, kwargs, 6, "groups", 1))
    expect_channels(t, x, int(weight.shape[0]), "input channels")
    spec = {
        "out_channels": int(weight.shape[1]) * groups,
        "kernel_size": pair(weight.shape[2:]),
        "stride": pair(arg(args, kwargs, 3, "stride", 1)),
        "padding": pair(arg(args, kwargs, 4, "padding", 0)),
        "output_padding": pair(arg(args, kwargs, 5, "output_padding", 0)),
        "groups": groups,
        "dilation": pair(arg(args, kwargs, 7, "dilation", 1)),
        "bias": bias is not None,
        "derived_weight": computed_weight(t, weight),
    }
    return t.record("conv_transpose2d", spec, [x], [weight, bias])


def build_conv_transpose2d(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    return nn.ConvTranspose2d(
        whole(shape[0]),
        whole(args["out_channels"]),
        whole_pair(args["kernel_size"]),
        whole_pair(args["stride"]),
        whole_pair(args["padding"]),
        whole_pair(args["output_padding"]),
        whole(args["groups"]),
        args["bias"],
        whole_pair(args["dilation"]),
    )


def conv_transpose2d_examples(pick: Choices) -> str:
    groups = pick.choice([1, 1, 2])
    c_in, c_out = groups * pick.integer(1, 3), groups * pick.integer(1, 3)
    k, _kernel = size_text(pick, 1, 4)
    s, stride = size_text(pick, 1, 3)
    d, dilation = size_text(pick, 1, 2)
    p, _ = size_text(pick, 0, 2)
    op = tuple(pick.integer(0, max(stride[i], dilation[i]) - 1) for i in range(2))
    return described(
        (c_in, pick.integer(1, 6), pick.integer(1, 6)),
        f"conv_transpose2d {c_out} k={k} s={s} p={p} d={d} "
        f"output_padding=({op[0]},{op[1]}) g={groups} bias={flag(pick)}",
    )


lowering(
    "conv_transpose2d",
    traced_by=[trace_conv_transpose2d],
    build=build_conv_transpose2d,
    examples=conv_transpose2d_examples,
)


# -- conv1d, conv3d, conv_transpose1d, conv_transpose3d -----------------------------------
# The Nd functions and modules of PyTorch for a (C, L) signal or a (C, D, H, W) volume: the
# same arguments as the 2-D ones, one value per spatial axis.
def _trace_conv_nd(axes: int) -> Handler:
    """F.conv1d / F.conv3d on a batched (N, C, L) or (N, C, D, H, W) input."""

    def trace_conv_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        padding = arg(args, kwargs, 4, "padding", 0)
        groups = int(arg(args, kwargs, 6, "groups", 1))
        expect_channels(t, x, int(weight.shape[1]) * groups, "input channels")
        spec = {
            "out_channels": int(weight.shape[0]),
            "kernel_size": tuple(int(k) for k in weight.shape[2:]),
            "stride": per_axis(arg(args, kwargs, 3, "stride", 1), axes),
            "padding": padding if isinstance(padding, str) else per_axis(padding, axes),
            "dilation": per_axis(arg(args, kwargs, 5, "dilation", 1), axes),
            "groups": groups,
            "bias": bias is not None,
            "derived_weight": computed_weight(t, weight),
        }
        return t.record(f"conv{axes}d", spec, [x], [weight, bias])

    return trace_conv_nd


def _trace_conv_transpose_nd(axes: int) -> Handler:
    """F.conv_transpose1d / F.conv_transpose3d on a batched input."""

    def trace_conv_transpose_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        groups = int(arg(args, kwargs, 6, "groups", 1))
        expect_channels(t, x, int(weight.shape[0]), "input channels")
        spec = {
            "out_channels": int(weight.shape[1]) * groups,
            "kernel_size": tuple(int(k) for k in weight.shape[2:]),
            "stride": per_axis(arg(args, kwargs, 3, "stride", 1), axes),
            "padding": per_axis(arg(args, kwargs, 4, "padding", 0), axes),
            "output_padding": per_axis(arg(args, kwargs, 5, "output_padding", 0), axes),
            "groups": groups,
            "dilation": per_axis(arg(args, kwargs, 7, "dilation", 1), axes),
            "bias": bias is not None,
            "derived_weight": computed_weight(t, weight),
        }
        return t.record(f"conv_transpose{axes}d", spec, [x], [weight, bias])

    return trace_conv_transpose_nd


trace_conv1d = handles(F.conv1d, torch.conv1d)(_trace_conv_nd(1))
trace_conv3d = handles(F.conv3d, torch.conv3d)(_trace_conv_nd(3))
trace_conv_transpose1d = handles(F.conv_transpose1d, torch.conv_transpose1d)(
    _trace_conv_transpose_nd(1)
)
trace_conv_transpose3d = handles(F.conv_transpose3d, torch.conv_transpose3d)(
    _trace_conv_transpose_nd(3)
)

_CONV: dict[int, Callable[..., nn.Module]] = {1: nn.Conv1d, 3: nn.Conv3d}
_CONV_TRANSPOSE: dict[int, Callable[..., nn.Module]] = {
    1: nn.ConvTranspose1d,
    3: nn.ConvTranspose3d,
}


class ZeroPad(nn.Module):
    """Zeros before and after each spatial axis, ``pads`` as (before, after) per axis."""

    def __init__(self, pads: tuple[int, ...]):
        super().__init__()
        pairs = [pads[i : i + 2] for i in range(0, len(pads), 2)]
        self.pad = tuple(p for pair in reversed(pairs) for p in pair)  # last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


def build_conv_nd(args: Mapping[str, Any], shape: tuple, axes: int) -> nn.Module:
    """nn.Conv1d/3d; asymmetric padding (as 'same' with an even kernel) padded first."""
    padding = args["padding"]
    pads = None if padding == "same" else whole_tuple(padding)
    symmetric = pads is not None and all(pads[i] == pads[i + 1] for i in range(0, len(pads), 2))
    conv = _CONV[axes](
        whole(shape[0]),
        whole(args["out_channels"]),
        whole_tuple(args["kernel_size"]),
        whole_tuple(args["stride"]),
        "same" if pads is None else (pads[::2] if symmetric else 0),
        whole_tuple(args["dilation"]),
        whole(args["groups"]),
        bias=args["bias"],
    )
    return conv if pads is None or symmetric else nn.Sequential(ZeroPad(pads), conv)


def build_conv_transpose_nd(args: Mapping[str, Any], shape: tuple, axes: int) -> nn.Module:
    return _CONV_TRANSPOSE[axes](
        whole(shape[0]),
        whole(args["out_channels"]),
        whole_tuple(args["kernel_size"]),
        whole_tuple(args["stride"]),
        whole_tuple(args["padding"]),
        whole_tuple(args["output_padding"]),
        whole(args["groups"]),
        args["bias"],
        whole_tuple(args["dilation"]),
    )


def conv_nd_examples(pick: Choices, axes: int) -> str:
    groups = pick.choice([1, 1, 2, 3])
    c_in, c_out = groups * pick.integer(1, 3), groups * pick.integer(1, 3)
    k, _ = axes_text(pick, axes, 1, 4)
    s, stride = axes_text(pick, axes, 1, 3)
    d, _ = axes_text(pick, axes, 1, 2)
    # (asymmetric padding, (before, after) per axis, is built as F.pad + conv: two rows in
    # a trace, one described; tests/core/test_n_dimensional.py checks it on its own)
    if set(stride) == {1} and pick.integer(0, 4) == 0:
        p = pick.choice(["same", "valid"])
    else:
        p, _ = axes_text(pick, axes, 0, 2)
    shape = signal_or_volume(pick, axes, c_in)
    line = f"conv{axes}d {c_out} k={k} s={s} p={p} d={d} g={groups} bias={flag(pick)}"
    return described(shape, line)


def conv_transpose_nd_examples(pick: Choices, axes: int) -> str:
    groups = pick.choice([1, 1, 2])
    c_in, c_out = groups * pick.integer(1, 3), groups * pick.integer(1, 3)
    k, _ = axes_text(pick, axes, 1, 3)
    s, stride = axes_text(pick, axes, 1, 3)
    d, dilation = axes_text(pick, axes, 1, 2)
    p, _ = axes_text(pick, axes, 0, 2)
    op = ",".join(str(pick.integer(0, max(stride[i], dilation[i]) - 1)) for i in range(axes))
    shape = signal_or_volume(pick, axes, c_in)
    return described(
        shape,
        f"conv_transpose{axes}d {c_out} k={k} s={s} p={p} d={d} output_padding=({op}) "
        f"g={groups} bias={flag(pick)}",
    )


def _lower_conv_nd(axes: int, trace_conv: Handler, trace_transposed: Handler) -> None:
    """The convolution and transposed convolution kinds of ``axes`` spatial axes."""
    lowering(
        f"conv{axes}d",
        traced_by=[trace_conv],
        build=lambda a, s: build_conv_nd(a, s, axes),
        examples=lambda pick: conv_nd_examples(pick, axes),
    )
    lowering(
        f"conv_transpose{axes}d",
        traced_by=[trace_transposed],
        build=lambda a, s: build_conv_transpose_nd(a, s, axes),
        examples=lambda pick: conv_transpose_nd_examples(pick, axes),
    )


_lower_conv_nd(1, trace_conv1d, trace_conv_transpose1d)
_lower_conv_nd(3, trace_conv3d, trace_conv_transpose3d)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
def _conv_call(func: Any) -> Any:
    """nn.ConvNd with zero padding (other padding modes pad first)."""

    def how(m: Any, x: Any) -> Any:
        if m.padding_mode != "zeros":
            return None
        return func, (x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups), {}

    return how


calls(nn.Conv1d, how=_conv_call(F.conv1d))
calls(nn.Conv2d, how=_conv_call(F.conv2d))
calls(nn.Conv3d, how=_conv_call(F.conv3d))


def _conv_transpose2d_call(m: Any, x: Any) -> Any:
    """nn.ConvTranspose2d called without ``output_size`` (its one argument here)."""
    if m.padding_mode != "zeros":
        return None  # the forward refuses it
    padding = tuple(m.output_padding)
    return (
        F.conv_transpose2d,
        (x, m.weight, m.bias, m.stride, m.padding, padding, m.groups, m.dilation),
        {},
    )


calls(nn.ConvTranspose2d, how=_conv_transpose2d_call)
