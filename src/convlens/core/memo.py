"""Rule results remembered across analyses.

A rule is a pure function of its layer kind, its arguments and its input shapes, and the
same layers come back again and again: within one network (EfficientNet-B0 has 240 rows
but 120 distinct layers), and across the analyses of one session (the web workbench
re-analyses a description at every edit, ``compare`` and sweeps analyse variants of one
design, a notebook re-runs a cell). Running each distinct rule once per process instead of
once per trace saves about a third of the analysis of a small network such as
MobileNetV3-Small (``benchmarks/vs_forward.py``, warm against "new model").

Only plain values make a key (see ``rule_key``): anything else — a SymPy size, a tensor,
a list — and the rule simply runs. Results are shared, so they must never be changed:
``Cost`` is frozen, and the analyser builds a new one (``dataclasses.replace``) where a
row needs different figures.

Receptive fields are remembered too (``RF_RESULTS``), by the identities of what they are
computed from: a row's field follows from its inputs' fields and its rule's index maps,
and when the rule's ``Cost`` came from ``RULE_RESULTS`` and the inputs' fields from here,
the same objects come back in the next analysis of the same layers. Composing the spans
and writing their steps is a large part of the analysis of a network whose fields grow all
the way down (MobileNetV2, DenseNet-121); after a squeeze-and-excitation block every field
is the whole input, which costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from convlens.core.numbers import plain_ints
from convlens.core.registry import Cost

# kind, argument names, argument values tagged with their types, input shapes
Key: TypeAlias = tuple[Any, ...]

_PLAIN = frozenset({int, str, bool, type(None)})


def _plain(value: Any) -> Any:
    """``value`` as a key that tells its type too (``True`` is not ``1``, ``-0.0`` is not
    ``0.0``), or None when it is no plain value (a symbol, a list, a tensor)."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if kind is float:
        return (float, repr(value))
    if kind is tuple:
        if plain_ints(value):  # a shape, a kernel size: the common case
            return (tuple, value)
        parts = tuple(_plain(v) for v in value)
        return None if None in parts else (tuple, parts)
    return None


def rule_key(
    kind: str, args: Mapping[str, Any], shapes: Sequence[tuple[int, ...] | None]
) -> Key | None:
    """What a rule's result depends on — kind, arguments, input shapes — as a dict key, or
    None when some part is not a plain value (then the rule simply runs)."""
    if "like" in args:  # crop to another output's size: it reads more than its inputs
        return None
    for shape in shapes:
        if type(shape) is not tuple or not plain_ints(shape):
            return None  # a symbolic size (a description's), or no shape at all
    values = tuple(args.values())
    types = tuple(map(type, values))  # in the key: True is not 1
    if float in types:  # by their text: -0.0 is not 0.0 (BatchNorm's eps, a dropout rate)
        values = tuple([repr(v) if t is float else v for v, t in zip(values, types, strict=True)])
    for value, kind_of_value in zip(values, types, strict=True):
        if kind_of_value not in _PLAIN and not (
            kind_of_value is float or (kind_of_value is tuple and plain_ints(value))
        ):  # a nested tuple, or no plain value at all
            return _tagged_key(kind, args, shapes)
    return (kind, *args, types, values, *shapes)


_TAGGED = object()  # marks the keys made value by value, apart from the quick ones


def _tagged_key(
    kind: str, args: Mapping[str, Any], shapes: Sequence[tuple[int, ...] | None]
) -> Key | None:
    parts: list[Any] = [_TAGGED, kind, *args]
    for value in args.values():
        part = _plain(value)
        if part is None:
            return None
        parts.append(part)
    return (*parts, *shapes)


V = TypeVar("V")


class Memo(Generic[V]):
    """A bounded map from a key to a result; the oldest entry goes first when it is full (a
    session's working set is a few hundred distinct layers)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._results: dict[Key, V] = {}
        self._lock = threading.Lock()  # the web workbench analyses in worker threads

    def get(self, key: Key) -> V | None:
        return self._results.get(key)

    def put(self, key: Key, result: V) -> None:
        with self._lock:
            if key not in self._results and len(self._results) >= self.capacity:
                del self._results[next(iter(self._results))]
            self._results[key] = result

    def clear(self) -> None:
        with self._lock:
            self._results.clear()

    def __len__(self) -> int:
        return len(self._results)


RULE_RESULTS: Memo[Cost] = Memo()

# (id of the rule's Cost, the network's input shape, ids of the inputs' fields) → (that
# Cost, those fields, the row's field, its record fields, its steps). An entry holds the
# objects its ids name, so no other object can take one of those ids while it stands.
RF_RESULTS: Memo[tuple[Any, ...]] = Memo()
