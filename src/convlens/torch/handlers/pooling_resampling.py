"""Pooling (max, average, adaptive) and interpolation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.handlers.registry import arg, handles, pair

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


@handles(F.interpolate)
def _interpolate(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    size, scale = arg(args, kwargs, 1, "size"), arg(args, kwargs, 2, "scale_factor")
    mode = arg(args, kwargs, 3, "mode", "nearest")
    align = bool(arg(args, kwargs, 4, "align_corners", False) or False)
    if mode not in ("nearest", "bilinear") or x.dim() != 4:
        return NotImplemented
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
