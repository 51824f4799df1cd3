"""Joining branches: add (residual), concat (along channels or any axis), stack (on a new
axis), concatenation with a fixed tensor (a class token), and mul."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import known_equal, normalize, product, total
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape, map_rf
from convlens.core.steps import step


@register_rule("add", Schema(), "element-wise sum of branches (a residual connection)", inputs=-1)
def add(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    for other in inputs[1:]:
        if len(other) != len(first) or any(
            known_equal(a, b) is False for a, b in zip(first, other, strict=True)
        ):
            raise RuleError(
                f"add needs equal shapes, got {fmt_shape(first)} and {fmt_shape(other)}"
            )
    n = elements(first)
    work = normalize((len(inputs) - 1) * n)
    return Cost(
        output_shape=first,
        other_flops=work,
        steps=(
            step("flops", "additions", "FLOPs", "{B}·{N}", {"B": len(inputs) - 1, "N": n}, work),
        ),
    )


def _axis(kind: str, shape: Shape, dim: Any, extra: int = 0) -> int:
    """``dim`` (counted with the batch) as an index into a per-sample shape; ``extra``: a
    new axis may go after the last one (stack)."""
    if not isinstance(dim, int) or not 1 <= dim <= len(shape) + extra:
        raise RuleError(
            f"{kind} dim={dim}: the input {fmt_shape(shape)} has axes 1 … {len(shape) + extra}"
            " (0 is the batch)"
        )
    return dim - 1


def _joined_rf(shape: Shape, axis: int) -> dict[str, Any]:
    """Joining along a spatial axis of a map (L, D, H or W; the last two axes of anything
    else) puts the parts side by side: an output no longer reads its own position, so the
    receptive field is the whole input; along the channels every position stays put."""
    otherwise = len(shape) < 3 or axis >= len(shape) - 2
    return map_rf(shape, whole_on_map=axis >= 1, whole_otherwise=otherwise)


CONCAT = Schema(
    (
        Arg(
            "dim",
            "int",
            1,
            minimum=1,
            help="the axis joined, counted with the batch (1: the channels)",
        ),
    )
)


@register_rule("concat", CONCAT, "concatenation of branches along the channels (or dim)", inputs=-1)
def concat(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    axis = _axis("concat", first, args["dim"])
    for other in inputs[1:]:
        if len(other) != len(first) or any(
            known_equal(a, b) is False
            for i, (a, b) in enumerate(zip(first, other, strict=True))
            if i != axis
        ):
            what = (
                "the same spatial size"
                if axis == 0
                else f"the axes other than dim {args['dim']} equal"
            )
            raise RuleError(
                f"concat needs {what} on every branch, got "
                + " and ".join(fmt_shape(s) for s in inputs)
            )
    joined = total(s[axis] for s in inputs)
    return Cost(
        output_shape=(*first[:axis], joined, *first[axis + 1 :]),
        **_joined_rf(first, axis),
        steps=(
            step(
                "shape",
                "channels" if axis == 0 else f"size of dim {args['dim']}",
                "C" if axis == 0 else "D",
                " + ".join(f"{{C{i}}}" for i in range(len(inputs))),
                {f"C{i}": s[axis] for i, s in enumerate(inputs)},
                joined,
            ),
        ),
        args=dict(args),
    )


STACK = Schema(
    (
        Arg(
            "dim",
            "int",
            1,
            minimum=1,
            help="where the new axis goes, counted with the batch (1: in front of each "
            "sample, as torch.stack(xs) does with the batch on axis 1)",
        ),
    )
)


@register_rule(
    "stack",
    STACK,
    "equal tensors stacked on a new axis (torch.stack; smp's FPN sums them over it)",
    inputs=-1,
)
def stack(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    axis = _axis("stack", first, args["dim"], extra=1)
    for other in inputs[1:]:
        if len(other) != len(first) or any(
            known_equal(a, b) is False for a, b in zip(first, other, strict=True)
        ):
            raise RuleError(
                "stack needs equal shapes, got " + " and ".join(fmt_shape(s) for s in inputs)
            )
    count = len(inputs)
    return Cost(
        output_shape=(*first[:axis], count, *first[axis:]),
        # a new axis in front of a map's H and W keeps every position (the branches' fields
        # are joined as add joins them); anywhere else the grid is gone
        # a new axis in front of the map's spatial ones keeps every position
        **map_rf(
            first,
            whole_on_map=axis > len(first) - 2,
            whole_otherwise=len(first) < 3 or axis > len(first) - 2,
        ),
        steps=(step("shape", "stacked tensors", "K", "{K}", {"K": count}, count),),
        args=dict(args),
    )


def _sizes(value: Any) -> tuple[Any, ...]:
    """A list of sizes, given as one number or several."""
    return tuple(value) if isinstance(value, tuple | list) else (value,)


CONCAT_TENSOR = Schema(
    (
        Arg("dim", "int", 1, minimum=1, help="the axis joined, counted with the batch"),
        Arg(
            "before",
            "names",
            (),
            help="sizes along dim of the fixed tensors in front of the input (ViT's class "
            "token: (1))",
        ),
        Arg("after", "names", (), help="sizes along dim of the fixed tensors after the input"),
        Arg(
            "weight_kind",
            "choice",
            "parameter",
            choices=("parameter", "buffer", "constant"),
            help="what the fixed tensors are: learned parameters (each sample sees the same, "
            "expanded over the batch), buffers, or constants",
        ),
    )
)


@register_rule(
    "concat_tensor",
    CONCAT_TENSOR,
    "concatenation with fixed tensors expanded over the batch (ViT's class token, "
    "torch.cat((cls.expand(N, -1, -1), x), dim=1))",
    has_weights=True,
)
def concat_tensor(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    x = tuple(inputs[0])
    axis = _axis("concat_tensor", x, args["dim"])
    parts = (*_sizes(args["before"]), *_sizes(args["after"]))
    if not parts:
        raise RuleError("concat_tensor needs fixed parts: before=(…) or after=(…)")
    fixed = normalize(total(parts))
    rest = product((*x[:axis], *x[axis + 1 :]))
    size, kind = normalize(fixed * rest), args["weight_kind"]
    joined = normalize(x[axis] + fixed)
    values = {f"F{i}": p for i, p in enumerate(parts)}
    steps = [
        step(
            "shape",
            f"size of dim {args['dim']}",
            "D",
            "{I} + " + " + ".join(f"{{F{i}}}" for i in range(len(parts))),
            {"I": x[axis], **values},
            joined,
        )
    ]
    if kind == "parameter":
        steps.append(
            step(
                "params",
                "parameters",
                "params",
                "(" + " + ".join(f"{{F{i}}}" for i in range(len(parts))) + ")·{R}",
                {**values, "R": rest},
                size,
                note="each fixed tensor is one sample's part, shared by every sample",
            )
        )
    return Cost(
        output_shape=(*x[:axis], joined, *x[axis + 1 :]),
        params=size if kind == "parameter" else 0,
        param_tensors=len(parts) if kind == "parameter" else 0,
        buffers=size if kind == "buffer" else 0,
        # the fixed parts depend on no input position
        **_joined_rf(x, axis),
        steps=tuple(steps),
        args=dict(args),
    )


def broadcast_shapes(kind: str, shapes: Sequence[Shape]) -> Shape:
    """NumPy/PyTorch broadcasting of per-sample shapes (aligned on the right)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise RuleError(
                f"{kind} cannot broadcast " + " and ".join(fmt_shape(s) for s in shapes)
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@register_rule(
    "mul", Schema(), "element-wise product with broadcasting (e.g. a channel gate)", inputs=-1
)
def mul(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = broadcast_shapes("mul", inputs)
    n = elements(shape)
    work = normalize((len(inputs) - 1) * n)
    # Each factor's gradient needs the other factors: every input is kept.
    return Cost(
        output_shape=shape,
        other_flops=work,
        saves=tuple(Saved("input", index=i) for i in range(len(inputs))),
        steps=(
            step(
                "flops", "multiplications", "FLOPs", "{B}·{N}", {"B": len(inputs) - 1, "N": n}, work
            ),
        ),
    )
