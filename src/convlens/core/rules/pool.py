"""Pooling over 1, 2 or 3 spatial axes: max, average, global average, adaptive average,
adaptive max.

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks: max pooling,
windowed or adaptive (to any size, 1 included), keeps its input and the arg-max indices
(int64, one per output element); average pooling keeps its input, except to 1 everywhere
(a mean, which keeps nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import ceildiv, divide, floordiv, is_numeric, normalize, product
from convlens.core.registry import AxisMap, Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import (
    AXIS_SYMBOLS,
    Window,
    spatial_nd,
    stride_warnings,
    window_output,
)
from convlens.core.rules.conv import kernel_symbols, register_other_axes
from convlens.core.steps import step

_POOL = (
    Arg("kernel_size", "pair", positional=True, help="window height and width"),
    Arg("stride", "pair", None, help="step between windows (default: the kernel size)"),
    Arg("padding", "pair", 0, minimum=0, help="implicit padding on each side"),
)
MAXPOOL = Schema(
    (
        *_POOL,
        Arg("dilation", "pair", 1, help="spacing between window taps"),
        Arg("ceil_mode", "bool", False, help="round the output size up"),
    )
)
AVGPOOL = Schema(
    (
        *_POOL,
        Arg("ceil_mode", "bool", False, help="round the output size up"),
        Arg("count_include_pad", "bool", True, help="divide by the full window"),
    )
)


def _pool(
    kind: str,
    shape: Shape,
    args: Mapping[str, Any],
    dilation: tuple[Any, ...],
    spatial_axes: int,
) -> Cost:
    channels, sizes = spatial_nd(kind, shape, spatial_axes)
    kernel, pad = args["kernel_size"], args["padding"]
    stride = args["stride"] if args["stride"] is not None else kernel
    outs, steps, gaps, maps = [], [], [], []
    for axis, size in enumerate(sizes):
        # PyTorch's limit is half the kernel, rounded down, whatever the dilation
        if is_numeric(pad[axis]) and is_numeric(kernel[axis]) and pad[axis] > kernel[axis] // 2:
            raise RuleError(
                f"padding {pad[axis]} must be at most half the kernel size "
                f"({kernel[axis]} // 2 = {kernel[axis] // 2}, dilation aside); "
                "PyTorch refuses larger pooling padding"
            )
        window = Window(
            size,
            kernel[axis],
            stride[axis],
            pad[axis],
            pad[axis],
            dilation[axis],
            ceil_mode=args["ceil_mode"],
        )
        out, axis_steps, axis_gaps, axis_map = window_output(kind, axis, window, spatial_axes)
        outs.append(out)
        steps += axis_steps
        gaps += axis_gaps
        maps.append(axis_map)
    return Cost(
        output_shape=(channels, *outs),
        rf=tuple(maps),
        warnings=stride_warnings(gaps, spatial_axes),
        steps=tuple(steps),
        args={**args, "stride": stride},
    )


def _window_terms(
    cost: Cost, args: Mapping[str, Any], axes: int
) -> tuple[str, str, dict[str, Any]]:
    """``{C}·{H_out}·{W_out}`` and ``{K_h}·{K_w}`` (one factor per axis), with values."""
    c, *outs = cost.output_shape
    out_symbols = [f"{s}_out" for s in AXIS_SYMBOLS[axes]]
    k_symbols = kernel_symbols(axes)
    values = {
        "C": c,
        **dict(zip(out_symbols, outs, strict=True)),
        **dict(zip(k_symbols, args["kernel_size"], strict=True)),
    }
    outputs = "·".join("{" + s + "}" for s in ("C", *out_symbols))
    return outputs, "·".join("{" + s + "}" for s in k_symbols), values


def max_pooling(kind: str, shape: Shape, args: Mapping[str, Any], axes: int) -> Cost:
    cost = _pool(kind, shape, args, args["dilation"], axes)
    outputs, window, values = _window_terms(cost, args, axes)
    elements = product(cost.output_shape)
    comparisons = normalize(elements * (product(args["kernel_size"]) - 1))
    steps = (
        *cost.steps,
        step(
            "flops",
            "comparisons",
            "FLOPs",
            outputs + "·(" + window + " − 1)",
            values,
            comparisons,
        ),
    )
    # Backward needs the input and the arg-max indices (int64, one per output element).
    saves = (Saved("input"), Saved("extra", elements=normalize(elements), itemsize=8))
    return _replace(cost, other_flops=comparisons, saves=saves, steps=steps)


def average_pooling(kind: str, shape: Shape, args: Mapping[str, Any], axes: int) -> Cost:
    cost = _pool(kind, shape, args, (1,) * axes, axes)
    sizes, kernel = shape[1:], args["kernel_size"]
    if axes == 3 and any(
        is_numeric(i) and is_numeric(k) and i < k for i, k in zip(sizes, kernel, strict=True)
    ):  # ATen's avg_pool3d checks the input against the window, padding aside
        raise RuleError(
            f"the input {'×'.join(map(str, sizes))} is smaller than the kernel "
            f"{'×'.join(map(str, kernel))} on some axis: PyTorch's avg_pool3d refuses it "
            "(whatever the padding)"
        )
    outputs, window, values = _window_terms(cost, args, axes)
    work = normalize(product(cost.output_shape) * product(args["kernel_size"]))
    # K·K − 1 additions and one division per output
    steps = (
        *cost.steps,
        step("flops", "additions and divisions", "FLOPs", outputs + "·" + window, values, work),
    )
    return _replace(cost, other_flops=work, saves=(Saved("input"),), steps=steps)


@register_rule("maxpool2d", MAXPOOL, "max pooling (nn.MaxPool2d)")
def maxpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return max_pooling("maxpool2d", inputs[0], args, 2)


register_other_axes(
    "maxpool2d",
    MAXPOOL,
    {1: "1-D max pooling (nn.MaxPool1d)", 3: "3-D max pooling (nn.MaxPool3d)"},
    max_pooling,
)


@register_rule("avgpool2d", AVGPOOL, "average pooling (nn.AvgPool2d)")
def avgpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return average_pooling("avgpool2d", inputs[0], args, 2)


register_other_axes(
    "avgpool2d",
    AVGPOOL,
    {1: "1-D average pooling (nn.AvgPool1d)", 3: "3-D average pooling (nn.AvgPool3d)"},
    average_pooling,
)


GLOBAL = Schema((Arg("keepdim", "bool", True, help="keep the 1×1 spatial axes"),))


@register_rule(
    "global_avgpool",
    GLOBAL,
    "global average pooling to (C, 1, 1) "
    "(nn.AdaptiveAvgPool2d(1)), or to (C,) with keepdim=false (x.mean((2, 3))); "
    "to (C, 1) or (C, 1, 1, 1) on a signal or a volume",
)
def global_avgpool(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    axes = len(shape) - 1
    if axes not in AXIS_SYMBOLS:
        spatial_nd("global_avgpool", shape, 2)  # the (C, H, W) error, with its hint
    c, sizes = spatial_nd("global_avgpool", shape, axes)
    work = normalize(c * product(sizes))  # H·W − 1 additions and one division per channel
    kept = (1,) * axes
    symbols = AXIS_SYMBOLS[axes]
    return Cost(
        output_shape=(c, *kept) if args["keepdim"] else (c,),
        other_flops=work,
        rf_global=True,
        saves=(),  # computed as a mean, whose backward needs only the sizes
        steps=(
            step(
                "shape",
                "output channels",
                "C_out",
                "{C}",
                {"C": c},
                c,
                note=f"each channel's {'×'.join(symbols)} map becomes one value: the output is "
                + (f"(C, {', '.join('1' for _ in symbols)})" if args["keepdim"] else "(C,)"),
            ),
            step(
                "flops",
                "additions and divisions",
                "FLOPs",
                "·".join("{" + s + "}" for s in ("C", *symbols)),
                {"C": c, **dict(zip(symbols, sizes, strict=True))},
                work,
            ),
        ),
    )


ADAPTIVE = Schema((Arg("output_size", "size", positional=True, help="output height and width"),))


def _adaptive_map(size: Any, out: Any) -> AxisMap:
    """Bin o covers input ⌊o·I/O⌋ … ⌈(o+1)·I/O⌉ − 1 (PyTorch's adaptive pooling)."""
    return AxisMap(
        lo=lambda o: floordiv(o * size, out),
        hi=lambda o: ceildiv((o + 1) * size, out) - 1,
        jump=divide(size, out),
        taps=lambda o: list(range(floordiv(o * size, out), ceildiv((o + 1) * size, out))),
    )


def _bin_total(size: Any, out: Any) -> Any:
    """Σ over output positions of the bin length along one axis."""
    if is_numeric(size) and is_numeric(out):
        return sum(ceildiv((o + 1) * size, out) - floordiv(o * size, out) for o in range(out))
    from convlens.core.numbers import known_divides

    if known_divides(out, size):
        return size
    raise RuleError(
        "adaptive pooling with symbolic sizes that do not divide evenly: give the sizes with --set"
    )


def adaptive_pooling(kind: str, shape: Shape, args: Mapping[str, Any], axes: int) -> Cost:
    c, sizes = spatial_nd(kind, shape, axes)
    outs = tuple(args["output_size"])
    bins = [_bin_total(size, out) for size, out in zip(sizes, outs, strict=True)]
    work = normalize(c * product(bins))
    whole = all(out == 1 for out in outs)  # PyTorch computes it as a mean: nothing saved
    bin_symbols = [f"B_{s.lower()}" for s in AXIS_SYMBOLS[axes]]
    return Cost(
        output_shape=(c, *outs),
        other_flops=work,
        rf=tuple(_adaptive_map(size, out) for size, out in zip(sizes, outs, strict=True)),
        rf_global=whole,
        saves=() if whole else (Saved("input"),),
        steps=(
            step(
                "flops",
                "additions and divisions",
                "FLOPs",
                "·".join("{" + s + "}" for s in ("C", *bin_symbols)),
                {"C": c, **dict(zip(bin_symbols, bins, strict=True))},
                work,
                note="B = total bin length along an axis; bins may overlap",
            ),
        ),
        args=dict(args),
    )


@register_rule("adaptive_avgpool2d", ADAPTIVE, "adaptive average pooling (nn.AdaptiveAvgPool2d)")
def adaptive_avgpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return adaptive_pooling("adaptive_avgpool2d", inputs[0], args, 2)


register_other_axes(
    "adaptive_avgpool2d",
    ADAPTIVE,
    {
        1: "1-D adaptive average pooling (nn.AdaptiveAvgPool1d)",
        3: "3-D adaptive average pooling (nn.AdaptiveAvgPool3d)",
    },
    adaptive_pooling,
)


def adaptive_max_pooling(kind: str, shape: Shape, args: Mapping[str, Any], axes: int) -> Cost:
    """The bins of adaptive average pooling, each reduced to its maximum: a bin of B
    values costs B − 1 comparisons, as a max-pooling window of K values costs K − 1."""
    average = adaptive_pooling(kind, shape, args, axes)
    c, *outs = average.output_shape
    sizes = shape[1:]
    bins = [_bin_total(size, out) for size, out in zip(sizes, outs, strict=True)]
    # Σ over outputs of (∏ bin lengths − 1) = ∏ B − ∏ O (the bins of the axes combine)
    comparisons = normalize(c * (product(bins) - product(outs)))
    bin_symbols = [f"B_{s.lower()}" for s in AXIS_SYMBOLS[axes]]
    out_symbols = [f"{s}_out" for s in AXIS_SYMBOLS[axes]]
    elements = product(average.output_shape)
    return _replace(
        average,
        other_flops=comparisons,
        # the input and the arg-max indices (int64, one per output element), to 1×1 too
        saves=(Saved("input"), Saved("extra", elements=normalize(elements), itemsize=8)),
        steps=(
            step(
                "flops",
                "comparisons",
                "FLOPs",
                "{C}·("
                + "·".join("{" + s + "}" for s in bin_symbols)
                + " − "
                + "·".join("{" + s + "}" for s in out_symbols)
                + ")",
                {
                    "C": c,
                    **dict(zip(bin_symbols, bins, strict=True)),
                    **dict(zip(out_symbols, outs, strict=True)),
                },
                comparisons,
                note="B = total bin length along an axis; a bin of b values takes b − 1 "
                "comparisons",
            ),
        ),
    )


@register_rule("adaptive_maxpool2d", ADAPTIVE, "adaptive max pooling (nn.AdaptiveMaxPool2d)")
def adaptive_maxpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return adaptive_max_pooling("adaptive_maxpool2d", inputs[0], args, 2)


register_other_axes(
    "adaptive_maxpool2d",
    ADAPTIVE,
    {
        1: "1-D adaptive max pooling (nn.AdaptiveMaxPool1d)",
        3: "3-D adaptive max pooling (nn.AdaptiveMaxPool3d)",
    },
    adaptive_max_pooling,
)


def _replace(cost: Cost, **changes: Any) -> Cost:
    from dataclasses import replace

    return replace(cost, **changes)
