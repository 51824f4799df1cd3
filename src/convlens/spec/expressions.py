"""Safe evaluation of argument values: numbers, names and arithmetic, never ``eval``.

``2*NF``, ``k//2``, ``(3, 5)`` and ``3x5`` (a pair) are accepted. A name is looked
up in the environment (block parameters, ``--set`` values); a few words are
keywords (``same``, ``true``, ``bilinear`` …); any other name is a size symbol,
so results become exact SymPy expressions.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from convlens.core.numbers import ceildiv, divide, floordiv, is_numeric, normalize, symbol

KEYWORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "True": True,
    "False": False,
    "none": None,
    "None": None,
}
WORDS = {"same", "valid", "nearest", "bilinear"}

_PAIR_SPLIT = re.compile(r"(?<=[0-9)])[x×]")  # 3x5, or 3×5 as convlens prints it


class ExpressionError(ValueError):
    pass


def _binary(op: ast.operator, a: Any, b: Any) -> Any:
    if isinstance(a, str | tuple) or isinstance(b, str | tuple):
        raise ExpressionError("arithmetic needs numbers")
    if isinstance(op, ast.FloorDiv):
        return floordiv(a, b)
    if isinstance(op, ast.Div):
        if isinstance(a, float) or isinstance(b, float):
            return a / b
        return divide(a, b)
    table: dict[type, Callable[[Any, Any], Any]] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Mod: operator.mod,
        ast.Pow: operator.pow,
    }
    fn = table.get(type(op))
    if isinstance(op, ast.Mod) and b == 0:
        raise ZeroDivisionError("division by zero")
    if fn is None:
        raise ExpressionError(f"operator {type(op).__name__} is not allowed")
    if isinstance(op, ast.Pow) and (
        not is_numeric(b) or abs(b) > 64 or (is_numeric(a) and abs(a) > 2**64)
    ):
        raise ExpressionError(
            f"the power {a}**{b} is too large for a size (exponents up to 64 on numbers)"
        )
    result = fn(a, b)
    return result if isinstance(result, float) else normalize(result)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ceil_div": ceildiv,
    "floor_div": floordiv,
    "max": max,
    "min": min,
}


class Evaluator:
    """Evaluates argument text; records which environment names were used."""

    def __init__(self, env: Mapping[str, Any], lookup: Callable[[str], Any] | None = None):
        self.env = env
        self.lookup = lookup  # fallback for names not in env (e.g. --set bindings)

    def __call__(self, text: str, pairs: bool = True) -> Any:
        text = text.strip()
        if (
            pairs
            and _PAIR_SPLIT.search(text)
            and not text.startswith("(")
            and not text.isidentifier()
        ):  # ch1x1 is a name, 3x5 a pair
            parts = _PAIR_SPLIT.split(text)
            return tuple(self(part, pairs=False) for part in parts)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ExpressionError(f"cannot read {text!r} as a number or expression") from None
        return self._eval(tree.body)

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float):
                return node.value
            if isinstance(node.value, str):
                return node.value
            raise ExpressionError(f"unexpected value {node.value!r}")
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Tuple):
            return tuple(self._eval(e) for e in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self._eval(node.operand)
            if isinstance(value, str | tuple):
                raise ExpressionError("a sign needs a number")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            return _binary(node.op, self._eval(node.left), self._eval(node.right))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and not node.keywords
        ):
            return _FUNCTIONS[node.func.id](*[self._eval(a) for a in node.args])
        raise ExpressionError(f"'{ast.unparse(node)}' is not a number, name or arithmetic")

    def name(self, name: str) -> Any:
        if name in self.env:
            return self.env[name]
        if name in KEYWORDS:
            return KEYWORDS[name]
        if name in WORDS:
            return name
        if self.lookup is not None:
            return self.lookup(name)
        return symbol(name)
