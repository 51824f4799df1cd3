"""Argument schemas for layer kinds, in PyTorch's vocabulary, with short aliases.

A rule declares its arguments once; every front-end (text description, traced
module) passes values through ``coerce_args`` so the rule only ever sees
normalised hyper-parameters: pairs as ``(h, w)``, padding as ``(top, bottom,
left, right)`` or ``"same"``, booleans as ``bool``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from convlens.core.numbers import is_numeric, known_positive

ArgKind = Literal["int", "pair", "padding", "float", "bool", "choice", "size", "name", "names"]

# Short aliases accepted everywhere (PyTorch's names are canonical).
ALIASES: dict[str, str] = {
    "k": "kernel_size",
    "kernel": "kernel_size",
    "s": "stride",
    "p": "padding",
    "d": "dilation",
    "g": "groups",
    "op": "output_padding",
    "scale": "scale_factor",
    "out": "out_channels",
    "reduction": "r",
}

REQUIRED: Any = object()


class ArgValueError(ValueError):
    """A value of the wrong form; the front-end adds the position and layer."""


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind
    default: Any = REQUIRED
    positional: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""
    minimum: int = 1  # smallest legal value for int/pair kinds (0 for padding-like)
    interval: tuple[float, float] | None = None  # closed range of a float (dropout's p)
    axes: int = 2  # values of a "pair", "size" or "padding" argument: one per spatial axis

    def per_axis(self, axes: int) -> Arg:
        """The same argument for a layer with ``axes`` spatial axes (conv1d, conv3d)."""
        names = {1: "length", 2: "height and width", 3: "depth, height and width"}[axes]
        words = self.help.replace("height and width", names)
        return replace(self, axes=axes, help=words.replace("rows/columns", "positions"))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Schema:
    args: tuple[Arg, ...] = field(default_factory=tuple)
    # Built once: every new layer looks its arguments up here (a functools.cached_property
    # would take a lock on every read).
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, Arg] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(a.name for a in self.args))
        object.__setattr__(self, "_by_name", {a.name: a for a in self.args})

    def __getitem__(self, name: str) -> Arg:
        return self._by_name[name]

    @property
    def positional(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.positional)


def canonical_name(name: str, schema: Schema) -> str:
    """Resolve an alias (``k`` → ``kernel_size``) if the schema knows the long name."""
    if name in schema.names:
        return name
    long = ALIASES.get(name)
    if long and long in schema.names:
        return long
    return name


def suggest(name: str, candidates: Any) -> str:
    """`` (did you mean 'stride'?)`` or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def coerce_args(kind: str, schema: Schema, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and forms of ``given`` against ``schema``; fill defaults."""
    out: dict[str, Any] = {}
    for raw_name, value in given.items():
        name, checked = coerce_one(kind, schema, raw_name, value)
        if name in out:
            raise ArgValueError(f"argument '{name}' of {kind} is given twice")
        out[name] = checked
    for arg in schema.args:
        if arg.name not in out:
            if arg.required:
                raise ArgValueError(f"{kind} needs argument '{arg.name}' ({arg.help})")
            out[arg.name] = arg.default
    return out


def coerce_one(kind: str, schema: Schema, raw_name: str, value: Any) -> tuple[str, Any]:
    """Canonical name and checked value of one argument (front-ends report its column)."""
    name = canonical_name(raw_name, schema)
    if name not in schema.names:
        known = ", ".join(schema.names) or "no arguments"
        raise ArgValueError(
            f"unknown argument '{raw_name}' for {kind}{suggest(raw_name, schema.names)}; "
            f"{kind} takes: {known}"
        )
    return name, _coerce(kind, schema[name], value)


def _check_size(kind: str, arg: Arg, value: Any) -> Any:
    if type(value) is int and value >= arg.minimum:  # the common case, checked at once
        return value
    if isinstance(value, bool) or not (is_numeric(value) or _is_expr(value)):
        raise ArgValueError(f"{kind} argument '{arg.name}' must be an integer, got {value!r}")
    if isinstance(value, Fraction):
        if value.denominator != 1:
            raise ArgValueError(f"{kind} argument '{arg.name}' must be an integer, got {value}")
        value = int(value)
    positive = known_positive(value - arg.minimum + 1)
    if positive is False:
        bound = "positive" if arg.minimum == 1 else f"at least {arg.minimum}"
        raise ArgValueError(f"{kind} argument '{arg.name}' must be {bound}, got {value}")
    return value


def _is_expr(value: Any) -> bool:
    return hasattr(value, "free_symbols")


def _coerce(kind: str, arg: Arg, value: Any) -> Any:
    if value is None and arg.default is None:  # "not given" for optional arguments
        return None
    if arg.kind == "int":
        return _check_size(kind, arg, value)
    if arg.kind == "pair":
        pair = value if isinstance(value, tuple) else (value,) * arg.axes
        if len(pair) == 1:
            pair = pair * arg.axes
        if len(pair) != arg.axes:
            raise ArgValueError(
                f"{kind} argument '{arg.name}' takes {_ONE_OR_MORE[arg.axes]}, "
                f"got {len(pair)} values"
            )
        return tuple(_check_size(kind, arg, v) for v in pair)
    if arg.kind == "padding":
        return _coerce_padding(kind, arg, value)
    if arg.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
            raise ArgValueError(f"{kind} argument '{arg.name}' must be a number, got {value!r}")
        if arg.interval is not None and not arg.interval[0] <= value <= arg.interval[1]:
            low, high = arg.interval
            raise ArgValueError(
                f"{kind} argument '{arg.name}' must be between {low:g} and {high:g}, got {value}"
            )
        return value
    if arg.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ArgValueError(f"{kind} argument '{arg.name}' must be true or false, got {value!r}")
    if arg.kind == "choice":
        if hasattr(value, "name") and hasattr(value, "free_symbols"):  # a bare word
            value = str(value)
        if not isinstance(value, str) or value not in arg.choices:
            raise ArgValueError(
                f"{kind} argument '{arg.name}' must be one of "
                f"{', '.join(arg.choices)}; got {value!r}"
                + (suggest(value, arg.choices) if isinstance(value, str) else "")
            )
        return value
    if arg.kind == "size":  # output size of adaptive pooling / crop: one value or one per axis
        pair = value if isinstance(value, tuple) else (value,) * arg.axes
        if arg.axes != 2 and len(pair) == 1:
            pair = pair * arg.axes
        if arg.axes != 2 and len(pair) != arg.axes:
            raise ArgValueError(
                f"{kind} argument '{arg.name}' takes {_ONE_OR_MORE[arg.axes]}, "
                f"got {len(pair)} values"
            )
        return tuple(_check_size(kind, arg, v) for v in pair)
    if arg.kind == "names" and not isinstance(value, tuple | list | str):
        return (value,)  # "(5)" is read as the number 5; a list of one is meant
    if arg.kind in ("name", "names"):
        return value
    raise AssertionError(arg.kind)


_ONE_OR_MORE = {1: "one value", 2: "one value or a pair", 3: "one value or three"}


def _coerce_padding(kind: str, arg: Arg, value: Any) -> Any:
    """``same`` | ``valid`` | p | one per axis (ph, pw) | two per axis (top, bottom, left,
    right): always two per axis, (before, after), axis by axis."""
    n = arg.axes
    if isinstance(value, str):
        if value in ("same", "valid"):
            return (0,) * (2 * n) if value == "valid" else "same"
        what = "an integer, a pair" if n == 2 else f"an integer, {n * 2} values"
        raise ArgValueError(
            f"{kind} argument '{arg.name}' must be {what}, 'same' or 'valid'; got {value!r}"
        )
    values = value if isinstance(value, tuple) else (value,)
    zero = Arg(arg.name, "int", minimum=0)
    values = tuple(_check_size(kind, zero, v) for v in values)
    if len(values) == 1:
        return (values[0],) * (2 * n)
    if len(values) == n:
        return tuple(v for v in values for _ in range(2))
    if len(values) == 2 * n:
        return values
    counts = [str(c) for c in sorted({1, n, 2 * n})]
    counts_text = ", ".join(counts[:-1]) + " or " + counts[-1]
    raise ArgValueError(
        f"{kind} argument '{arg.name}' takes {counts_text} values, got {len(values)}"
    )
