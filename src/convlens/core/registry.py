"""The one registry of layer rules, shared by every front-end.

A rule is a pure function of input shapes and hyper-parameters (never tensors),
registered once per layer kind by a decorator that refuses duplicates, like
``register_flop_formula`` in ``torch/utils/flop_counter.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from convlens.core.args import Schema, suggest
from convlens.core.numbers import Dim
from convlens.core.steps import Step

Shape = tuple[Dim, ...]  # per-sample shape, e.g. (C, H, W); the batch is applied by the analyser


@dataclass(frozen=True)
class Saved:
    """A tensor autograd keeps for backward: an input, the output, or an extra buffer."""

    what: str  # "input", "output" or "extra"
    index: int = 0  # which input
    elements: Dim = 0  # for extras: per-sample elements (or per-batch if ``per_batch``)
    itemsize: int | None = None  # bytes per element; None → the activation dtype
    per_batch: bool = False  # extras like BatchNorm's saved mean do not scale with N
    needs: str = "any"  # "any": saved if the op takes part in backward; "weight": only
    # if its own parameters are trainable (e.g. a conv's input serves ∂L/∂W); "input":
    # only if input ``index`` needs a gradient (a linear's computed weight serves ∂L/∂x)
    copied_in_place: bool = False  # run in place, autograd keeps a copy of the input
    # (relu6, silu, hardswish: their backward needs the input the op overwrites)
    min_itemsize: int = 0  # kept in at least this many bytes per element (attention's
    # log-sum-exp is float32 for half-precision inputs, float64 for float64 ones)
    batch_statistics: bool = False  # kept only because the layer normalises with the
    # batch's own statistics (BatchNorm in training mode): not kept with BatchNorm frozen


@dataclass(frozen=True)
class AxisMap:
    """Which input positions one output position reads, along one spatial axis.

    ``lo(o)``/``hi(o)`` bound the input indices (on an unbounded input) that output
    position ``o`` depends on; ``jump`` is the input distance between neighbouring
    outputs. Composed along graph edges this gives exact receptive fields.
    """

    lo: Callable[[Any], Any]
    hi: Callable[[Any], Any]
    jump: Dim
    # Every input position output o reads (numeric sizes only); needed when some
    # positions upstream depend on nothing, e.g. after a stride-3, 1×1 transposed conv.
    taps: Callable[[Any], list[Any]] | None = None


@dataclass(frozen=True)
class Cost:
    """Everything a rule knows about one layer, per sample."""

    output_shape: Shape
    params: Dim = 0
    param_tensors: int = 0  # how many tensors hold them (Adam keeps a step count for each)
    unused_params: bool = False  # the forward never used them: training gives no gradient
    buffers: Dim = 0
    int64_buffers: Dim = 0  # of the buffers, how many are 8-byte integers (BN's counter)
    bool_buffers: Dim = 0  # of the buffers, how many are 1-byte bools (a fixed mask)
    macs: Dim = 0
    bias_flops: Dim = 0  # additions of bias terms (not in MACs)
    other_flops: Dim = 0  # normalisation, activation, pooling, element-wise work
    connections: Dim | None = None
    rf: tuple[AxisMap, ...] | None = None  # one per spatial axis; None: element-wise
    rf_global: bool = False  # output depends on the whole input (flatten, global pool, SE)
    # ``rf`` and ``rf_global`` hold for a (C, *spatial) map of this many spatial axes; on a
    # node whose receptive field has another number of axes (tokens (L, C) in an image
    # network) the output reads the whole input when ``rf_otherwise_global``, else the
    # positions it reads are its own (F.pad, concat, reduce of whatever tensor it is given).
    rf_axes: int | None = None
    rf_otherwise_global: bool = False
    rf_unavailable: str = ""  # why no receptive field follows this layer (a transpose of H and W)
    saves: tuple[Saved, ...] = ()
    alias: bool = False  # output is a view of input 0 (shares its storage)
    batched: bool = True  # False: the output has no batch axis (its shape is the whole
    # tensor's, shown as it is) and its bytes are not counted per sample
    output_itemsize: int | None = None  # bytes per output element when the output is not
    # in the activations' dtype (a comparison's bool, an index's int64); None: theirs
    warnings: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    args: Mapping[str, Any] = field(default_factory=dict)  # resolved hyper-parameters
    unsupported: str = ""  # an operation with no rule: its figures are not counted


RuleFn = Callable[[Sequence[Shape], Mapping[str, Any]], Cost]


@dataclass(frozen=True)
class Rule:
    kind: str
    fn: RuleFn
    schema: Schema
    summary: str
    inputs: int  # number of tensor inputs; -1 for "one or more"
    has_weights: bool = False


class RuleError(ValueError):
    """A shape or hyper-parameter that the layer cannot accept; analyser adds position."""


_RULES: dict[str, Rule] = {}


def register_rule(
    kind: str, schema: Schema, summary: str, inputs: int = 1, has_weights: bool = False
) -> Callable[[RuleFn], RuleFn]:
    def decorator(fn: RuleFn) -> RuleFn:
        if kind in _RULES:
            raise RuntimeError(f"a rule for layer kind '{kind}' is already registered")
        _RULES[kind] = Rule(kind, fn, schema, summary, inputs, has_weights)
        return fn

    return decorator


def _load() -> None:
    from convlens.core import rules  # noqa: F401  (registers every rule)


def get_rule(kind: str) -> Rule:
    rule = _RULES.get(kind)  # every rule is registered once the rules are imported
    if rule is not None:
        return rule
    _load()
    try:
        return _RULES[kind]
    except KeyError:
        raise KeyError(f"unknown layer kind '{kind}'{suggest(kind, _RULES)}") from None


def all_rules() -> dict[str, Rule]:
    _load()
    return dict(_RULES)
