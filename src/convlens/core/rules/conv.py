"""Convolutions over 1, 2 or 3 spatial axes: conv1d/2d/3d, depthwise, conv_transpose1d/2d/3d.

One implementation per family serves every number of axes; the 2-D kinds keep their
historic formulas (K_h·K_w, H_out·W_out), the others name their axes (K_l; K_d·K_h·K_w).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import divide, is_numeric, normalize, product
from convlens.core.registry import (
    AxisMap,
    Cost,
    RuleError,
    RuleFn,
    Saved,
    Shape,
    register_rule,
)
from convlens.core.rules.common import (
    AXIS_NAMES,
    AXIS_SYMBOLS,
    Window,
    check_groups,
    same_padding,
    spatial_nd,
    stride_warnings,
    window_output,
)
from convlens.core.steps import step

_GEOMETRY = (
    Arg("stride", "pair", 1, help="step between windows"),
    Arg("padding", "padding", 0, help="zeros added on each side, 'same' or 'valid'"),
    Arg("dilation", "pair", 1, help="spacing between kernel taps"),
)

# A kernel the forward computes (from parameters, like LeNet-5's partial C3) or a constant
# tensor is no parameter: ConvolutionBackward keeps it, so it is a saved activation.
DERIVED_WEIGHT = Arg(
    "derived_weight",
    "bool",
    False,
    help="the weight is a tensor computed "
    "in the forward or a constant, not a parameter: backward keeps it",
)

CONV2D = Schema(
    (
        Arg("out_channels", "int", positional=True, help="number of filters"),
        Arg("kernel_size", "pair", 3, positional=True, help="filter height and width"),
        *_GEOMETRY,
        Arg("groups", "int", 1, help="channel groups (groups = in_channels is depthwise)"),
        Arg("bias", "bool", True, help="add a learned bias per output channel"),
        DERIVED_WEIGHT,
    )
)

DEPTHWISE = Schema(
    (
        Arg("kernel_size", "pair", 3, positional=True, help="filter height and width"),
        *_GEOMETRY,
        Arg("multiplier", "int", 1, help="output channels per input channel"),
        Arg("bias", "bool", True, help="add a learned bias per output channel"),
    )
)


def per_axis(schema: Schema, axes: int) -> Schema:
    """The 2-D schema's arguments, one value per spatial axis for ``axes`` axes."""
    return Schema(
        tuple(a.per_axis(axes) if a.kind in ("pair", "padding", "size") else a for a in schema.args)
    )


# The arithmetic of a layer family over any number of spatial axes: (kind, input shape,
# resolved arguments, axes) → Cost.
AxesCost = Callable[[str, Shape, Mapping[str, Any], int], Cost]


def register_other_axes(
    kind_2d: str,
    schema: Schema,
    summaries: Mapping[int, str],
    cost: AxesCost,
    has_weights: bool = False,
) -> None:
    """Register the 1-D and 3-D kinds of a 2-D one (``conv2d`` → ``conv1d``, ``conv3d``):
    the same arithmetic over ``axes`` spatial axes, the schema's pairs one value per axis.
    ``summaries``: each kind's one-line description, by its number of axes."""
    for axes, summary in summaries.items():
        kind = kind_2d.replace("2d", f"{axes}d")
        register_rule(kind, per_axis(schema, axes), summary, has_weights=has_weights)(
            _rule_over_axes(kind, axes, cost)
        )


def _rule_over_axes(kind: str, axes: int, cost: AxesCost) -> RuleFn:
    def rule(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
        return cost(kind, inputs[0], args, axes)

    # the rule belongs to the family whose arithmetic it runs (tests/core/test_every_kind.py
    # pairs each rule's module with its lowering's), and is named after its kind
    rule.__module__, rule.__name__, rule.__qualname__ = cost.__module__, kind, kind
    return rule


def kernel_symbols(axes: int) -> tuple[str, ...]:
    """K_h, K_w (2-D); K_l (1-D); K_d, K_h, K_w (3-D)."""
    return tuple(f"K_{s.lower()}" for s in AXIS_SYMBOLS[axes])


def _product_text(symbols: Sequence[str]) -> str:
    return "·".join("{" + s + "}" for s in symbols)


def _pads(
    kind: str,
    padding: Any,
    kernel: tuple[Any, ...],
    stride: tuple[Any, ...],
    dilation: tuple[Any, ...],
) -> tuple[Any, ...]:
    """(before, after) per axis: (top, bottom, left, right) in 2-D; 'same' as PyTorch
    computes it (stride 1 only)."""
    if padding != "same":
        return tuple(padding)
    if any(s != 1 for s in stride):
        raise RuleError(
            "padding='same' is not supported for strided convolutions "
            f"(stride={stride}); PyTorch refuses it too — give the padding as a "
            "number, e.g. padding=k//2"
        )
    return tuple(p for k, d in zip(kernel, dilation, strict=True) for p in same_padding(k, d))


def _derived_weight(args: Mapping[str, Any], elements: Any) -> tuple[Saved, ...]:
    """The computed kernel ConvolutionBackward keeps (a parameter is no activation)."""
    return (
        (Saved("extra", elements=elements, per_batch=True),) if args.get("derived_weight") else ()
    )


def convolution(
    kind: str,
    shape: Shape,
    out_channels: Any,
    args: Mapping[str, Any],
    groups: Any,
    spatial_axes: int = 2,
) -> Cost:
    """The shared arithmetic of conv1d/2d/3d and depthwise (a conv2d with groups = C_in)."""
    channels, sizes = spatial_nd(kind, shape, spatial_axes)
    assumed = check_groups(kind, channels, out_channels, groups)
    kernel, stride, dilation = args["kernel_size"], args["stride"], args["dilation"]
    pads = _pads(kind, args["padding"], kernel, stride, dilation)
    outs, steps, gaps, maps = [], [], [], []
    for axis, size in enumerate(sizes):
        window = Window(
            size, kernel[axis], stride[axis], pads[2 * axis], pads[2 * axis + 1], dilation[axis]
        )
        out, axis_steps, axis_gaps, axis_map = window_output(kind, axis, window, spatial_axes)
        outs.append(out)
        steps += axis_steps
        gaps += axis_gaps
        maps.append(axis_map)
    per_filter = normalize(divide(channels, groups) * product(kernel))  # C_in/g·K_h·K_w
    weights = normalize(out_channels * per_filter)
    bias = out_channels if args["bias"] else 0
    params = normalize(weights + bias)
    positions = normalize(out_channels * product(outs))
    macs = normalize(positions * per_filter)
    k_symbols = kernel_symbols(spatial_axes)
    out_symbols = tuple(f"{s}_out" for s in AXIS_SYMBOLS[spatial_axes])
    values = {
        "C_out": out_channels,
        "C_in": channels,
        "g": groups,
        **dict(zip(k_symbols, kernel, strict=True)),
    }
    bias_text = " + {C_out}" if args["bias"] else ""
    steps.append(
        step(
            "params",
            "parameters",
            "params",
            "{C_out}·({C_in}/{g})·" + _product_text(k_symbols) + bias_text,
            values,
            params,
        )
    )
    steps.append(
        step(
            "macs",
            "multiply-accumulates",
            "MACs",
            "{C_out}·" + _product_text(out_symbols) + "·({C_in}/{g})·" + _product_text(k_symbols),
            {**values, **dict(zip(out_symbols, outs, strict=True))},
            macs,
        )
    )
    return Cost(
        output_shape=(out_channels, *outs),
        params=params,
        param_tensors=2 if args["bias"] else 1,
        macs=macs,
        bias_flops=positions if args["bias"] else 0,
        connections=normalize(macs + (positions if args["bias"] else 0)),
        rf=tuple(maps),
        # ConvolutionBackward keeps its input, and its weight, whenever it runs
        saves=(Saved("input"), *_derived_weight(args, weights)),
        warnings=(*assumed, *stride_warnings(gaps, spatial_axes)),
        steps=tuple(steps),
        args={**args, "padding": pads, "groups": groups, "out_channels": out_channels},
    )


@register_rule("conv2d", CONV2D, "2-D convolution (nn.Conv2d)", has_weights=True)
def conv2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return convolution("conv2d", inputs[0], args["out_channels"], args, args["groups"])


register_other_axes(
    "conv2d",
    CONV2D,
    {
        1: "1-D convolution over a (C, L) signal (nn.Conv1d)",
        3: "3-D convolution over a (C, D, H, W) volume or clip (nn.Conv3d)",
    },
    lambda kind, shape, args, axes: convolution(
        kind, shape, args["out_channels"], args, args["groups"], axes
    ),
    has_weights=True,
)


@register_rule(
    "depthwise",
    DEPTHWISE,
    "depthwise convolution: one filter per input channel (nn.Conv2d with groups = in_channels)",
    has_weights=True,
)
def depthwise(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    channels = spatial_nd("depthwise", inputs[0], 2)[0]
    return convolution(
        "depthwise", inputs[0], normalize(channels * args["multiplier"]), args, channels
    )


CONV_TRANSPOSE2D = Schema(
    (
        Arg("out_channels", "int", positional=True, help="number of output channels"),
        Arg("kernel_size", "pair", 2, positional=True, help="filter height and width"),
        Arg("stride", "pair", 1, help="upsampling factor"),
        Arg("padding", "pair", 0, minimum=0, help="rows/columns cropped from each side"),
        Arg("output_padding", "pair", 0, minimum=0, help="extra rows/columns on one side"),
        Arg("dilation", "pair", 1, help="spacing between kernel taps"),
        Arg("groups", "int", 1, help="channel groups"),
        Arg("bias", "bool", True, help="add a learned bias per output channel"),
        DERIVED_WEIGHT,
    )
)


def _transposed_map(k: Any, s: Any, p: Any, d: Any) -> AxisMap:
    """Output o receives input i when o = i·S − P + j·D for a tap j in [0, K)."""

    def inputs_of(o: Any) -> list[int]:
        if not all(is_numeric(v) for v in (o, k, s, p, d)):
            raise ValueError("receptive field of a transposed convolution needs numeric sizes")
        return [(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0]

    def lo(o: Any) -> Any:
        found = inputs_of(o)
        return min(found) if found else None

    def hi(o: Any) -> Any:
        found = inputs_of(o)
        return max(found) if found else None

    return AxisMap(lo=lo, hi=hi, jump=divide(1, s), taps=inputs_of)


@register_rule(
    "conv_transpose2d",
    CONV_TRANSPOSE2D,
    "transposed convolution (nn.ConvTranspose2d)",
    has_weights=True,
)
def conv_transpose2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return transposed_convolution("conv_transpose2d", inputs[0], args, 2)


def transposed_convolution(
    kind: str, shape: Shape, args: Mapping[str, Any], spatial_axes: int
) -> Cost:
    """Output size, parameters and MACs of a transposed convolution over any axes."""
    channels, sizes = spatial_nd(kind, shape, spatial_axes)
    out_channels, groups = args["out_channels"], args["groups"]
    assumed = check_groups(kind, channels, out_channels, groups)
    kernel, stride, pad = args["kernel_size"], args["stride"], args["padding"]
    out_pad, dilation = args["output_padding"], args["dilation"]
    outs, steps, maps = [], [], []
    for axis, size in enumerate(sizes):
        name, sym = AXIS_NAMES[spatial_axes][axis], AXIS_SYMBOLS[spatial_axes][axis]
        if is_numeric(out_pad[axis]) and out_pad[axis] >= max(stride[axis], dilation[axis]):
            raise RuleError(
                f"output_padding {out_pad[axis]} along the {name} must be smaller than the "
                f"stride ({stride[axis]}) or the dilation ({dilation[axis]})"
            )
        out = normalize(
            (size - 1) * stride[axis]
            - 2 * pad[axis]
            + dilation[axis] * (kernel[axis] - 1)
            + out_pad[axis]
            + 1
        )
        if is_numeric(out) and out < 1:
            raise RuleError(
                f"output {name} would be {out}: padding {pad[axis]} crops more "
                f"than the transposed convolution produces"
            )
        steps.append(
            step(
                "shape",
                f"output {name}",
                f"{sym}_out",
                "({I} − 1)·{S} − 2·{P} + {D}·({K} − 1) + {OP} + 1",
                {
                    "I": size,
                    "S": stride[axis],
                    "P": pad[axis],
                    "D": dilation[axis],
                    "K": kernel[axis],
                    "OP": out_pad[axis],
                },
                out,
            )
        )
        outs.append(out)
        maps.append(_transposed_map(kernel[axis], stride[axis], pad[axis], dilation[axis]))
    per_input = normalize(divide(out_channels, groups) * product(kernel))
    weights = normalize(channels * per_input)
    params = normalize(weights + (out_channels if args["bias"] else 0))
    # Every input element scatters one scaled copy of its filter: C_in·H·W·(C_out/g)·K_h·K_w.
    macs = normalize(channels * product(sizes) * per_input)
    k_symbols = kernel_symbols(spatial_axes)
    in_symbols = AXIS_SYMBOLS[spatial_axes]
    values = {
        "C_in": channels,
        "C_out": out_channels,
        "g": groups,
        **dict(zip(k_symbols, kernel, strict=True)),
    }
    bias_text = " + {C_out}" if args["bias"] else ""
    steps.append(
        step(
            "params",
            "parameters",
            "params",
            "{C_in}·({C_out}/{g})·" + _product_text(k_symbols) + bias_text,
            values,
            params,
        )
    )
    steps.append(
        step(
            "macs",
            "multiply-accumulates",
            "MACs",
            "{C_in}·" + _product_text(in_symbols) + "·({C_out}/{g})·" + _product_text(k_symbols),
            {**values, **dict(zip(in_symbols, sizes, strict=True))},
            macs,
            note="each input element scatters one scaled copy of its filter",
        )
    )
    positions = normalize(out_channels * product(outs))
    return Cost(
        output_shape=(out_channels, *outs),
        params=params,
        param_tensors=2 if args["bias"] else 1,
        macs=macs,
        bias_flops=positions if args["bias"] else 0,
        connections=normalize(macs + (positions if args["bias"] else 0)),
        rf=tuple(maps),
        saves=(Saved("input"), *_derived_weight(args, weights)),
        warnings=assumed,
        steps=tuple(steps),
        args=dict(args),
    )


register_other_axes(
    "conv_transpose2d",
    CONV_TRANSPOSE2D,
    {
        1: "1-D transposed convolution over a (C, L) signal (nn.ConvTranspose1d)",
        3: "3-D transposed convolution over a (C, D, H, W) volume or clip (nn.ConvTranspose3d)",
    },
    transposed_convolution,
    has_weights=True,
)
