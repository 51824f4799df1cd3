"""Pooling in PyTorch: maxpool2d, avgpool2d, global_avgpool, adaptive_avgpool2d,
adaptive_maxpool2d, and their 1-D and 3-D forms for (C, L) signals and (C, D, H, W)
volumes (rules: core/rules/pool.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.lowering.common import (
    axes_text,
    described,
    feature_map,
    flag,
    indices_beside,
    pair,
    per_axis,
    signal_or_volume,
    size_text,
    whole_pair,
    whole_tuple,
    with_gradient,
)
from convlens.torch.lowering.elementwise import trace_mean
from convlens.torch.registry import Choices, Handler, arg, calls, handles, lowering

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def _stride(args: Mapping[str, Any]) -> tuple[int, int]:
    return whole_pair(args["stride"] if args["stride"] is not None else args["kernel_size"])


def _pool_examples(kind: str, pick: Choices) -> str:
    k, _kernel = size_text(pick, 1, 4)
    s = pick.integer(1, 3) if pick.boolean() else None
    p = pick.integer(0, 2)
    ceil = "true" if pick.boolean() else "false"
    extra = f" d={pick.integer(1, 2)}" if kind == "maxpool2d" else ""
    stride = f" s={s}" if s is not None else ""
    return described(
        (2, pick.integer(1, 12), pick.integer(1, 12)),
        f"{kind} {k}{stride} p={p} ceil_mode={ceil}{extra}",
    )


# -- maxpool2d ----------------------------------------------------------------------------
@handles(F.max_pool2d, torch.max_pool2d)
def trace_max_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    if arg(args, kwargs, 6, "return_indices", False):
        return NotImplemented
    kernel = pair(arg(args, kwargs, 1, "kernel_size"))
    stride = arg(args, kwargs, 2, "stride")
    spec = {
        "kernel_size": kernel,
        "stride": pair(stride) if stride else kernel,
        "padding": pair(arg(args, kwargs, 3, "padding", 0)),
        "dilation": pair(arg(args, kwargs, 4, "dilation", 1)),
        "ceil_mode": bool(arg(args, kwargs, 5, "ceil_mode", False)),
    }
    return t.record("maxpool2d", spec, [args[0]])


lowering(
    "maxpool2d",
    traced_by=[trace_max_pool2d],
    build=lambda a, s: nn.MaxPool2d(
        whole_pair(a["kernel_size"]),
        _stride(a),
        whole_pair(a["padding"]),
        whole_pair(a["dilation"]),
        ceil_mode=a["ceil_mode"],
    ),
    examples=lambda pick: _pool_examples("maxpool2d", pick),
)


# -- avgpool2d ----------------------------------------------------------------------------
@handles(F.avg_pool2d)
def trace_avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    kernel = pair(arg(args, kwargs, 1, "kernel_size"))
    stride = arg(args, kwargs, 2, "stride")
    spec = {
        "kernel_size": kernel,
        "stride": pair(stride) if stride else kernel,
        "padding": pair(arg(args, kwargs, 3, "padding", 0)),
        "ceil_mode": bool(arg(args, kwargs, 4, "ceil_mode", False)),
        "count_include_pad": bool(arg(args, kwargs, 5, "count_include_pad", True)),
    }
    return t.record("avgpool2d", spec, [args[0]])


lowering(
    "avgpool2d",
    traced_by=[trace_avg_pool2d],
    build=lambda a, s: nn.AvgPool2d(
        whole_pair(a["kernel_size"]),
        _stride(a),
        whole_pair(a["padding"]),
        ceil_mode=a["ceil_mode"],
        count_include_pad=a["count_include_pad"],
    ),
    examples=lambda pick: _pool_examples("avgpool2d", pick),
)


# -- adaptive_avgpool2d and global_avgpool ------------------------------------------------
@handles(F.adaptive_avg_pool2d)
def trace_adaptive_avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """To 1×1 it is global average pooling."""
    x = args[0]
    size = arg(args, kwargs, 1, "output_size")
    size = (size, size) if isinstance(size, int) else tuple(size)
    size = tuple(int(x.shape[2 + i]) if s is None else int(s) for i, s in enumerate(size))
    if size == (1, 1):
        return t.record("global_avgpool", {}, [x])
    return t.record("adaptive_avgpool2d", {"output_size": size}, [x])


lowering(
    "adaptive_avgpool2d",
    traced_by=[trace_adaptive_avg_pool2d],
    # a trace of nn.AdaptiveAvgPool2d((1, 1)) is a global_avgpool row
    traced_as=["adaptive_avgpool2d", "global_avgpool"],
    build=lambda a, s: nn.AdaptiveAvgPool2d(whole_pair(a["output_size"])),
    examples=lambda pick: described(
        feature_map(pick), f"adaptive_avgpool2d ({pick.integer(1, 5)},{pick.integer(1, 5)})"
    ),
)


# -- 1-D and 3-D pooling: the same arguments as the 2-D functions, one value per axis ------
def _window(args: tuple, kwargs: dict, axes: int) -> dict[str, Any]:
    """kernel_size, stride (the kernel when not given) and padding, one value per axis."""
    kernel = per_axis(arg(args, kwargs, 1, "kernel_size"), axes)
    stride = arg(args, kwargs, 2, "stride")
    return {
        "kernel_size": kernel,
        "stride": per_axis(stride, axes) if stride else kernel,
        "padding": per_axis(arg(args, kwargs, 3, "padding", 0), axes),
    }


def _trace_max_pool_nd(axes: int) -> Handler:
    def trace_max_pool_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        if arg(args, kwargs, 6, "return_indices", False) or args[0].dim() == axes + 1:
            return NotImplemented
        spec = {
            **_window(args, kwargs, axes),
            "dilation": per_axis(arg(args, kwargs, 4, "dilation", 1), axes),
            "ceil_mode": bool(arg(args, kwargs, 5, "ceil_mode", False)),
        }
        return t.record(f"maxpool{axes}d", spec, [args[0]])

    return trace_max_pool_nd


def _trace_avg_pool_nd(axes: int) -> Handler:
    def trace_avg_pool_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        if args[0].dim() == axes + 1 or arg(args, kwargs, 6, "divisor_override") is not None:
            return NotImplemented
        spec = {
            **_window(args, kwargs, axes),
            "ceil_mode": bool(arg(args, kwargs, 4, "ceil_mode", False)),
            "count_include_pad": bool(arg(args, kwargs, 5, "count_include_pad", True)),
        }
        return t.record(f"avgpool{axes}d", spec, [args[0]])

    return trace_avg_pool_nd


def _given_sizes(given: Any, x: Any, axes: int) -> tuple[int, ...]:
    """``output_size`` as PyTorch reads it: one value for every axis or one per axis, None
    keeping the input's size."""
    sizes = (given,) * axes if isinstance(given, int) or given is None else tuple(given)
    if len(sizes) == 1:
        sizes = sizes * axes
    return tuple(int(x.shape[2 + i]) if s is None else int(s) for i, s in enumerate(sizes))


def _trace_adaptive_avg_pool_nd(axes: int) -> Handler:
    """To 1 on every axis it is global average pooling."""

    def trace_adaptive_avg_pool_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        size = _given_sizes(arg(args, kwargs, 1, "output_size"), x, axes)
        if all(s == 1 for s in size):
            return t.record("global_avgpool", {}, [x])
        return t.record(f"adaptive_avgpool{axes}d", {"output_size": size}, [x])

    return trace_adaptive_avg_pool_nd


trace_max_pool1d = handles(F.max_pool1d, torch.max_pool1d)(_trace_max_pool_nd(1))
trace_max_pool3d = handles(F.max_pool3d, torch.max_pool3d)(_trace_max_pool_nd(3))
trace_avg_pool1d = handles(F.avg_pool1d)(_trace_avg_pool_nd(1))
trace_avg_pool3d = handles(F.avg_pool3d)(_trace_avg_pool_nd(3))
trace_adaptive_avg_pool1d = handles(F.adaptive_avg_pool1d)(_trace_adaptive_avg_pool_nd(1))
trace_adaptive_avg_pool3d = handles(F.adaptive_avg_pool3d)(_trace_adaptive_avg_pool_nd(3))

_MAXPOOL: dict[int, Callable[..., nn.Module]] = {1: nn.MaxPool1d, 3: nn.MaxPool3d}
_AVGPOOL: dict[int, Callable[..., nn.Module]] = {1: nn.AvgPool1d, 3: nn.AvgPool3d}
_ADAPTIVE: dict[int, Callable[..., nn.Module]] = {
    1: nn.AdaptiveAvgPool1d,
    2: nn.AdaptiveAvgPool2d,
    3: nn.AdaptiveAvgPool3d,
}


def _stride_nd(args: Mapping[str, Any]) -> tuple[int, ...]:
    return whole_tuple(args["stride"] if args["stride"] is not None else args["kernel_size"])


def build_maxpool_nd(args: Mapping[str, Any], axes: int) -> nn.Module:
    return _MAXPOOL[axes](
        whole_tuple(args["kernel_size"]),
        _stride_nd(args),
        whole_tuple(args["padding"]),
        whole_tuple(args["dilation"]),
        ceil_mode=args["ceil_mode"],
    )


def build_avgpool_nd(args: Mapping[str, Any], axes: int) -> nn.Module:
    return _AVGPOOL[axes](
        whole_tuple(args["kernel_size"]),
        _stride_nd(args),
        whole_tuple(args["padding"]),
        ceil_mode=args["ceil_mode"],
        count_include_pad=args["count_include_pad"],
    )


def pool_nd_examples(pick: Choices, axes: int, family: str) -> str:
    """``maxpool`` or ``avgpool`` of a signal or a volume."""
    k, _ = axes_text(pick, axes, 1, 3)
    stride = f" s={pick.integer(1, 3)}" if pick.boolean() else ""
    extra = (
        f" d={pick.integer(1, 2)}" if family == "maxpool" else f" count_include_pad={flag(pick)}"
    )
    shape = signal_or_volume(pick, axes, 2)
    line = f"{family}{axes}d {k}{stride} p={pick.integer(0, 1)} ceil_mode={flag(pick)}{extra}"
    return described(shape, line)


def adaptive_nd_examples(pick: Choices, axes: int) -> str:
    size, _ = axes_text(pick, axes, 1, 5)
    shape = signal_or_volume(pick, axes, pick.integer(1, 4))
    return described(shape, f"adaptive_avgpool{axes}d {size}")


def _lower_pooling_nd(axes: int, trace_max: Handler, trace_avg: Handler, adaptive: Handler) -> None:
    """The max, average and adaptive average pooling kinds of ``axes`` spatial axes."""
    lowering(
        f"maxpool{axes}d",
        traced_by=[trace_max],
        build=lambda a, s: build_maxpool_nd(a, axes),
        examples=lambda pick: pool_nd_examples(pick, axes, "maxpool"),
    )
    lowering(
        f"avgpool{axes}d",
        traced_by=[trace_avg],
        build=lambda a, s: build_avgpool_nd(a, axes),
        examples=lambda pick: pool_nd_examples(pick, axes, "avgpool"),
    )
    lowering(
        f"adaptive_avgpool{axes}d",
        traced_by=[adaptive],
        # to 1 on every axis it is a global_avgpool row
        traced_as=[f"adaptive_avgpool{axes}d", "global_avgpool"],
        build=lambda a, s: _ADAPTIVE[axes](whole_tuple(a["output_size"])),
        examples=lambda pick: adaptive_nd_examples(pick, axes),
    )


_lower_pooling_nd(1, trace_max_pool1d, trace_avg_pool1d, trace_adaptive_avg_pool1d)
_lower_pooling_nd(3, trace_max_pool3d, trace_avg_pool3d, trace_adaptive_avg_pool3d)


# -- adaptive_maxpool1d/2d/3d ---------------------------------------------------------------
def _trace_adaptive_max_pool_nd(axes: int, with_indices: bool) -> Handler:
    """F.adaptive_max_pool{1,2,3}d, its indices given back with ``return_indices``, and
    F.adaptive_max_pool{1,2,3}d_with_indices, which gives them back always. The indices are
    the int64 tensor the row's training already counts (max pooling always computes and
    keeps them): handed back as the row's second result, not as a row of their own."""

    def trace_adaptive_max_pool_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if x.dim() != axes + 2:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        kind = f"adaptive_maxpool{axes}d"
        spec = {"output_size": _given_sizes(arg(args, kwargs, 1, "output_size"), x, axes)}
        if not (with_indices or arg(args, kwargs, 2, "return_indices", False)):
            return t.record(kind, spec, [x])
        return indices_beside(t, lambda: t.record(kind, spec, [x]))

    return trace_adaptive_max_pool_nd


_ADAPTIVE_MAX_FUNCTIONS = {
    1: (F.adaptive_max_pool1d, F.adaptive_max_pool1d_with_indices),
    2: (F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices),
    3: (F.adaptive_max_pool3d, F.adaptive_max_pool3d_with_indices),
}
ADAPTIVE_MAX_HANDLERS = {
    axes: [
        handles(pooled)(_trace_adaptive_max_pool_nd(axes, with_indices=False)),
        handles(with_indices)(_trace_adaptive_max_pool_nd(axes, with_indices=True)),
    ]
    for axes, (pooled, with_indices) in _ADAPTIVE_MAX_FUNCTIONS.items()
}

_ADAPTIVE_MAX: dict[int, type[nn.Module]] = {
    1: nn.AdaptiveMaxPool1d,
    2: nn.AdaptiveMaxPool2d,
    3: nn.AdaptiveMaxPool3d,
}


def adaptive_max_examples(pick: Choices, axes: int) -> str:
    size, _ = axes_text(pick, axes, 1, 5)
    shape = feature_map(pick) if axes == 2 else signal_or_volume(pick, axes, pick.integer(1, 4))
    return described(shape, *with_gradient(pick, shape, f"adaptive_maxpool{axes}d {size}"))


def _lower_adaptive_max(axes: int) -> None:
    lowering(
        f"adaptive_maxpool{axes}d",
        traced_by=ADAPTIVE_MAX_HANDLERS[axes],
        build=lambda a, s: _ADAPTIVE_MAX[axes](whole_tuple(a["output_size"])),
        examples=lambda pick: adaptive_max_examples(pick, axes),
    )


for _axes in _ADAPTIVE_MAX:
    _lower_adaptive_max(_axes)


# -- global_avgpool: of an image, a signal or a volume -------------------------------------
def build_global_avgpool(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """nn.AdaptiveAvgPool1d/2d/3d(1) for a signal, an image or a volume."""
    return _ADAPTIVE.get(len(shape) - 1, nn.AdaptiveAvgPool2d)(1)


def global_avgpool_examples(pick: Choices) -> str:
    axes = pick.choice([2, 2, 1, 3])
    shape = feature_map(pick) if axes == 2 else signal_or_volume(pick, axes, pick.integer(1, 4))
    return described(shape, "global_avgpool")


lowering(
    "global_avgpool",
    traced_by=[
        trace_adaptive_avg_pool2d,
        trace_adaptive_avg_pool1d,
        trace_adaptive_avg_pool3d,
        trace_mean,  # x.mean((2, 3)) too
    ],
    build=build_global_avgpool,
    examples=global_avgpool_examples,
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
def _max_pool2d_call(m: Any, x: Any) -> Any:
    """nn.MaxPool2d without indices (with them PyTorch calls max_pool2d_with_indices)."""
    if m.return_indices:
        return None
    options = {"stride": m.stride, "padding": m.padding, "dilation": m.dilation}
    return (
        F.max_pool2d,
        (x, m.kernel_size),
        {**options, "ceil_mode": m.ceil_mode, "return_indices": False},
    )


calls(nn.MaxPool2d, how=_max_pool2d_call)
calls(
    nn.AvgPool2d,
    how=lambda m, x: (
        F.avg_pool2d,
        (
            x,
            m.kernel_size,
            m.stride,
            m.padding,
            m.ceil_mode,
            m.count_include_pad,
            m.divisor_override,
        ),
        {},
    ),
)
calls(nn.AdaptiveAvgPool2d, how=lambda m, x: (F.adaptive_avg_pool2d, (x, m.output_size), {}))


def _adaptive_max_pool_call(axes: int) -> Any:
    """nn.AdaptiveMaxPool{1,2,3}d: PyTorch's boolean dispatch calls the function that
    gives the indices back when ``return_indices``."""
    pooled, with_indices = _ADAPTIVE_MAX_FUNCTIONS[axes]

    def call(m: Any, x: Any) -> Any:
        func = with_indices if m.return_indices else pooled
        return (func, (x, m.output_size), {"return_indices": m.return_indices})

    return call


for _axes, _module in _ADAPTIVE_MAX.items():
    calls(_module, how=_adaptive_max_pool_call(_axes))
