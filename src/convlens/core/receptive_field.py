"""Exact receptive fields, composed along graph edges.

For each node and spatial axis we keep, for every output position ``o``, the
interval ``[lo(o), hi(o)]`` of network-input positions it depends on, on an
unbounded input (so padding counts, as in the usual definition). The map is
periodic: ``lo(o + m) = lo(o) + n`` where ``n/m`` is the node's jump (effective
stride), so ``m`` values describe it completely. A layer composes its own index
map with its input's; a merge takes the union (min of ``lo``, max of ``hi``),
which is "the maximum where branches merge" done exactly. Strides, dilation,
pooling, cropping, upsampling (fractional jump) and transposed convolution all
fit this one scheme. The size reported is the largest ``hi − lo + 1`` over
output positions; ``start`` is the centre of output 0's interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import cache
from itertools import pairwise
from math import gcd
from typing import Any

from convlens.core.numbers import (
    Dim,
    divide,
    is_numeric,
    known_equal,
    maximum,
    minimum,
    normalize,
    plain_ints,
)
from convlens.core.registry import AxisMap

MAX_PERIOD = 4096  # beyond this a map is not worth tabulating; reported as unavailable


@dataclass(frozen=True)
class AxisRF:
    """Periodic interval map of one axis: ``period`` positions, jump ``step/period``."""

    period: int
    step: Dim
    lo: tuple[Any, ...]
    hi: tuple[Any, ...]

    def at(self, table: tuple[Any, ...], x: Any) -> Any:
        if x is None:
            return None
        if self.period == 1:
            base = table[0]
            return None if base is None else normalize(base + self.step * x)
        if not is_numeric(x):
            raise ValueError(
                "after upsampling, the receptive field depends on the exact "
                "(symbolic) padding: give the sizes with --set"
            )
        q, r = divmod(x, self.period)
        base = table[r]
        return None if base is None else base + self.step * q

    # Plain properties: each is read about once per node, and functools.cached_property
    # takes a lock on every read (Python 3.11), which cost more than the arithmetic.
    @property
    def jump(self) -> Dim:
        return divide(self.step, self.period)

    @property
    def size(self) -> Dim:
        if self.period == 1:  # the common case: one span
            return 0 if self.lo[0] is None else normalize(self.hi[0] - self.lo[0] + 1)
        spans = [
            normalize(h - lo + 1) for lo, h in zip(self.lo, self.hi, strict=True) if lo is not None
        ]
        return maximum(*spans) if spans else 0

    @property
    def start(self) -> Dim:
        if self.lo[0] is None:
            return None
        return divide(self.lo[0] + self.hi[0], 2)


IDENTITY = AxisRF(1, 1, (0,), (0,))


class RFStatus(StrEnum):
    """Whether a receptive field could be computed; UNAVAILABLE comes with a reason."""

    OK = "ok"
    WHOLE_INPUT = "whole input"  # after global pooling, flatten, linear, SE
    UNAVAILABLE = "unavailable"
    INDEPENDENT = "independent of the first input"


@dataclass(frozen=True)
class NodeRF:
    """Receptive field of a node: one map per spatial axis of the network's input, or the
    whole input, or unknown (with why)."""

    axes: tuple[AxisRF, ...] | None = None
    whole_input: bool = False
    unavailable: str = ""
    independent: bool = False  # does not depend on the first input at all

    @property
    def status(self) -> RFStatus:
        if self.independent:
            return RFStatus.INDEPENDENT
        if self.unavailable:
            return RFStatus.UNAVAILABLE
        return RFStatus.WHOLE_INPUT if self.whole_input else RFStatus.OK


OTHER_INPUT_RF = NodeRF(independent=True)
WHOLE_INPUT_RF = NodeRF(whole_input=True)  # shared: a network after an SE block has many


@cache
def input_rf(spatial_axes: int) -> NodeRF:
    """The network input: every position sees itself, along each spatial axis. One object
    per rank, so that ``memo.RF_RESULTS`` finds a network's first layers again."""
    return NodeRF(axes=(IDENTITY,) * spatial_axes)


def compose(previous: AxisRF, layer: AxisMap) -> AxisRF:
    """The node map o ↦ previous(layer(o)) for one axis.

    The layer advances a input positions every b outputs (jump a/b, lowest terms); the
    previous map repeats every P positions, advancing N. The composition repeats once
    the layer has moved a whole number of previous periods: every b·P/gcd(a, P)
    outputs, advancing N·a/gcd(a, P). (Reducing the overall jump instead would call
    a downsample-then-upsample pair, jump 2·½ = 1, affine — it is not.)
    """
    if previous.period == 1 and type(layer.jump) is int:  # a stride after strides: the
        affine = _affine_compose(previous, layer, layer.jump)  # common case, in integers
        if affine is not None:
            return affine
    return _compose_patterns(previous, layer)


def _compose_patterns(previous: AxisRF, layer: AxisMap) -> AxisRF:
    """``compose`` in general: fractional jumps, periodic maps, symbolic sizes."""
    ratio = layer.jump
    if type(ratio) is int:  # a stride
        a, b = ratio, 1
    elif is_numeric(ratio):
        ratio = Fraction(ratio)
        a, b = ratio.numerator, ratio.denominator
    else:
        a, b = ratio, 1
    if previous.period == 1:
        repeats = 1
    elif is_numeric(a):
        repeats = previous.period // gcd(a, previous.period)
    else:
        raise ValueError("a symbolic stride after upsampling: give the sizes with --set")
    period = b * repeats
    step = normalize(divide(previous.step * a * repeats, previous.period))
    if period > MAX_PERIOD:
        raise ValueError(f"the pattern repeats only every {period} positions")
    if layer.taps is not None and _needs_taps(previous):
        # Some upstream positions read nothing, or the upstream map is not monotone
        # (a dilated, strided transposed convolution interleaves its phases): the ends
        # of the layer's window need not hold the extremes, so look at every tap.
        lo = tuple(
            _pick(minimum, [previous.at(previous.lo, x) for x in layer.taps(o)])
            for o in range(period)
        )
        hi = tuple(
            _pick(maximum, [previous.at(previous.hi, x) for x in layer.taps(o)])
            for o in range(period)
        )
    else:
        lo = tuple(previous.at(previous.lo, layer.lo(o)) for o in range(period))
        hi = tuple(previous.at(previous.hi, layer.hi(o)) for o in range(period))
    return AxisRF(period, step, lo, hi)


def _affine_compose(previous: AxisRF, layer: AxisMap, stride: int) -> AxisRF | None:
    """``compose`` when the previous map is one span advancing by an integer and the
    layer's window ends are integers: then o ↦ previous(layer(o)) is one span too (what
    the general path computes, with fewer steps); None for anything else."""
    step, lo, hi = previous.step, previous.lo[0], previous.hi[0]
    if type(step) is not int or type(lo) is not int or type(hi) is not int:
        return None
    first, last = layer.lo(0), layer.hi(0)
    if type(first) is not int or type(last) is not int:
        return None
    return AxisRF(1, step * stride, (lo + step * first,), (hi + step * last,))


def _needs_taps(rf: AxisRF) -> bool:
    """Whether reading only a window's two ends could miss its extremes."""
    if any(v is None for v in rf.lo):
        return True
    if rf.period == 1 or not all(is_numeric(v) for v in (*rf.lo, *rf.hi, rf.step)):
        return False  # affine in the position (or symbolic, where upsampling is refused)
    # Monotone over one period and across the wrap to the next one: lo(P) = lo(0) + step.
    lo = (*rf.lo, rf.lo[0] + rf.step)
    hi = (*rf.hi, rf.hi[0] + rf.step)
    return any(b < a for a, b in pairwise(lo)) or any(b < a for a, b in pairwise(hi))


def with_period(rf: AxisRF, period: int) -> AxisRF:
    """The same map tabulated over a multiple of its period."""
    if period == rf.period:
        return rf
    lo = tuple(rf.at(rf.lo, o) for o in range(period))
    hi = tuple(rf.at(rf.hi, o) for o in range(period))
    return AxisRF(period, normalize(rf.step * (period // rf.period)), lo, hi)


def union(branches: Sequence[AxisRF]) -> AxisRF:
    """Positions read by any branch (the branches' outputs line up element by element)."""
    spans = _union_of_spans(branches)
    return spans if spans is not None else _union_of_patterns(branches)


def _union_of_spans(branches: Sequence[AxisRF]) -> AxisRF | None:
    """``union`` of one-span maps with one integer jump, in plain integers (a
    concatenation, a residual sum: the common case); None for anything else."""
    first = branches[0]
    if not all([b.period == 1 and b.step == first.step for b in branches]):
        return None
    los = [b.lo[0] for b in branches]
    his = [b.hi[0] for b in branches]
    if type(first.step) is not int or not plain_ints(los + his):
        return None
    return AxisRF(1, first.step, (min(los),), (max(his),))


def _union_of_patterns(branches: Sequence[AxisRF]) -> AxisRF:
    """``union`` in general: periodic maps, symbolic sizes, positions that read nothing."""
    jump = branches[0].jump
    if any(known_equal(b.jump, jump) is False for b in branches[1:]):
        raise ValueError("branches with different jumps are joined")
    period = 1
    for b in branches:
        period = period * b.period // gcd(period, b.period)
    branches = [with_period(b, period) for b in branches]
    first = branches[0]
    lo = tuple(_pick(minimum, values) for values in zip(*(b.lo for b in branches), strict=True))
    hi = tuple(_pick(maximum, values) for values in zip(*(b.hi for b in branches), strict=True))
    return AxisRF(first.period, first.step, lo, hi)


def _pick(fn: Any, values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return fn(*present) if present else None


def node_rf(
    inputs: Sequence[NodeRF],
    maps: tuple[AxisMap, ...] | None,
    whole_input: bool,
    map_axes: int | None = None,
    otherwise_whole: bool = False,
    unavailable: str = "",
) -> NodeRF:
    """Receptive field of a layer's output from its inputs' and its own index maps (which
    hold for ``map_axes`` spatial axes only, if given: see ``Cost.rf_axes``); none, and
    why, where the layer says so of a map (``unavailable``: a transpose of H and W)."""
    if len(inputs) == 1 and not (inputs[0].independent or inputs[0].unavailable):
        rf = inputs[0]
        if rf.whole_input:  # what reads a node that sees everything sees everything
            return WHOLE_INPUT_RF
        if unavailable and map_axes in (None, len(rf.axes or ())):
            return NodeRF(unavailable=unavailable)
        plain = maps is None and not whole_input and rf.axes is not None
        if plain and (map_axes is None or map_axes == len(rf.axes or ())):
            return rf  # an element-wise layer (BN, ReLU): each output sees what its input saw
    if inputs and all(rf.independent for rf in inputs):
        return OTHER_INPUT_RF
    inputs = [rf for rf in inputs if not rf.independent]
    for rf in inputs:
        if rf.unavailable:
            return rf
    if not inputs and whole_input:  # made from constants only (a mask from a shape)
        return WHOLE_INPUT_RF
    count = len(inputs[0].axes or ())
    if map_axes is not None and map_axes != count:  # not a map of the network's rank
        whole_input, maps, unavailable = otherwise_whole, None, ""
    if unavailable and not any(rf.whole_input for rf in inputs):
        return NodeRF(unavailable=unavailable)
    if whole_input or any(rf.whole_input for rf in inputs):
        return WHOLE_INPUT_RF
    try:
        if len(inputs) > 1 and any(len(rf.axes or ()) != count for rf in inputs):
            raise ValueError("branches with different numbers of spatial axes are joined")
        axes = (
            [
                union([rf.axes[axis] for rf in inputs])  # type: ignore[index]
                for axis in range(count)
            ]
            if len(inputs) > 1
            else list(inputs[0].axes or ())
        )
        if maps is not None:
            if len(maps) != count:
                raise ValueError(
                    f"the layer maps {len(maps)} spatial axes but the input has {count}"
                )
            axes = [compose(axes[axis], maps[axis]) for axis in range(count)]
        return NodeRF(axes=tuple(axes))
    except (ValueError, TypeError) as err:
        return NodeRF(unavailable=str(err))
