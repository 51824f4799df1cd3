"""Exact arithmetic on sizes that may be integers, fractions or SymPy expressions.

Numeric work stays in plain ``int`` / ``Fraction`` (fast, no SymPy import); a size
becomes a SymPy expression only when the description names a symbol such as ``NF``.
Every rule uses these helpers so one code path serves numbers and closed forms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any, TypeAlias

# A size: int, Fraction, or sympy.Expr. Kept as ``Any`` for SymPy's sake.
Dim: TypeAlias = Any


_INT = frozenset({int})


def plain_ints(values: Iterable[Any]) -> bool:
    """Every value a plain ``int`` (no bool, no SymPy integer, no Fraction): a shape or a
    size that needs no normalising, checked in C."""
    return _INT.issuperset(map(type, values))


def is_numeric(value: Dim) -> bool:
    kind = type(value)
    if kind is int or kind is Fraction:  # the common case, without isinstance's MRO walk
        return True
    return isinstance(value, int | Fraction) and not isinstance(value, bool)


def is_symbolic(value: Dim) -> bool:
    return not is_numeric(value) and not isinstance(value, bool | float | str | tuple)


@functools.cache
def _sympy() -> Any:
    import sympy

    return sympy


@functools.cache
def symbol(name: str) -> Any:
    """A size symbol: a positive integer, so SymPy can simplify ⌊2·NF/2⌋ to NF."""
    return _sympy().Symbol(name, integer=True, positive=True)


def normalize(value: Dim) -> Dim:
    """SymPy numbers back to int/Fraction; symbolic expressions expanded."""
    if type(value) is int:
        return value
    if is_numeric(value) or isinstance(value, bool | float | str):
        if isinstance(value, Fraction) and value.denominator == 1:
            return int(value)
        return value
    sp = _sympy()
    value = sp.sympify(value)
    if value.is_Integer:
        return int(value)
    if value.is_Rational:
        return Fraction(int(value.p), int(value.q))
    return sp.expand(value)


def _nonzero(divisor: Dim) -> None:
    """Refuse a zero divisor: Fraction names it ``Fraction(1, 0)`` and SymPy returns ``zoo``."""
    if divisor == 0:
        raise ZeroDivisionError("division by zero")


def floordiv(a: Dim, b: Dim) -> Dim:
    """⌊a / b⌋, exact for ints, fractions and symbols."""
    _nonzero(b)
    if type(a) is int and type(b) is int:
        return a // b
    if is_numeric(a) and is_numeric(b):
        return int(Fraction(a) // Fraction(b))
    sp = _sympy()
    return normalize(sp.floor(sp.sympify(a) / sp.sympify(b)))


def ceildiv(a: Dim, b: Dim) -> Dim:
    """⌈a / b⌉."""
    _nonzero(b)
    if type(a) is int and type(b) is int:
        return -(-a // b)
    if is_numeric(a) and is_numeric(b):
        return -int(Fraction(-a) // Fraction(b))
    sp = _sympy()
    return normalize(sp.ceiling(sp.sympify(a) / sp.sympify(b)))


def divide(a: Dim, b: Dim) -> Dim:
    """a / b exactly (a Fraction when numeric, an int when it divides)."""
    _nonzero(b)
    if type(a) is int and type(b) is int and b and a % b == 0:
        return a // b
    if is_numeric(a) and is_numeric(b):
        return normalize(Fraction(a) / Fraction(b))
    sp = _sympy()
    return normalize(sp.sympify(a) / sp.sympify(b))


def maximum(*values: Dim) -> Dim:
    if all(is_numeric(v) for v in values):
        return max(values)
    sp = _sympy()
    return normalize(sp.Max(*[sp.sympify(v) for v in values]))


def minimum(*values: Dim) -> Dim:
    if all(is_numeric(v) for v in values):
        return min(values)
    sp = _sympy()
    return normalize(sp.Min(*[sp.sympify(v) for v in values]))


def product(values: Any) -> Dim:
    result: Dim = math.prod(values)  # left to right from 1, as a loop of * would
    return normalize(result) if not is_numeric(result) else result


def total(values: Any) -> Dim:
    result: Dim = sum(values, 0)  # left to right, as a loop of + would (but in C for ints)
    return normalize(result) if not is_numeric(result) else result


def known_positive(value: Dim) -> bool | None:
    """True/False when decidable, None when it depends on symbols."""
    if is_numeric(value):
        return bool(value > 0)
    result = _sympy().sympify(value).is_positive
    return None if result is None else bool(result)


def known_equal(a: Dim, b: Dim) -> bool | None:
    if is_numeric(a) and is_numeric(b):
        return bool(a == b)
    diff = _sympy().simplify(_sympy().sympify(a) - _sympy().sympify(b))
    if diff == 0:
        return True
    if diff.is_number:
        return False
    return None


def known_divides(divisor: Dim, value: Dim) -> bool | None:
    """Whether ``divisor`` divides ``value`` exactly (None if it depends on symbols)."""
    if is_numeric(divisor) and is_numeric(value):
        return bool(divisor != 0 and value % divisor == 0)
    quotient = _sympy().sympify(value) / _sympy().sympify(divisor)
    result = _sympy().simplify(quotient).is_integer
    return None if result is None else bool(result)


def to_json(value: Dim) -> Any:
    """Integers stay integers; dyadic fractions become floats; the rest are strings.

    Symbolic values are strings in SymPy syntax (``sympy.sympify`` reads them back).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return int(value)
        if value.denominator & (value.denominator - 1) == 0:
            return float(value)
        return str(value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    value = normalize(value)
    if not is_symbolic(value):
        return to_json(value)
    return str(value)


def fmt(value: Dim, grouping: bool = True) -> str:
    """Human form: 1,234,567 for ints, 1/3 for fractions, SymPy's text for symbols."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if grouping else str(value)
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v, grouping) for v in value) + ")"
    if isinstance(value, str):
        return value
    return str(normalize(value))
