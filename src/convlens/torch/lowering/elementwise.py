"""Arithmetic and reductions in PyTorch: tensor_op, reduce, unary (rules:
core/rules/elementwise.py), and the handlers of ``+ − · /`` that the lowerings of
``scalar_op`` (a number), ``add`` and ``mul`` (two outputs) share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from convlens.core.rules.elementwise import UNARY_OPS
from convlens.torch.batch_axis import STANDARD
from convlens.torch.lowering.common import (
    HeldTensor,
    described,
    feature_map,
    flag,
    held_kind,
    held_kind_choice,
    indices_beside,
    owned_tensor,
    whole,
    whole_tuple,
    with_gradient,
)
from convlens.torch.registry import Choices, Handler, arg, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- reduce -------------------------------------------------------------------------------
def _reduce(op: str) -> Handler:
    """x.sum(dim) or x.mean(dim) over axes other than the batch's (also over the new axis
    of ``torch.stack(xs).sum(dim=0)``, smp's FPN merge); a mean over H and W of a
    (N, C, H, W) map is global average pooling."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else kwargs.get("input")
        dims, keepdim = arg(args, kwargs, 1, "dim"), bool(arg(args, kwargs, 2, "keepdim", False))
        if not isinstance(x, ShapeTensor) or dims is None or kwargs.get("dtype") is not None:
            return NotImplemented  # no dim: the batch is reduced too
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        axes = [a for a in (t.sample_axis(x, d) for d in dims) if a is not None]
        if not axes or len(axes) != len(dims) or len(set(axes)) != len(axes):
            return NotImplemented  # the batch axis, or PyTorch's own error
        layout = t.batched_layout(x)
        if layout == STANDARD and op == "mean" and x.dim() == 4 and set(axes) == {2, 3}:
            return t.record("global_avgpool", {"keepdim": keepdim}, [x])
        out = layout if keepdim else layout.dropping([d % x.dim() for d in dims])
        spec = {"op": op, "dim": tuple(sorted(axes)), "keepdim": keepdim}
        return t.record("reduce", spec, [x], layout=out)

    return handler


trace_mean = handles(torch.mean, torch.Tensor.mean, any_layout=True)(_reduce("mean"))
trace_sum = handles(torch.sum, torch.Tensor.sum, any_layout=True)(_reduce("sum"))
trace_amax = handles(torch.amax, torch.Tensor.amax, any_layout=True)(_reduce("amax"))
trace_amin = handles(torch.amin, torch.Tensor.amin, any_layout=True)(_reduce("amin"))


def _extreme(op: str) -> Handler:
    """torch.max(x, dim) / x.min(dim, keepdim): the values as a ``reduce`` row, the int64
    indices beside them (the tensor the row's training already counts), as PyTorch's
    (values, indices) pair. Without a dim (over the batch too) or against another tensor
    (an element-wise maximum) it is left to the fallback."""
    reduced = _reduce(op)
    pair = {"max": torch.return_types.max, "min": torch.return_types.min}[op]

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        dim = arg(args, kwargs, 1, "dim")
        if not isinstance(dim, int) or isinstance(dim, bool):
            return NotImplemented
        both = indices_beside(t, lambda: reduced(t, args, kwargs))
        return NotImplemented if both is NotImplemented else pair(both)

    return handler


trace_max = handles(torch.max, torch.Tensor.max, any_layout=True)(_extreme("max"))
trace_min = handles(torch.min, torch.Tensor.min, any_layout=True)(_extreme("min"))

_REDUCTIONS: dict[str, Callable[..., Any]] = {
    "sum": torch.sum,
    "mean": torch.mean,
    "amax": torch.amax,
    "amin": torch.amin,
    "max": lambda x, dim, keepdim: torch.max(x, dim[0], keepdim).values,
    "min": lambda x, dim, keepdim: torch.min(x, dim[0], keepdim).values,
}


class Reduce(nn.Module):
    def __init__(self, op: str, dim: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.op, self.dim, self.keepdim = op, dim, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _REDUCTIONS[self.op](x, dim=self.dim, keepdim=self.keepdim)


def reduce_examples(pick: Choices) -> str:
    op = pick.choice(["sum", "mean", "max", "min", "amax", "amin"])
    one_axis = op in ("max", "min")
    dims = pick.choice(["1", "2", "-1"] if one_axis else ["1", "(2,3)", "(1,3)", "-1"])
    return described(feature_map(pick), f"reduce {op} {dims} keepdim={flag(pick)}")


lowering(
    "reduce",
    traced_by=[trace_mean, trace_sum, trace_amax, trace_amin, trace_max, trace_min],
    traced_as=["reduce", "global_avgpool"],  # the mean over H and W is global pooling
    build=lambda a, s: Reduce(a["op"], whole_tuple(a["dim"]), a["keepdim"]),
    examples=reduce_examples,
)


# -- unary: a plain function of each element ----------------------------------------------
# A call's number arguments as the rule's (clamp's bounds, pow's exponent), or None where
# one is not a number (a tensor bound, a tensor exponent) or clamp has no bound: the
# call then runs as PyTorch runs it (an opaque row, or PyTorch's own error).
NumberArgs = Callable[[tuple, dict], "dict[str, float] | None"]


def _numbers(**given: Any) -> dict[str, float] | None:
    """The given values as floats, those that are not None; None if one is no number."""
    values = {name: v for name, v in given.items() if v is not None}
    if not values or any(
        isinstance(v, bool) or not isinstance(v, int | float) for v in values.values()
    ):
        return None
    return {name: float(v) for name, v in values.items()}


def _unary(op: str, numbers: NumberArgs | None = None, inplace: bool = False) -> Handler:
    """x.exp(), torch.clamp(x, 0, 6), x ** 2, x.sqrt_(), … on one traced tensor of the
    activations' dtype (an index's −i keeps its own dtype: an opaque row)."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else kwargs.get("input")
        given = numbers(args, kwargs) if numbers is not None else {}
        if (
            not isinstance(x, ShapeTensor)  # torch.pow(2, x): the exponent is traced
            or x.dtype != t.dtype
            or given is None
            or kwargs.get("out") is not None
        ):
            return NotImplemented
        spec = {"op": op, **given}
        return t.record("unary", spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)

    return handler


def _spellings(*names: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """PyTorch's functions named ``names`` (torch.exp, x.exp) and their in-place forms
    (torch.exp_, x.exp_), those that exist."""
    owners = (torch, torch.Tensor)
    plain = [getattr(o, n) for n in names for o in owners if hasattr(o, n)]
    in_place = [getattr(o, n + "_") for n in names for o in owners if hasattr(o, n + "_")]
    return tuple(plain), tuple(in_place)


def _unary_handlers(
    op: str,
    names: tuple[str, ...],
    numbers: NumberArgs | None = None,
    plain: tuple[Any, ...] = (),
    in_place: tuple[Any, ...] = (),
) -> tuple[Handler, Handler]:
    """The handlers of one function, out of place and in place: its spellings by name,
    and the operators (``-x``, ``x ** 2``, ``x **= 2``) in ``plain`` and ``in_place``."""
    functions, in_place_functions = _spellings(*names)
    return (
        handles(*functions, *plain, any_layout=True)(_unary(op, numbers)),
        handles(*in_place_functions, *in_place, any_layout=True)(_unary(op, numbers, True)),
    )


def _clamp_bounds(args: tuple, kwargs: dict) -> dict[str, float] | None:
    return _numbers(min=arg(args, kwargs, 1, "min"), max=arg(args, kwargs, 2, "max"))


UNARY_HANDLERS = (
    *_unary_handlers("neg", ("neg", "negative"), plain=(torch.Tensor.__neg__,)),
    *_unary_handlers("abs", ("abs", "absolute"), plain=(torch.Tensor.__abs__,)),
    *_unary_handlers("clamp", ("clamp", "clip"), _clamp_bounds),
    *_unary_handlers("clamp", ("clamp_min",), lambda a, k: _numbers(min=arg(a, k, 1, "min"))),
    *_unary_handlers("clamp", ("clamp_max",), lambda a, k: _numbers(max=arg(a, k, 1, "max"))),
    *_unary_handlers("exp", ("exp",)),
    *_unary_handlers("log", ("log",)),
    *_unary_handlers("sqrt", ("sqrt",)),
    *_unary_handlers("rsqrt", ("rsqrt",)),
    *_unary_handlers("reciprocal", ("reciprocal",)),
    *_unary_handlers("square", ("square",)),
    *_unary_handlers(
        "pow",
        ("pow",),
        lambda a, k: _numbers(exponent=arg(a, k, 1, "exponent")),
        plain=(torch.Tensor.__pow__,),  # x ** 2
        in_place=(torch.Tensor.__ipow__,),  # x **= 2
    ),
    *_unary_handlers("erf", ("erf",), plain=(torch.special.erf,)),
    *_unary_handlers("sin", ("sin",)),
    *_unary_handlers("cos", ("cos",)),
)


class Unary(nn.Module):
    """x.exp() or, with ``inplace``, x.exp_(): the function as a model calls it, with
    its number arguments (clamp's min and max, pow's exponent)."""

    def __init__(self, op: str, numbers: Mapping[str, float]):
        super().__init__()
        self.op, self.numbers, self.inplace = op, dict(numbers), False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(x, self.op + ("_" if self.inplace else ""))(**self.numbers)


def build_unary(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    numbers = {name: args[name] for name in ("min", "max", "exponent") if args[name] is not None}
    return Unary(args["op"], numbers)


def unary_examples(pick: Choices) -> str:
    """Every function, in place or not, after the input or after a 1×1 convolution (its
    output needs a gradient, so what the function keeps is held to autograd's), and half
    the time before one (which keeps the function's output: keeping the output or the
    input, shared or copied, then differ in bytes)."""
    op = pick.choice(list(UNARY_OPS))
    line = f"unary {op}"
    if op == "clamp":
        line += pick.choice([" min=0", " max=0.5", " min=-1 max=1", " min=0 max=6", " min=1 max=0"])
    if op == "pow":
        line += f" exponent={pick.choice([2, 3, 0.5, -1, 2.5, 0])}"
    shape = feature_map(pick)
    lines = with_gradient(pick, shape, f"{line} inplace={flag(pick)}")
    after = (f"conv2d {shape[0]} k=1",) if pick.boolean() else ()
    return described(shape, *lines, *after)


lowering("unary", traced_by=UNARY_HANDLERS, build=build_unary, examples=unary_examples)


# -- x ∘ y --------------------------------------------------------------------------------
def _binary(op: str, inplace: bool = False, reflected: bool = False) -> Handler:
    """x ∘ y for ∘ in + − · /: with a number (``scalar_op``), with a tensor the model holds
    or a constant (``tensor_op``), or of two outputs (``add``, ``mul``). ``reflected``:
    ``x.__rsub__(y)`` is y − x."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if reflected:
            a, b = b, a
        tensors = [v for v in (a, b) if isinstance(v, ShapeTensor)]
        x = tensors[0]
        layout = t.batched_layout(x)
        other = b if x is a else a
        if len(tensors) == 1 and isinstance(other, int | float):
            if op == "div" and x is b:
                return NotImplemented  # c / x is a reciprocal, which keeps its result
            # x·0.5, x + 1
            return t.record("scalar_op", {}, [x], inplace=inplace, layout=layout, like=x)
        if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode"):
            return NotImplemented
        if len(tensors) == 1 and isinstance(other, torch.Tensor):
            return _tensor_op(t, op, x, other, x is b, inplace)
        if (
            not isinstance(a, ShapeTensor)
            or not isinstance(b, ShapeTensor)
            or op in ("sub", "div")
            or (op == "add" and tuple(a.shape) != tuple(b.shape))
            or a.dim() != b.dim()  # the batch axes line up only at the same rank
            or t.batch_axis(b) != layout
        ):
            return NotImplemented
        return t.record(op, {}, [a, b], inplace=inplace, layout=layout, like=a)

    return handler


def _tensor_op(
    t: Tracer, op: str, x: ShapeTensor, w: torch.Tensor, first: bool, inplace: bool
) -> Any:
    """x ∘ w (w ∘ x if ``first``) with w a parameter, a buffer, a whole view of one
    (``self.weight.view(1, -1, 1, 1)``) or a constant, broadcast over the batch; its
    parameters are counted here, once. A constant with one value per sample along the
    batch's axis (drop-path's N×1×1×1 mask) is counted per sample."""
    layout = t.batch_axis(x)
    if w.dtype != x.dtype or w.dim() > x.dim() or (inplace and first) or layout is None:
        return NotImplemented  # promoted, w broadcast to more axes, or w overwritten
    owner = owned_tensor(t, w)
    if owner is None and w._base is not None and id(w._base) in t.owned:
        return NotImplemented  # a part of a model tensor: its parameters live elsewhere
    kind = held_kind(owner)
    shape, per_sample = tuple(int(d) for d in w.shape), False
    at = layout.axis - (x.dim() - w.dim())  # w's axis that lines up with the batch's
    if at >= 0:  # w reaches the batch's axis: 1 there, or one value per sample (a constant)
        size = shape[at]
        if size != 1 and (kind != "constant" or size != x.shape[layout.axis]):
            return NotImplemented  # w holds the batch: no per-sample operand
        per_sample = size != 1
        if layout.merged:  # (N·m, …) per sample is (m, …): w's 1 or N·m becomes 1 or m
            shape = (*shape[:at], size // t.batch if per_sample else 1, *shape[at + 1 :])
        elif per_sample or layout != STANDARD:  # the batch's own axis: not in a sample
            shape = (*shape[:at], *shape[at + 1 :])
    spec: dict[str, Any] = {"op": op, "weight": shape, "weight_first": first, "weight_kind": kind}
    if per_sample:
        spec["per_sample"] = True
    return t.record(
        "tensor_op",
        spec,
        [x],
        [owner] if owner is not None else [],
        inplace=inplace,
        own_buffers=False,
        layout=layout,
        like=x,
    )


def _operation(
    op: str, plain: tuple[Any, ...], reflected: Any, in_place: tuple[Any, ...]
) -> tuple[Handler, ...]:
    """The handlers of one operation: x ∘ y, y ∘ x (``x.__radd__(y)``) and x ∘= y."""
    return (
        handles(*plain, any_layout=True)(_binary(op)),
        handles(reflected, any_layout=True)(_binary(op, reflected=True)),
        handles(*in_place, any_layout=True)(_binary(op, inplace=True)),
    )


T = torch.Tensor
ARITHMETIC: dict[str, tuple[Handler, ...]] = {
    "add": _operation("add", (torch.add, T.add, T.__add__), T.__radd__, (T.add_, T.__iadd__)),
    "mul": _operation("mul", (torch.mul, T.mul, T.__mul__), T.__rmul__, (T.mul_, T.__imul__)),
    "sub": _operation("sub", (torch.sub, T.sub, T.__sub__), T.__rsub__, (T.sub_, T.__isub__)),
    "div": _operation(
        "div", (torch.div, T.div, T.__truediv__), T.__rtruediv__, (T.div_, T.__itruediv__)
    ),
}
ALL_ARITHMETIC = tuple(h for handlers in ARITHMETIC.values() for h in handlers)


# -- tensor_op ----------------------------------------------------------------------------
_BINARY_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
}


class WeightOp(HeldTensor):
    """x ∘ weight (or weight ∘ x) for ∘ in + − · / with a parameter, a buffer or a constant."""

    def __init__(self, op: str, shape: tuple[int, ...], first: bool, kind: str):
        super().__init__(torch.rand(shape) + 0.5, kind)  # away from 0: a divisor
        self.op, self.first = op, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.held(x)
        a, b = (weight, x) if self.first else (x, weight)
        return _BINARY_OPS[self.op](a, b)


def build_tensor_op(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    weight = tuple(whole(d) for d in args["weight"])
    return WeightOp(args["op"], weight, args["weight_first"], args["weight_kind"])


def tensor_op_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    weight = pick.choice([f"({c},1,1)", f"(1,{h},{w})", f"({w})", f"(1,{c},1,1)"])
    op = pick.choice(["add", "sub", "mul", "div"])
    line = f"tensor_op {op} {weight} weight_first={flag(pick)} weight_kind={held_kind_choice(pick)}"
    return described((c, h, w), line)


lowering(
    "tensor_op",
    traced_by=ALL_ARITHMETIC,
    build=build_tensor_op,
    examples=tensor_op_examples,
)


# -- masked_fill --------------------------------------------------------------------------
def _masked_fill(inplace: bool) -> Handler:
    """x.masked_fill(mask, value) with a fixed bool mask (a buffer, or computed from one:
    nanoGPT's ``self.bias[:, :, :T, :T] == 0``) broadcast over the batch on axis 0; a mask
    computed from the input, or a tensor value, is left to the fallback."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, mask = args[0], arg(args, kwargs, 1, "mask")
        value = arg(args, kwargs, 2, "value")
        if (
            not isinstance(x, ShapeTensor)
            or isinstance(mask, ShapeTensor)
            or not isinstance(mask, torch.Tensor)
            or mask.dtype != torch.bool
            or isinstance(value, torch.Tensor)
            or t.batch_axis(x) != STANDARD
            or mask.dim() > x.dim()
            or (mask.dim() == x.dim() and mask.shape[0] != 1)
        ):
            return NotImplemented
        owner = owned_tensor(t, mask)
        if owner is not None and owner is not mask:
            return NotImplemented  # a view of a buffer: its values are counted where it lives
        spec = {
            "mask": tuple(int(d) for d in mask.shape),
            "mask_kind": "constant" if owner is None else "buffer",
        }
        held = [] if owner is None else [owner]  # counted here, once
        return t.record("masked_fill", spec, [x], held, inplace=inplace, own_buffers=False, like=x)

    return handler


class MaskedFill(nn.Module):
    """x.masked_fill(mask, −10⁴) with a random fixed mask held as ``kind`` says."""

    def __init__(self, shape: tuple[int, ...], kind: str):
        super().__init__()
        self.mask = HeldTensor(torch.rand(shape) > 0.5, kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.masked_fill(self.mask.held(x), -1e4)


def masked_fill_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    mask = pick.choice([f"({h},{w})", f"(1,{h},{w})", f"({c},1,1)", f"(1,{c},{h},{w})"])
    kind = pick.choice(["buffer", "constant"])
    return described((c, h, w), f"masked_fill {mask} mask_kind={kind}")


lowering(
    "masked_fill",
    traced_by=[
        handles(torch.Tensor.masked_fill, torch.masked_fill)(_masked_fill(inplace=False)),
        handles(torch.Tensor.masked_fill_)(_masked_fill(inplace=True)),
    ],
    build=lambda a, s: MaskedFill(tuple(whole(d) for d in a["mask"]), a["mask_kind"]),
    examples=masked_fill_examples,
)
