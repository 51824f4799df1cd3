"""Pooling in PyTorch: maxpool2d, avgpool2d, global_avgpool, adaptive_avgpool2d (rules:
core/rules/pool.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.lowering.common import described, feature_map, pair, size_text, whole_pair
from convlens.torch.lowering.elementwise import trace_mean
from convlens.torch.registry import Choices, arg, handles, lowering

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
lowering(
    "global_avgpool",
    traced_by=[trace_adaptive_avg_pool2d, trace_mean],  # x.mean((2, 3)) too
    build=lambda a, s: nn.AdaptiveAvgPool2d(1),
    examples=lambda pick: described(feature_map(pick), "global_avgpool"),
)
