"""Layers that change the layout: flatten, linear, upsample, crop, narrow."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import (
    divide,
    floordiv,
    fmt,
    is_numeric,
    is_symbolic,
    known_equal,
    known_positive,
    normalize,
    product,
)
from convlens.core.registry import AxisMap, Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import (
    AXIS_NAMES,
    AXIS_SYMBOLS,
    elements,
    fmt_shape,
    map_rf,
    spatial,
    spatial_nd,
)
from convlens.core.steps import step


@register_rule("flatten", Schema(), "flatten each sample to a vector (a view, no copy)")
def flatten(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    n = elements(inputs[0])
    return Cost(
        output_shape=(n,),
        alias=True,
        rf_global=True,
        steps=(
            step(
                "shape",
                "features",
                "N",
                " · ".join(f"{{D{i}}}" for i in range(len(inputs[0]))),
                {f"D{i}": d for i, d in enumerate(inputs[0])},
                n,
            ),
        ),
    )


LINEAR = Schema(
    (
        Arg("out_features", "int", positional=True, help="number of outputs"),
        Arg("bias", "bool", True, help="add a learned bias per output"),
        Arg(
            "copies_input",
            "bool",
            False,
            help="PyTorch folds the input into rows with a copy "
            "(a strided view of 3 or more axes), which backward keeps instead of the input",
        ),
        Arg(
            "derived_weight",
            "bool",
            False,
            help="the weight is a tensor computed in the "
            "forward or a constant, not a parameter: backward keeps it if the input needs a "
            "gradient",
        ),
    )
)


@register_rule(
    "linear", LINEAR, "fully connected layer (nn.Linear) on the last axis", has_weights=True
)
def linear(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    features, out = shape[-1], args["out_features"]
    rows = elements(shape[:-1])  # nn.Linear applies to the last axis of every row
    params = normalize(out * features + (out if args["bias"] else 0))
    macs = normalize(rows * out * features)
    warnings: tuple[str, ...] = ()
    if len(shape) > 1:
        warnings = (
            f"linear applies to the last axis (size {features}) of a "
            f"{fmt_shape(shape)} input, as nn.Linear does; add 'flatten' first to "
            "use every feature",
        )
    if args["derived_weight"]:  # the tracer cannot tell a computed weight from a constant
        warnings = (
            *warnings,
            "its weight is not a parameter of the model (computed in the "
            "forward, or a constant): the saved bytes assume it is computed from "
            "trainable parameters; a constant weight would not keep this layer's input",
        )
    bias_text = " + {F_out}" if args["bias"] else ""
    return Cost(
        output_shape=(*shape[:-1], out),
        params=params,
        param_tensors=2 if args["bias"] else 1,
        macs=macs,
        bias_flops=normalize(rows * out) if args["bias"] else 0,
        connections=normalize(macs + (rows * out if args["bias"] else 0)),
        rf_global=True,
        # only ∂L/∂W needs the input: the input itself, or the contiguous copy of it
        # that F.linear made to fold a strided input into (rows, F_in)
        saves=(
            Saved("extra", elements=elements(shape), needs="weight")
            if args["copies_input"]
            else Saved("input", needs="weight"),
            # a computed weight (not a parameter) serves ∂L/∂x: kept, once, if x needs it
            *(
                (Saved("extra", elements=normalize(out * features), per_batch=True, needs="input"),)
                if args["derived_weight"]
                else ()
            ),
        ),
        warnings=warnings,
        steps=(
            step(
                "params",
                "parameters",
                "params",
                "{F_out}·{F_in}" + bias_text,
                {"F_out": out, "F_in": features},
                params,
            ),
            step(
                "macs",
                "multiply-accumulates",
                "MACs",
                "{R}·{F_out}·{F_in}",
                {"R": rows, "F_out": out, "F_in": features},
                macs,
            ),
        ),
        args=dict(args),
    )


UPSAMPLE = Schema(
    (
        Arg("scale_factor", "float", None, positional=True, help="size multiplier"),
        Arg("size", "size", None, help="output height and width instead of a scale factor"),
        Arg("mode", "choice", "nearest", choices=("nearest", "bilinear"), help="interpolation"),
        Arg("align_corners", "bool", False, help="bilinear only: align the corner pixels"),
    )
)


def _upsample_map(size: Any, out: Any, scale: Fraction, mode: str, align: bool) -> AxisMap:
    """Input positions read by output o, as PyTorch's interpolate computes them
    (``scale`` is out/in: the given factor, or the ratio of sizes when a size is given)."""
    if mode == "nearest":
        return AxisMap(
            lo=lambda o: floordiv(o, scale),
            hi=lambda o: floordiv(o, scale),
            jump=divide(1, scale),
            taps=lambda o: [floordiv(o, scale)],
        )
    if align:
        ratio = divide(size - 1, out - 1) if out != 1 else 0

        def source(o: Any) -> Any:
            return o * ratio
    else:
        ratio = divide(1, scale)

        def source(o: Any) -> Any:  # (o + ½)/s − ½, on an unbounded input
            return (o + Fraction(1, 2)) * ratio - Fraction(1, 2)

    def hi(o: Any) -> Any:
        x = source(o)
        base = floordiv(x, 1)
        return base if x == base else base + 1  # a zero weight reads nothing

    return AxisMap(
        lo=lambda o: floordiv(source(o), 1),
        hi=hi,
        jump=ratio,
        taps=lambda o: sorted({floordiv(source(o), 1), hi(o)}),
    )


# The interpolating mode of each number of axes, and its FLOPs per output element: the
# 2^n weighted neighbours cost 2^n multiplies and 2^n − 1 adds.
_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _upsample_schema(axes: int) -> Schema:
    mode = _LINEAR_MODE[axes]
    return Schema(
        (
            UPSAMPLE["scale_factor"],
            UPSAMPLE["size"].per_axis(axes),
            Arg("mode", "choice", "nearest", choices=("nearest", mode), help="interpolation"),
            Arg("align_corners", "bool", False, help=f"{mode} only: align the corner samples"),
        )
    )


@register_rule("upsample", UPSAMPLE, "upsampling by a scale factor (nn.Upsample)")
def upsample(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return upsampling("upsample", inputs[0], args, 2)


@register_rule(
    "upsample1d", _upsample_schema(1), "upsampling of a (C, L) signal (nn.Upsample, 3-D input)"
)
def upsample1d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return upsampling("upsample1d", inputs[0], args, 1)


@register_rule(
    "upsample3d",
    _upsample_schema(3),
    "upsampling of a (C, D, H, W) volume or clip (nn.Upsample, 5-D input)",
)
def upsample3d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return upsampling("upsample3d", inputs[0], args, 3)


def upsampling(kind: str, shape: Shape, args: Mapping[str, Any], axes: int) -> Cost:
    """One scale on every spatial axis, nearest or (bi/tri)linear, as F.interpolate."""
    c, sizes = spatial_nd(kind, shape, axes)
    linear = _LINEAR_MODE[axes]
    raw = args["scale_factor"]
    if args["align_corners"] and args["mode"] != linear:
        raise RuleError(f"align_corners applies only to mode={linear}")
    if (raw is None) == (args["size"] is None):
        form = "x".join(AXIS_SYMBOLS[axes])
        raise RuleError(f"{kind} needs either a scale factor or size={form} (not both)")
    if args["size"] is not None:
        outs = tuple(args["size"])
        if (
            any(size == 0 for size in sizes)
            or len({divide(out, size) for out, size in zip(outs, sizes, strict=True)}) != 1
        ):
            raise RuleError(
                f"size {'x'.join(map(str, outs))} is not one scale of the input "
                f"{'x'.join(map(str, sizes))}"
            )
        scale = Fraction(divide(outs[0], sizes[0]))
    else:
        scale = Fraction(raw).limit_denominator(1000) if isinstance(raw, float) else Fraction(raw)
        if scale <= 0:
            raise RuleError(f"scale_factor must be positive, got {raw}")
        # PyTorch computes ⌊I·s⌋ in floating point (11·(15/11) gives 14): so do we.
        outs = tuple(
            math.floor(float(size) * float(raw)) if is_numeric(size) else floordiv(size * scale, 1)
            for size in sizes
        )
    n = normalize(c * product(outs))
    neighbours = 2**axes
    per_element = 2 * neighbours - 1
    work = normalize(per_element * n) if args["mode"] == linear else 0
    steps = [
        step(
            "shape", f"output {name}", f"{sym}_out", "⌊{" + sym + "}·{s}⌋", {sym: i, "s": scale}, o
        )
        for name, sym, i, o in zip(AXIS_NAMES[axes], AXIS_SYMBOLS[axes], sizes, outs, strict=True)
    ]
    if work:
        steps.append(
            step(
                "flops",
                "interpolation FLOPs",
                "FLOPs",
                f"{per_element}·" + "{N}",
                {"N": n},
                work,
                note=f"{neighbours} weighted neighbours: {neighbours} multiplies and "
                f"{neighbours - 1} add{'s' if neighbours > 2 else ''}",
            )
        )
    maps = tuple(
        _upsample_map(
            size,
            out,
            scale,
            "nearest" if args["mode"] == "nearest" else "linear",
            args["align_corners"],
        )
        for size, out in zip(sizes, outs, strict=True)
    )
    return Cost(
        output_shape=(c, *outs),
        other_flops=work,
        rf=maps,
        steps=tuple(steps),
        args={**args, "scale_factor": scale},
    )


CROP = Schema(
    (
        Arg("size", "size", None, positional=True, help="output height and width"),
        Arg("like", "name", None, help="crop to the spatial size of this named output"),
        Arg("offset", "size", None, minimum=0, help="top and left offsets (default: centred)"),
    )
)


@register_rule("crop", CROP, "crop, centred (U-Net's skip path) or at an offset; a view, no copy")
def crop(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("crop", inputs[0])
    if args["size"] is None:
        raise RuleError("crop needs a size (crop 64 or crop 64x64) or like=NAME")
    oh, ow = args["size"]
    given = args.get("offset")
    offsets, steps = [], []
    for axis, (name, side, size, out) in enumerate(
        (("height", "top", h, oh), ("width", "left", w, ow))
    ):
        if known_positive(size - out + 1) is False:
            raise RuleError(f"cannot crop the {name} {size} to a larger {out}")
        if given is None:  # centred: t = ⌊(I − O)/2⌋
            offsets.append(floordiv(size - out, 2))
            steps.append(
                step(
                    "shape",
                    f"{side} offset",
                    "offset",
                    "⌊({I} − {O})/2⌋",
                    {"I": size, "O": out},
                    offsets[-1],
                )
            )
            continue
        offsets.append(given[axis])
        if known_positive(size - given[axis] - out + 1) is False:  # t + O ≤ I
            raise RuleError(
                f"a crop of {out} at {side} offset {given[axis]} runs past the {name} {size}"
            )
        steps.append(
            step(
                "shape",
                f"{side} offset",
                "offset",
                "{t}",
                {"t": given[axis]},
                given[axis],
                note="given",
            )
        )
    return Cost(
        output_shape=(c, oh, ow),
        alias=True,
        rf=(_shifted(offsets[0]), _shifted(offsets[1])),
        steps=tuple(steps),
        args={**args, "offsets": tuple(offsets)},
    )


def _shifted(offset: Any) -> AxisMap:
    """A crop's axis: output o reads input o + offset."""

    def read(o: Any) -> Any:
        return o + offset

    def taps(o: Any) -> list[Any]:
        return [o + offset]

    return AxisMap(lo=read, hi=read, jump=1, taps=taps)


NARROW = Schema(
    (
        Arg("dim", "int", positional=True, help="axis, counted with the batch (1: channels)"),
        Arg("start", "int", positional=True, minimum=0, help="first index kept"),
        Arg("length", "int", positional=True, minimum=0, help="how many indices are kept"),
        Arg(
            "keepdim",
            "bool",
            True,
            help="false: keep one index and drop the axis (x[:, i], unbind)",
        ),
    )
)


@register_rule(
    "narrow",
    NARROW,
    "a contiguous part of one axis (torch.narrow, chunk, split, "
    "unbind, x[:, a:b]); a view, no copy",
)
def narrow(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, dim = tuple(inputs[0]), args["dim"]
    start, length = args["start"], args["length"]
    if not is_numeric(dim) or dim > len(shape):
        raise RuleError(
            f"narrow dim={dim} does not exist: the input {fmt_shape(shape)} has "
            f"axes 1 … {len(shape)} (dim 0 is the batch)"
        )
    size = shape[dim - 1]
    if known_positive(size - start - length + 1) is False:
        raise RuleError(
            f"narrow of dim {dim} (size {size}) from {start} with length {length} runs past its end"
        )
    if not args["keepdim"] and known_equal(length, 1) is False:
        raise RuleError(f"keepdim=false drops the axis, so it keeps one index; got length {length}")
    out = (
        (*shape[: dim - 1], length, *shape[dim:])
        if args["keepdim"]
        else (*shape[: dim - 1], *shape[dim:])
    )
    # A map (C, *spatial): a part of a spatial axis shifts the positions read, like crop; a
    # part of the channels reads the same positions (rf=None: the identity). Dropping a
    # spatial axis leaves no grid to map. Anything else keeps its positions.
    rf: tuple[AxisMap, ...] | None = None
    spatial_axis = dim >= 2
    if spatial_axis and args["keepdim"]:
        shift = AxisMap(
            lo=lambda o: o + start, hi=lambda o: o + start, jump=1, taps=lambda o: [o + start]
        )
        keep = AxisMap(lo=lambda o: o, hi=lambda o: o, jump=1, taps=lambda o: [o])
        rf = tuple(shift if axis == dim - 1 else keep for axis in range(1, len(shape)))
    return Cost(
        output_shape=out,
        alias=True,
        **map_rf(
            shape,
            whole_on_map=spatial_axis and not args["keepdim"],
            whole_otherwise=False,
            maps=rf,
        ),
        steps=(
            step(
                "shape",
                f"size of dim {dim}",
                "length",
                "{L}",
                {"L": length},
                length,
                note=f"indices {start} … {start} + {length} − 1 of "
                f"{size}" + ("" if args["keepdim"] else ", then the axis is dropped"),
            ),
        ),
        args=dict(args),
    )


VIEW = Schema(
    (
        Arg("shape", "names", positional=True, help="per-sample output shape"),
        Arg(
            "copies",
            "bool",
            False,
            help="PyTorch copies the data (a reshape of a strided view, e.g. after a "
            "transpose): a new tensor, not a view",
        ),
        Arg(
            "order",
            "names",
            None,
            help="the axes moved (transpose, permute): output axis k is input axis "
            "order[k], 0 the channels",
        ),
    )
)


@register_rule("view", VIEW, "a reshape that keeps the data (view, reshape, permute …)")
def view(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    given = args["shape"]
    shape = tuple(given) if isinstance(given, tuple | list) else (given,)  # view (C*H*W)
    same = known_equal(product(shape), elements(inputs[0]))
    if same is False:
        raise RuleError(f"cannot view {fmt_shape(inputs[0])} as {fmt_shape(shape)}")
    order = _axis_order(args["order"], inputs[0], shape)
    # The same grid (only the channels regrouped): every position reads itself
    same_grid = len(shape) == len(inputs[0]) and tuple(shape[1:]) == tuple(inputs[0][1:])
    image_grid = same_grid and len(shape) == 3  # what a tensor that is no map falls back to
    if order is not None and order[0] != 0:  # the channels moved: no (C, *spatial) map
        same_grid = image_grid = False
    swapped = order is not None and order[0] == 0 and list(order) != sorted(order)
    assumed = divisions_assumed(shape)
    if same is None:  # symbolic sizes whose products SymPy cannot prove equal
        assumed += (
            f"assumes {fmt_shape(shape)} holds the {fmt_shape(inputs[0])} values, "
            f"i.e. {fmt(product(shape))} = {fmt(elements(inputs[0]))}",
        )
    return Cost(
        output_shape=shape,
        alias=not args["copies"],
        **map_rf(inputs[0], whole_on_map=not same_grid, whole_otherwise=not image_grid),
        rf_unavailable=(
            f"its spatial axes are moved (axis order {tuple(order)}): convlens follows a "
            "receptive field along unmoved axes only"
            if swapped and order is not None
            else ""
        ),
        warnings=assumed,
        args=dict(args),
    )


def _axis_order(given: Any, before: Shape, after: Shape) -> tuple[int, ...] | None:
    """``order`` checked: a permutation of the input's axes that gives ``after``."""
    if given is None:
        return None
    order = tuple(given) if isinstance(given, tuple | list) else (given,)
    if sorted(order) != list(range(len(before))):
        raise RuleError(
            f"order {order} is no permutation of the {len(before)} axes of {fmt_shape(before)}"
        )
    moved = tuple(before[i] for i in order)
    if (
        known_equal(product(moved), product(after)) is False
        or len(moved) != len(after)
        or any(known_equal(a, b) is False for a, b in zip(moved, after, strict=True))
    ):
        raise RuleError(
            f"order {order} makes {fmt_shape(moved)} of {fmt_shape(before)}, not {fmt_shape(after)}"
        )
    return order


def divisions_assumed(shape: Shape) -> tuple[str, ...]:
    """``(4, C/4, H)`` → ("assumes 4 divides C",): a size must be a whole number."""
    assumed = []
    for size in shape:
        if isinstance(size, Fraction) and size.denominator != 1:
            raise RuleError(f"a size must be a whole number, got {size}")
        if is_symbolic(size) and size.is_integer is not True:
            numerator, denominator = size.as_numer_denom()
            assumed.append(f"assumes {fmt(denominator)} divides {fmt(numerator)}")
    return tuple(assumed)
