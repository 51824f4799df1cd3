"""Arithmetic with a tensor the model holds, and sums and means over per-sample axes.

``tensor_op`` is ``x ∘ w`` for ∘ in + − · / where w is fixed: a parameter (LeNet-5's
per-map coefficient ``self.weight.view(1, -1, 1, 1)``), a buffer (its RBF prototypes) or a
constant tensor, broadcast against x so that the batch stays on axis 0. ``reduce`` is
``x.sum(dim)`` or ``x.mean(dim)`` over axes other than the batch.

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks: + and −
keep nothing; x·w and x / w keep x only for a trainable parameter's gradient (run in
place, a copy of x), and w for x's gradient — a parameter or buffer is no activation, a
constant is; w / x keeps x and w whenever it runs. Sums and means keep nothing (their
backward needs only the sizes).

``unary`` is a plain function of each element (−x, |x|, clamp, exp, log, sqrt, x ** p, …):
one FLOP per element, as for the activations. What autograd keeps for it is in
``UNARY_OPS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import Dim, known_equal, normalize, product
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape, map_rf
from convlens.core.rules.merge import broadcast_shapes
from convlens.core.steps import step

TENSOR_OP = Schema(
    (
        Arg(
            "op",
            "choice",
            positional=True,
            choices=("add", "sub", "mul", "div"),
            help="x + w, x − w, x · w or x / w",
        ),
        Arg(
            "weight",
            "names",
            positional=True,
            help="shape of the fixed operand w as PyTorch "
            "sees it (no batch axis; a leading 1 may line up with it)",
        ),
        Arg("weight_first", "bool", False, help="w is on the left: w − x, w / x"),
        Arg(
            "weight_kind",
            "choice",
            "parameter",
            choices=("parameter", "buffer", "constant"),
            help="what w is: a learned parameter, a buffer, or a constant tensor (counted as "
            "neither)",
        ),
        Arg(
            "per_sample",
            "bool",
            False,
            help="a constant with its own values for each sample (weight is one sample's "
            "shape), e.g. drop-path's N×1×1×1 mask: kept once per sample, not once per batch",
        ),
    )
)


def per_sample_operand(kind: str, x: Shape, weight: Shape) -> Shape:
    """w's shape without the axis that lines up with the batch: w may have x's full rank
    (batch included) only with a 1 in front, else it would broadcast over the batch."""
    if len(weight) > len(x) + 1 or (len(weight) == len(x) + 1 and weight[0] != 1):
        raise RuleError(
            f"{kind}: w {fmt_shape(weight)} reaches the batch axis of x (per "
            f"sample {fmt_shape(x)}); give it at most {len(x) + 1} axes, the "
            "first of size 1"
        )
    return tuple(weight[1:]) if len(weight) == len(x) + 1 else tuple(weight)


@register_rule(
    "tensor_op",
    TENSOR_OP,
    "element-wise arithmetic with a fixed tensor w (a "
    "parameter, buffer or constant), broadcast per sample",
    has_weights=True,
)
def tensor_op(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    x, weight, op = tuple(inputs[0]), tuple(args["weight"]), args["op"]
    if args["per_sample"] and args["weight_kind"] != "constant":
        raise RuleError("per_sample=true describes a constant: a parameter or buffer is shared")
    shape = broadcast_shapes("tensor_op", [x, per_sample_operand("tensor_op", x, weight)])
    n, size, kind = elements(shape), product(weight), args["weight_kind"]
    saves: tuple[Saved, ...] = ()
    if op == "div" and args["weight_first"]:  # ∂(w / x)/∂x = −w / x²: x whenever it runs
        saves = (Saved("input"),)
    elif op in ("mul", "div") and kind == "parameter":  # x serves ∂L/∂w only
        saves = (Saved("input", needs="weight", copied_in_place=True),)
    if op in ("mul", "div") and kind == "constant":  # w serves ∂L/∂x, kept once per batch
        saves += (Saved("extra", elements=size, per_batch=not args["per_sample"]),)
    symbol = {"add": "+", "sub": "−", "mul": "·", "div": "/"}[op]
    steps = [
        step(
            "flops",
            "element-wise operations",
            "FLOPs",
            "{N}",
            {"N": n},
            n,
            note=f"one {symbol} per output element",
        )
    ]
    if kind == "parameter":
        steps.insert(
            0,
            step(
                "params",
                "parameters",
                "params",
                "·".join(f"{{D{i}}}" for i in range(len(weight))) or "1",
                {f"D{i}": d for i, d in enumerate(weight)},
                size,
            ),
        )
    # Broadcasting x to a larger shape makes an output read a position of x other than its
    # own: its receptive field is then taken as the whole input, as after a view.
    grows = len(shape) != len(x) or any(
        known_equal(a, b) is False for a, b in zip(shape, x, strict=True)
    )
    warnings = (
        (
            "w is not held by the model, so it is counted as a constant; if it is "
            "computed from trainable parameters, training also keeps x",
        )
        if kind == "constant" and op in ("mul", "div") and not args["per_sample"]
        else ()
    )
    return Cost(
        output_shape=shape,
        other_flops=n,
        rf_global=grows,
        warnings=warnings,
        params=size if kind == "parameter" else 0,
        param_tensors=1 if kind == "parameter" else 0,
        buffers=size if kind == "buffer" else 0,
        saves=saves,
        steps=tuple(steps),
        args=dict(args),
    )


# -- unary --------------------------------------------------------------------------------
# op → (the function, what autograd keeps for backward). Measured on torch 2.13 (CPU) with
# saved_tensors_hooks, out of place and in place, clamp with min, max and both.
UNARY_OPS: dict[str, tuple[str, str]] = {
    "neg": ("−x", ""),  # ∂/∂x = −1: nothing
    "abs": ("the absolute value", "input"),  # sign(x)
    "clamp": ("min(max(x, min), max)", "input"),  # where min ≤ x ≤ max
    "exp": ("eˣ", "output"),  # eˣ itself
    "log": ("ln x", "input"),  # 1/x
    "sqrt": ("√x", "output"),  # 1/(2√x)
    "rsqrt": ("1/√x", "output"),  # −(1/√x)³/2
    "reciprocal": ("1/x", "output"),  # −(1/x)²
    "square": ("x²", "input"),  # 2x (PyTorch runs it as pow 2)
    "pow": ("xᵖ", "input"),  # p·xᵖ⁻¹
    "erf": ("erf x", "input"),  # 2/√π·e^(−x²)
    "sin": ("sin x", "input"),  # cos x
    "cos": ("cos x", "input"),  # −sin x
}

UNARY = Schema(
    (
        Arg(
            "op",
            "choice",
            positional=True,
            choices=tuple(UNARY_OPS),
            help="the function: "
            + ", ".join(f"{op} {formula}" for op, (formula, _) in UNARY_OPS.items()),
        ),
        Arg("min", "float", None, help="clamp: the lower bound (none: no lower bound)"),
        Arg("max", "float", None, help="clamp: the upper bound (none: no upper bound)"),
        Arg("exponent", "float", None, help="pow: the exponent p, a number"),
    )
)


def _unary_arguments(args: Mapping[str, Any]) -> None:
    """clamp takes one bound or two, pow its exponent; no other op takes either."""
    op = args["op"]
    bounds = [name for name in ("min", "max") if args[name] is not None]
    if op == "clamp" and not bounds:
        raise RuleError("unary clamp needs a bound: min=…, max=… or both (torch.clamp's rule)")
    if op != "clamp" and bounds:
        raise RuleError(f"unary {op} takes no {bounds[0]}= (only clamp has bounds)")
    if op == "pow" and args["exponent"] is None:
        raise RuleError("unary pow needs exponent=… (a number, as in x ** 2)")
    if op != "pow" and args["exponent"] is not None:
        raise RuleError(f"unary {op} takes no exponent= (only pow has one)")


@register_rule(
    "unary",
    UNARY,
    "an element-wise function of one tensor: −x, abs, clamp, exp, log, sqrt, rsqrt, "
    "1/x, x², x ** p, erf, sin, cos",
)
def unary(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    _unary_arguments(args)
    shape, op = tuple(inputs[0]), args["op"]
    formula, kept = UNARY_OPS[op]
    n = elements(shape)
    # Run in place, an op that keeps its input makes autograd keep a copy of it first; one
    # that keeps its output keeps the shared result.
    saves = (Saved(kept, copied_in_place=kept == "input"),) if kept else ()
    return Cost(
        output_shape=shape,
        other_flops=n,
        saves=saves,
        steps=(
            step(
                "flops",
                f"unary {op} FLOPs",
                "FLOPs",
                "1·{N}",
                {"N": n},
                n,
                note=f"{formula}: one per element (a transcendental function counts as one)",
            ),
        ),
        args=dict(args),
    )


REDUCE = Schema(
    (
        Arg(
            "op",
            "choice",
            positional=True,
            choices=("sum", "mean", "max", "min", "amax", "amin"),
            help="sum, mean, or the largest or smallest value: max and min over one axis "
            "with their indices (torch.max(x, dim)), amax and amin over any",
        ),
        Arg(
            "dim",
            "names",
            positional=True,
            help="axes reduced, counted with the batch (1: "
            "channels; the batch axis 0 cannot be reduced per sample)",
        ),
        Arg("keepdim", "bool", False, help="keep each reduced axis with size 1"),
    )
)


@register_rule(
    "reduce",
    REDUCE,
    "sum, mean, max or min over axes of each sample (x.sum(dim), x.mean(dim), "
    "torch.max(x, dim), x.amax(dim))",
)
def reduce(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    given = tuple(args["dim"]) if isinstance(args["dim"], tuple | list) else (args["dim"],)
    rank = len(shape) + 1  # with the batch axis, as PyTorch counts
    # negative axes count from the end, as in x.sum(-1)
    dims = tuple(d + rank if isinstance(d, int) and d < 0 else d for d in given)
    if (
        not dims
        or any(not isinstance(d, int) or not 1 <= d <= len(shape) for d in dims)
        or len(set(dims)) != len(dims)
    ):
        raise RuleError(
            f"reduce dim={given}: give distinct axes 1 … {len(shape)} (or −{len(shape)} … −1)"
            f" of the input {fmt_shape(shape)} (0 is the batch, which is not reduced per sample)"
        )
    if args["op"] in ("max", "min") and len(dims) != 1:
        raise RuleError(f"reduce {args['op']} takes one axis (torch.max(x, dim)); got {given}")
    axes = {d - 1 for d in dims}
    out = tuple(
        1 if i in axes else d for i, d in enumerate(shape) if args["keepdim"] or i not in axes
    )
    n, kept = elements(shape), elements(out)
    op = args["op"]
    mean, summed = op == "mean", op in ("sum", "mean")
    # sum: K − 1 additions per output; mean: and one division (N in all, as avgpool counts);
    # max, min: K − 1 comparisons per output, as maxpool counts
    work: Dim = n if mean else normalize(n - kept)
    steps = (
        step(
            "flops",
            ("additions" + (" and divisions" if mean else "")) if summed else "comparisons",
            "FLOPs",
            "{N}" if mean else "{N} − {M}",
            {"N": n} if mean else {"N": n, "M": kept},
            work,
            note=(
                "K − 1 additions per output" + (" and one division" if mean else "")
                if summed
                else "K − 1 comparisons per output"
            ),
        ),
    )
    # Backward routes the gradient to the winners: torch.max(x, dim) keeps their int64
    # indices; amax and amin keep the input and the result, to find every tie.
    saves: tuple[Saved, ...] = ()
    if op in ("max", "min"):
        saves = (Saved("extra", elements=kept, itemsize=8),)
    elif op in ("amax", "amin"):
        saves = (Saved("input"), Saved("output"))
    # Reducing a spatial axis of a map — L, D, H or W, or the last two axes of anything
    # else, like (K, C, H, W) after torch.stack — makes each output read more than its own
    # position: the whole input, as after global pooling. Reducing the others keeps them.
    otherwise = len(shape) < 3 or bool(axes & {len(shape) - 2, len(shape) - 1})
    return Cost(
        output_shape=out,
        other_flops=work,
        **map_rf(shape, whole_on_map=any(a >= 1 for a in axes), whole_otherwise=otherwise),
        saves=saves,
        steps=steps,
        args={**args, "dim": dims},
    )


MASKED_FILL = Schema(
    (
        Arg(
            "mask",
            "names",
            positional=True,
            help="shape of the fixed bool mask as PyTorch sees it (no batch axis; a leading "
            "1 may line up with it)",
        ),
        Arg(
            "mask_kind",
            "choice",
            "constant",
            choices=("buffer", "constant"),
            help="what the mask is: a buffer of the model (no activation), or a tensor the "
            "forward computes (causal attention's mask[:T, :T] == 0), kept once per batch",
        ),
    )
)


@register_rule(
    "masked_fill",
    MASKED_FILL,
    "x with a value where a fixed bool mask is true (x.masked_fill(mask, -inf): causal attention)",
)
def masked_fill(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    x, mask = tuple(inputs[0]), tuple(args["mask"])
    shape = broadcast_shapes("masked_fill", [x, per_sample_operand("masked_fill", x, mask)])
    if len(shape) != len(x) or any(
        known_equal(a, b) is False for a, b in zip(shape, x, strict=True)
    ):
        raise RuleError(
            f"masked_fill: the mask {fmt_shape(mask)} would broadcast x {fmt_shape(x)} to "
            f"{fmt_shape(shape)}; the mask must broadcast to x"
        )
    # Backward fills the gradient where the mask is true: autograd keeps the mask (one byte
    # per value), unless it is the model's own buffer.
    saves = (
        (Saved("extra", elements=product(mask), per_batch=True, itemsize=1),)
        if args["mask_kind"] == "constant"
        else ()
    )
    held = product(mask) if args["mask_kind"] == "buffer" else 0
    return Cost(output_shape=x, saves=saves, buffers=held, bool_buffers=held, args=dict(args))
