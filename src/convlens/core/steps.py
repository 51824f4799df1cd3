"""Worked derivations: each step is a formula, the same formula with numbers, and a result.

A rule builds its steps from the very values it computes with, and a test
evaluates every ``substituted`` text back to a number, so the working shown can
never drift from the figure reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from convlens.core.frozen import quick
from convlens.core.numbers import Dim, fmt, is_numeric


@dataclass(frozen=True)
class Step:
    """One step; its texts are built when first read, since most analyses never show them."""

    topic: str  # "shape", "params", "macs", "flops", "rf" or "memory" (for --what)
    quantity: str  # what is computed, e.g. "output height"
    symbol: str  # its name in the formula, e.g. "H_out"
    template: str  # e.g. "⌊({H} + 2·{P} − {K})/{S}⌋ + 1"
    values: dict[str, Any] = field(hash=False)  # the template's placeholders → their values
    result: Dim = None
    note: str = ""

    @functools.cached_property
    def formula(self) -> str:
        """The template with names, e.g. ``⌊(H + 2·P − K)/S⌋ + 1``."""
        return self.template.format(**{name: name for name in self.values})

    @functools.cached_property
    def substituted(self) -> str:
        """The template with numbers, e.g. ``⌊(128 + 2·2 − 5)/2⌋ + 1``."""
        return self.template.format(**{name: _operand(v) for name, v in self.values.items()})

    @property
    def text(self) -> str:
        """``H_out = ⌊(H + 2P − K)/S⌋ + 1 = ⌊(128 + 4 − 5)/2⌋ + 1 = 64``."""
        parts = [self.symbol, self.formula]
        if self.substituted != self.formula:
            parts.append(self.substituted)
        shown = fmt(self.result, grouping=False)
        if shown != self.substituted:
            parts.append(shown)
        return " = ".join(parts)


def _operand(value: Any) -> str:
    """A value as it appears inside a formula: compound expressions get brackets."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_operand(v) for v in value) + ")"
    text = fmt(value, grouping=False)
    if is_numeric(value) and not str(text).startswith("-") and "/" not in text:
        return text
    if text.isidentifier():
        return text
    return f"({text})"


def step(
    topic: str,
    quantity: str,
    symbol: str,
    template: str,
    values: dict[str, Any],
    result: Dim,
    note: str = "",
) -> Step:
    """A step whose ``template`` (placeholders ``{H}``) is filled with names and with numbers."""
    return quick(
        Step,
        topic=topic,
        quantity=quantity,
        symbol=symbol,
        template=template,
        values=values,
        result=result,
        note=note,
    )
