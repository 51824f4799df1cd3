"""Pooling (max, average, adaptive) and interpolation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.handlers.registry import arg, handles, pair, per_axis

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(F.max_pool2d, torch.max_pool2d)
def _max_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
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


@handles(F.avg_pool2d)
def _avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
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


@handles(F.adaptive_avg_pool2d)
def _adaptive_avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    size = arg(args, kwargs, 1, "output_size")
    size = (size, size) if isinstance(size, int) else tuple(size)
    size = tuple(int(x.shape[2 + i]) if s is None else int(s) for i, s in enumerate(size))
    if size == (1, 1):
        return t.record("global_avgpool", {}, [x])
    return t.record("adaptive_avgpool2d", {"output_size": size}, [x])


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


def _max_pool_nd(axes: int) -> Any:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        if arg(args, kwargs, 6, "return_indices", False) or args[0].dim() == axes + 1:
            return NotImplemented
        spec = {
            **_window(args, kwargs, axes),
            "dilation": per_axis(arg(args, kwargs, 4, "dilation", 1), axes),
            "ceil_mode": bool(arg(args, kwargs, 5, "ceil_mode", False)),
        }
        return t.record(f"maxpool{axes}d", spec, [args[0]])

    return handler


def _avg_pool_nd(axes: int) -> Any:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        if args[0].dim() == axes + 1 or arg(args, kwargs, 6, "divisor_override") is not None:
            return NotImplemented
        spec = {
            **_window(args, kwargs, axes),
            "ceil_mode": bool(arg(args, kwargs, 4, "ceil_mode", False)),
            "count_include_pad": bool(arg(args, kwargs, 5, "count_include_pad", True)),
        }
        return t.record(f"avgpool{axes}d", spec, [args[0]])

    return handler


def _adaptive_avg_pool_nd(axes: int) -> Any:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        given = arg(args, kwargs, 1, "output_size")
        size = (given,) * axes if isinstance(given, int) or given is None else tuple(given)
        if len(size) == 1:
            size = size * axes
        size = tuple(int(x.shape[2 + i]) if s is None else int(s) for i, s in enumerate(size))
        if all(s == 1 for s in size):
            return t.record("global_avgpool", {}, [x])
        return t.record(f"adaptive_avgpool{axes}d", {"output_size": size}, [x])

    return handler


handles(F.max_pool1d, torch.max_pool1d)(_max_pool_nd(1))
handles(F.max_pool3d, torch.max_pool3d)(_max_pool_nd(3))
handles(F.avg_pool1d)(_avg_pool_nd(1))
handles(F.avg_pool3d)(_avg_pool_nd(3))
handles(F.adaptive_avg_pool1d)(_adaptive_avg_pool_nd(1))
handles(F.adaptive_avg_pool3d)(_adaptive_avg_pool_nd(3))

# The interpolating mode of each rank of input, and the kind it becomes.
_RESAMPLED = {
    3: ("linear", "upsample1d"),
    4: ("bilinear", "upsample"),
    5: ("trilinear", "upsample3d"),
}


@handles(F.interpolate)
def _interpolate(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
