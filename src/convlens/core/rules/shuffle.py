"""Layers that move values between the channels and the grid, computing nothing:
pixel_shuffle (sub-pixel convolution, ESPCN), pixel_unshuffle and channel_shuffle
(ShuffleNet).

What autograd keeps and whether the result is a view were measured on torch 2.13 (CPU)
with saved_tensors_hooks and storage pointers: none of the three keeps anything for
backward, and each returns a new tensor (a copy), even with a factor or groups of 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import Dim, divide, floordiv, is_numeric, known_divides, normalize
from convlens.core.registry import AxisMap, Cost, RuleError, Shape, register_rule
from convlens.core.rules.common import fmt_shape, map_rf, spatial
from convlens.core.steps import Step, step


def _divisions(layer: str, divisor: Dim, sizes: Sequence[tuple[str, Dim]], shown: str) -> list[str]:
    """Refuse a size that ``divisor`` (written ``shown``) cannot divide; return, as
    warnings, the divisions a symbolic size is assumed to allow."""
    assumed = []
    for what, size in sizes:
        divides = known_divides(divisor, size)
        if divides is False:
            raise RuleError(f"{layer} needs the {what} ({size}) to be a multiple of {shown}")
        if divides is None:
            assumed.append(f"assumes {divisor} divides the {what} ({size})")
    return assumed


def _grid_steps(h: Dim, w: Dim, oh: Dim, ow: Dim, template: str, r: Dim) -> list[Step]:
    """``H_out = {H}·{r}`` (or ``/``) for both spatial axes."""
    return [
        step("shape", f"output {name}", f"{sym}_out", template.format(sym=sym), {sym: i, "r": r}, o)
        for name, sym, i, o in (("height", "H", h, oh), ("width", "W", w, ow))
    ]


PIXEL_SHUFFLE = Schema(
    (
        Arg(
            "upscale_factor",
            "int",
            positional=True,
            help="r: each group of r² channels becomes an r×r block of one channel",
        ),
    )
)


@register_rule(
    "pixel_shuffle",
    PIXEL_SHUFFLE,
    "(C·r², H, W) → (C, H·r, W·r) (nn.PixelShuffle; ESPCN's sub-pixel convolution); a copy",
)
def pixel_shuffle(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("pixel_shuffle", inputs[0])
    r = args["upscale_factor"]
    blocks = normalize(r * r)
    shown = f"{r}² = {blocks}" if is_numeric(r) else f"{r}²"
    assumed = _divisions(f"pixel_shuffle {r}", blocks, [("input channels", c)], shown)
    out_c, oh, ow = divide(c, blocks), normalize(h * r), normalize(w * r)
    steps = [
        step("shape", "output channels", "C_out", "{C}/({r}·{r})", {"C": c, "r": r}, out_c),
        *_grid_steps(h, w, oh, ow, "{{{sym}}}·{{r}}", r),
    ]

    # Output (c, i, j) is input channel c·r² + (i mod r)·r + (j mod r) at (⌊i/r⌋, ⌊j/r⌋):
    # along each axis, the positions nearest upsampling by r reads (jump 1/r).
    def source(o: Any) -> Any:
        if not is_numeric(r):  # the floors' pattern repeats every r outputs
            raise ValueError("receptive field after pixel_shuffle needs a numeric upscale_factor")
        return floordiv(o, r)

    nearest = AxisMap(lo=source, hi=source, jump=divide(1, r), taps=lambda o: [source(o)])
    return Cost(
        output_shape=(out_c, oh, ow),
        rf=(nearest, nearest),
        warnings=tuple(assumed),
        steps=tuple(steps),
        args=dict(args),
    )


PIXEL_UNSHUFFLE = Schema(
    (
        Arg(
            "downscale_factor",
            "int",
            positional=True,
            help="r: each r×r block of a channel becomes r² channels",
        ),
    )
)


@register_rule(
    "pixel_unshuffle",
    PIXEL_UNSHUFFLE,
    "(C, H·r, W·r) → (C·r², H, W) (nn.PixelUnshuffle, space-to-depth); a copy",
)
def pixel_unshuffle(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("pixel_unshuffle", inputs[0])
    r = args["downscale_factor"]
    sizes = [("input height", h), ("input width", w)]
    assumed = _divisions(f"pixel_unshuffle {r}", r, sizes, str(r))
    out_c, oh, ow = normalize(c * r * r), divide(h, r), divide(w, r)
    steps = [
        step("shape", "output channels", "C_out", "{C}·{r}·{r}", {"C": c, "r": r}, out_c),
        *_grid_steps(h, w, oh, ow, "{{{sym}}}/{{r}}", r),
    ]
    # Output position o (all its r² channels) reads the r×r block at r·o: a kernel-r,
    # stride-r window along each axis (each of its channels reads one of those positions).
    block = AxisMap(
        lo=lambda o: o * r,
        hi=lambda o: o * r + r - 1,
        jump=r,
        taps=lambda o: [o * r + j for j in range(r)],
    )
    return Cost(
        output_shape=(out_c, oh, ow),
        rf=(block, block),
        warnings=tuple(assumed),
        steps=tuple(steps),
        args=dict(args),
    )


CHANNEL_SHUFFLE = Schema(
    (
        Arg(
            "groups",
            "int",
            positional=True,
            help="g: the channels, as g groups of C/g, are interleaved (channel k·g + j "
            "of the output is channel j·C/g + k)",
        ),
    )
)


@register_rule(
    "channel_shuffle",
    CHANNEL_SHUFFLE,
    "a permutation of the channels (nn.ChannelShuffle; ShuffleNet); a copy",
)
def channel_shuffle(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, groups = tuple(inputs[0]), args["groups"]
    if len(shape) < 2:
        raise RuleError(
            f"channel_shuffle expects a (C, …) input with at least one axis after the "
            f"channels, as F.channel_shuffle does, got {fmt_shape(shape)}"
        )
    assumed = _divisions(f"channel_shuffle {groups}", groups, [("channels", shape[0])], str(groups))
    return Cost(
        output_shape=shape,
        # Axis 0 is permuted, every other axis keeps its positions.
        **map_rf(shape, whole_on_map=False, whole_otherwise=False),
        warnings=tuple(assumed),
        args=dict(args),
    )
