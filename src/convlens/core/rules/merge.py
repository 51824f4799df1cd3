"""Joining branches: add (residual) and concat (along channels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Schema
from convlens.core.numbers import known_equal, normalize, total
from convlens.core.registry import Cost, RuleError, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape
from convlens.core.steps import step


@register_rule("add", Schema(), "element-wise sum of branches (a residual connection)",
               inputs=-1)
def add(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    for other in inputs[1:]:
        if len(other) != len(first) or any(known_equal(a, b) is False
                                           for a, b in zip(first, other, strict=True)):
            raise RuleError(f"add needs equal shapes, got {fmt_shape(first)} and "
                            f"{fmt_shape(other)}")
    n = elements(first)
    work = normalize((len(inputs) - 1) * n)
    return Cost(output_shape=first, other_flops=work,
                steps=(step("flops", "additions", "FLOPs", "{B}·{N}",
                            {"B": len(inputs) - 1, "N": n}, work),))


@register_rule("concat", Schema(), "concatenation of branches along the channels",
               inputs=-1)
def concat(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    first = tuple(inputs[0])
    for other in inputs[1:]:
        if len(other) != len(first) or any(known_equal(a, b) is False
                                           for a, b in zip(first[1:], other[1:], strict=True)):
            raise RuleError("concat needs the same spatial size on every branch, got "
                            + " and ".join(fmt_shape(s) for s in inputs))
    channels = total(s[0] for s in inputs)
    return Cost(output_shape=(channels, *first[1:]),
                steps=(step("shape", "channels", "C",
                            " + ".join(f"{{C{i}}}" for i in range(len(inputs))),
                            {f"C{i}": s[0] for i, s in enumerate(inputs)}, channels),))
