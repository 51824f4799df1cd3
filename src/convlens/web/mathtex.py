"""A derivation step as LaTeX for KaTeX: ``H_out = ⌊(I + 2·P − K)/S⌋ + 1 = … = 64``.

Built from the step's template and values (not from its text), so names become
subscripts (``H_{\\mathrm{out}}``), closed forms are typeset by SymPy (``k^{2}``) and
fractions are fractions. The chain of equalities is the one ``Step.text`` prints.
"""

from __future__ import annotations

import re
import string
from fractions import Fraction
from typing import Any

from convlens.core.numbers import fmt, is_symbolic
from convlens.core.steps import Step
from convlens.explain.derivation import _LATEX as OPERATORS  # ⌊ ⌋ · − … as explain's LaTeX

_SPECIALS = {ch: "\\" + ch for ch in "#$%&_{}"} | {
    "\\": r"\backslash ",
    "~": r"\sim ",
    "^": r"\hat{}",
}
_NAME = re.compile(r"^([A-Za-z]+?)(?:_([A-Za-z0-9]+)|(\d+))?$")


def name_latex(name: str) -> str:
    """``H_out`` → ``H_{\\mathrm{out}}``, ``C0`` → ``C_{0}``, ``FLOPs`` → ``\\mathrm{FLOPs}``."""
    match = _NAME.match(name)
    if not match:
        return r"\mathrm{" + _escape(name) + "}"
    base, sub = match.group(1), match.group(2) or match.group(3)
    text = base if len(base) == 1 else r"\mathrm{" + base + "}"
    if sub:
        text += "_{" + (sub if len(sub) == 1 or sub.isdigit() else r"\mathrm{" + sub + "}") + "}"
    return text


def value_latex(value: Any, operand: bool = False) -> str:
    """A number, fraction, closed form or tuple; ``operand``: bracket compound values,
    as ``Step.substituted`` does, so ``2·(k + 1)`` keeps its meaning."""
    if isinstance(value, tuple):
        return r"\left(" + ", ".join(value_latex(v) for v in value) + r"\right)"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return r"\mathrm{" + _escape(fmt(value) if value is not None else "none") + "}"
    if isinstance(value, Fraction) and value.denominator != 1:
        frac = r"\frac{" + str(abs(value.numerator)) + "}{" + str(value.denominator) + "}"
        return (r"\left(-" + frac + r"\right)" if operand else "-" + frac) if value < 0 else frac
    if isinstance(value, int | Fraction | float):
        text = fmt(value, grouping=False)
        return f"({text})" if operand and text.startswith("-") else text
    if is_symbolic(value):
        import sympy

        text = sympy.latex(value)
        atomic = value.is_Symbol or value.is_Integer
        return r"\left(" + text + r"\right)" if operand and not atomic else text
    return r"\mathrm{" + _escape(str(value)) + "}"


def template_latex(template: str, fill: dict[str, str]) -> str:
    """The step's template with each ``{NAME}`` replaced by ``fill[NAME]``."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append("".join(OPERATORS.get(ch) or _SPECIALS.get(ch, ch) for ch in literal))
        if field is not None:
            parts.append(fill[field])
    return "".join(parts)


def step_latex(step: Step) -> str:
    """``symbol = formula [= numbers] [= result]``, the chain ``Step.text`` shows."""
    parts = [
        name_latex(step.symbol),
        template_latex(step.template, {n: name_latex(n) for n in step.values}),
    ]
    if step.substituted != step.formula:
        parts.append(
            template_latex(
                step.template, {n: value_latex(v, operand=True) for n, v in step.values.items()}
            )
        )
    if fmt(step.result, grouping=False) != step.substituted:
        parts.append(value_latex(step.result))
    return " = ".join(parts)


def _escape(text: str) -> str:
    return "".join(_SPECIALS.get(ch, ch) for ch in text)
