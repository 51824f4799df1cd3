"""Padding (F.pad, TensorFlow-style "same" padding in timm's ``tf_*`` models, Swin's window
padding) and cyclic shifts (torch.roll, Swin's shifted windows): values are copied to new
positions, nothing is computed.

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks: constant and
circular padding and roll keep nothing; reflect and replicate padding keep their input.
Every one returns a new tensor, even with all pads zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import known_positive, normalize
from convlens.core.registry import AxisMap, Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import fmt_shape, map_rf
from convlens.core.steps import step

PAD = Schema(
    (
        Arg(
            "pad",
            "names",
            positional=True,
            help="pads as F.pad takes them: (left, right) of the last axis, then (top, "
            "bottom) of the one before, …; negative values crop; one number p pads H and W "
            "by p on every side, as nn.ZeroPad2d(p)",
        ),
        Arg(
            "mode",
            "choice",
            "constant",
            choices=("constant", "reflect", "replicate", "circular"),
            help="what the new positions hold",
        ),
        Arg("value", "float", 0.0, help="the constant, for mode=constant"),
    )
)


def _pairs(shape: Shape, pad: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(before, after) for every axis of ``shape``, the unpadded ones (0, 0)."""
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise RuleError(
            f"pad {tuple(pad)} needs an even number of values, two per padded axis, for at "
            f"most the {len(shape)} axes of {fmt_shape(shape)}"
        )
    pairs = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        pairs[len(shape) - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return pairs


def _cropped(pad: Any) -> Any:
    """The crop a pad makes: the pad when it is negative, else 0."""
    return pad if known_positive(normalize(-pad)) is True else 0


@register_rule(
    "pad",
    PAD,
    "padding (F.pad, nn.ZeroPad2d): constant, reflect, replicate or circular; negative pads crop",
)
def pad(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, mode = tuple(inputs[0]), args["mode"]
    given = args["pad"]
    pads = (given,) * 4 if isinstance(given, int) else tuple(given)
    pairs = _pairs(shape, pads)
    padded = len(pads) // 2
    if mode != "constant" and not (1 <= padded <= 3 and len(shape) in (padded, padded + 1)):
        raise RuleError(
            f"mode={mode} pads the last 1, 2 or 3 axes of a tensor of one or two axes more "
            f"(with the batch), as F.pad allows: {padded} padded axes do not fit "
            f"{fmt_shape(shape)} per sample"
        )
    out, steps = [], []
    for axis, (size, (lo, hi)) in enumerate(zip(shape, pairs, strict=True)):
        # A negative pad crops (in every mode); the bounds on the other side's pad are
        # against the axis as given.
        if mode == "reflect" and (_at_least(lo, size) or _at_least(hi, size)):
            raise RuleError(
                f"reflect padding ({lo}, {hi}) must be smaller than the axis it pads ({size})"
            )
        if mode == "circular":
            # PyTorch wraps what is left after the crops; beyond that it reads memory
            # outside the tensor (garbage values) or fails, so both are refused here
            left = normalize(size + _cropped(lo) + _cropped(hi))
            if _at_least(-lo, size + 1) or _at_least(-hi, size + 1):
                raise RuleError(f"circular padding ({lo}, {hi}) crops more than the axis ({size})")
            if _at_least(lo, left + 1) or _at_least(hi, left + 1):
                raise RuleError(
                    f"circular padding ({lo}, {hi}) must be at most what is left of the axis "
                    f"after any crop ({left})"
                )
        new = normalize(size + lo + hi)
        if known_positive(new) is False:
            raise RuleError(
                f"pad ({lo}, {hi}) leaves nothing of axis {axis + 1} (size {size}) of "
                f"{fmt_shape(shape)}"
            )
        out.append(new)
        if (lo, hi) != (0, 0):
            steps.append(
                step(
                    "shape",
                    f"size of dim {axis + 1}",
                    "D",
                    "{I} + {P_lo} + {P_hi}",
                    {"I": size, "P_lo": lo, "P_hi": hi},
                    new,
                )
            )
    # On a (C, L), (C, H, W) or (C, D, H, W) map, output o of a padded spatial axis reads
    # input o − P_lo (on an unbounded input, as a convolution's own padding is counted);
    # padding a tensor that is no map of the network's rank leaves no grid to follow.
    moved = [axis for axis, p in enumerate(pairs) if p != (0, 0)]
    maps = None
    if any(axis >= 1 for axis in moved):
        maps = tuple(_shift(pairs[axis][0]) for axis in range(1, len(shape)))
    return Cost(
        output_shape=tuple(out),
        **map_rf(shape, whole_on_map=False, whole_otherwise=bool(moved), maps=maps),
        saves=(Saved("input"),) if mode in ("reflect", "replicate") else (),
        steps=tuple(steps),
        args=dict(args),
    )


def _at_least(value: Any, bound: Any) -> bool:
    """``value ≥ bound`` is known to hold."""
    return known_positive(normalize(bound - value)) is False


def _shift(before: Any) -> AxisMap:
    return AxisMap(
        lo=lambda o: o - before, hi=lambda o: o - before, jump=1, taps=lambda o: [o - before]
    )


ROLL = Schema(
    (
        Arg("shifts", "names", positional=True, help="how far each axis is rolled"),
        Arg("dims", "names", positional=True, help="the axes rolled, counted with the batch"),
    )
)


@register_rule("roll", ROLL, "a cyclic shift of axes (torch.roll; Swin's shifted windows)")
def roll(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    shifts, dims = (
        tuple(v) if isinstance(v, tuple | list) else (v,) for v in (args["shifts"], args["dims"])
    )
    if len(shifts) != len(dims) or not dims:
        raise RuleError(f"roll needs one shift per axis, got shifts={shifts}, dims={dims}")
    if any(not isinstance(d, int) or not 1 <= d <= len(shape) for d in dims):
        raise RuleError(
            f"roll dims={dims}: the input {fmt_shape(shape)} has axes 1 … {len(shape)} "
            "(0 is the batch)"
        )
    # Rolling a spatial axis of a map (or anything not such a map) wraps positions around:
    # no interval of the input describes an output's, so it is the whole input.
    spatial = any(d >= 2 for d in dims)
    return Cost(
        output_shape=shape,
        **map_rf(shape, whole_on_map=spatial, whole_otherwise=True),
        args=dict(args),
    )
