"""Pooling: max, average, global average, adaptive average."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import ceildiv, divide, floordiv, is_numeric, normalize
from convlens.core.registry import AxisMap, Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import Window, spatial, stride_warnings, window_output
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


def _pool(kind: str, shape: Shape, args: Mapping[str, Any], dilation: tuple[Any, ...]) -> Cost:
    channels, height, width = spatial(kind, shape)
    kernel, pad = args["kernel_size"], args["padding"]
    stride = args["stride"] if args["stride"] is not None else kernel
    outs, steps, gaps, maps = [], [], [], []
    for axis, size in enumerate((height, width)):
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
        out, axis_steps, axis_gaps, axis_map = window_output(kind, axis, window)
        outs.append(out)
        steps += axis_steps
        gaps += axis_gaps
        maps.append(axis_map)
    return Cost(
        output_shape=(channels, outs[0], outs[1]),
        rf=(maps[0], maps[1]),
        warnings=stride_warnings(gaps),
        steps=tuple(steps),
        args={**args, "stride": stride},
    )


@register_rule("maxpool2d", MAXPOOL, "max pooling (nn.MaxPool2d)")
def maxpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    cost = _pool("maxpool2d", inputs[0], args, args["dilation"])
    c, h, w = cost.output_shape
    k = args["kernel_size"]
    comparisons = normalize(c * h * w * (k[0] * k[1] - 1))
    steps = (
        *cost.steps,
        step(
            "flops",
            "comparisons",
            "FLOPs",
            "{C}·{H_out}·{W_out}·({K_h}·{K_w} − 1)",
            {"C": c, "H_out": h, "W_out": w, "K_h": k[0], "K_w": k[1]},
            comparisons,
        ),
    )
    # Backward needs the input and the arg-max indices (int64, one per output element).
    saves = (Saved("input"), Saved("extra", elements=normalize(c * h * w), itemsize=8))
    return _replace(cost, other_flops=comparisons, saves=saves, steps=steps)


@register_rule("avgpool2d", AVGPOOL, "average pooling (nn.AvgPool2d)")
def avgpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    cost = _pool("avgpool2d", inputs[0], args, (1, 1))
    c, h, w = cost.output_shape
    k = args["kernel_size"]
    work = normalize(c * h * w * k[0] * k[1])  # K·K − 1 additions and one division
    steps = (
        *cost.steps,
        step(
            "flops",
            "additions and divisions",
            "FLOPs",
            "{C}·{H_out}·{W_out}·{K_h}·{K_w}",
            {"C": c, "H_out": h, "W_out": w, "K_h": k[0], "K_w": k[1]},
            work,
        ),
    )
    return _replace(cost, other_flops=work, saves=(Saved("input"),), steps=steps)


GLOBAL = Schema((Arg("keepdim", "bool", True, help="keep the 1×1 spatial axes"),))


@register_rule(
    "global_avgpool",
    GLOBAL,
    "global average pooling to (C, 1, 1) "
    "(nn.AdaptiveAvgPool2d(1)), or to (C,) with keepdim=false (x.mean((2, 3)))",
)
def global_avgpool(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("global_avgpool", inputs[0])
    work = normalize(c * h * w)  # H·W − 1 additions and one division per channel
    return Cost(
        output_shape=(c, 1, 1) if args["keepdim"] else (c,),
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
                note="each channel's H×W map becomes one value: the output is "
                + ("(C, 1, 1)" if args["keepdim"] else "(C,)"),
            ),
            step(
                "flops",
                "additions and divisions",
                "FLOPs",
                "{C}·{H}·{W}",
                {"C": c, "H": h, "W": w},
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


@register_rule("adaptive_avgpool2d", ADAPTIVE, "adaptive average pooling (nn.AdaptiveAvgPool2d)")
def adaptive_avgpool2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("adaptive_avgpool2d", inputs[0])
    oh, ow = args["output_size"]
    bins_h, bins_w = _bin_total(h, oh), _bin_total(w, ow)
    work = normalize(c * bins_h * bins_w)
    one_by_one = oh == 1 and ow == 1  # PyTorch computes it as a mean: nothing saved
    return Cost(
        output_shape=(c, oh, ow),
        other_flops=work,
        rf=(_adaptive_map(h, oh), _adaptive_map(w, ow)),
        rf_global=one_by_one,
        saves=() if one_by_one else (Saved("input"),),
        steps=(
            step(
                "flops",
                "additions and divisions",
                "FLOPs",
                "{C}·{B_h}·{B_w}",
                {"C": c, "B_h": bins_h, "B_w": bins_w},
                work,
                note="B = total bin length along an axis; bins may overlap",
            ),
        ),
        args=dict(args),
    )


def _replace(cost: Cost, **changes: Any) -> Cost:
    from dataclasses import replace

    return replace(cost, **changes)
