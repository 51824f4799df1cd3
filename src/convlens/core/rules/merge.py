"""Joining branches: add (residual) and concat (along channels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Schema
from convlens.core.numbers import known_equal, normalize, total
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape
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


@register_rule("concat", Schema(), "concatenation of branches along the channels", inputs=-1)
def concat(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    for other in inputs[1:]:
        if len(other) != len(first) or any(
            known_equal(a, b) is False for a, b in zip(first[1:], other[1:], strict=True)
        ):
            raise RuleError(
                "concat needs the same spatial size on every branch, got "
                + " and ".join(fmt_shape(s) for s in inputs)
            )
    channels = total(s[0] for s in inputs)
    return Cost(
        output_shape=(channels, *first[1:]),
        steps=(
            step(
                "shape",
                "channels",
                "C",
                " + ".join(f"{{C{i}}}" for i in range(len(inputs))),
                {f"C{i}": s[0] for i, s in enumerate(inputs)},
                channels,
            ),
        ),
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
