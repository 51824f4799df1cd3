"""Frozen records built quickly (see ``quick``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class _Fields:
    """What ``quick`` needs to know of a record class."""

    names: frozenset[str]
    required: frozenset[str]  # the fields without a default
    constants: dict[str, Any]  # fields with a plain default → it
    factories: dict[str, Callable[[], Any]]  # fields with a default factory → it


_FIELDS_OF: dict[type, _Fields] = {}


def quick(cls: type[R], /, **values: Any) -> R:
    """``cls(**values)`` for a frozen record without ``__post_init__``, filled in one
    ``__dict__`` update. Python 3.11's generated ``__init__`` of a frozen dataclass sets each
    field through ``object.__setattr__`` (29 calls for a ``LayerRecord``), paid for every
    row of every analysis. The record is equal to, and indistinguishable from, the one
    ``cls(**values)`` makes (``tests/core/test_frozen.py``); fields left out take their
    defaults, and an unknown or missing name is refused as ``__init__`` would refuse it."""
    known = _FIELDS_OF.get(cls)
    if known is None:
        known = _FIELDS_OF[cls] = _fields_of(cls)
    if not values.keys() <= known.names:
        unknown = sorted(values.keys() - known.names)
        raise TypeError(f"{cls.__name__}() got unexpected fields {unknown}")
    record = object.__new__(cls)
    state = record.__dict__
    if len(values) != len(known.names):  # some left out: defaults first, then the values
        missing = known.required - values.keys()
        if missing:
            raise TypeError(f"{cls.__name__}() is missing the fields {sorted(missing)}")
        state.update(known.constants)
        for name, make in known.factories.items():
            if name not in values:
                state[name] = make()
    state.update(values)
    return record


def _fields_of(cls: type) -> _Fields:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or hasattr(cls, "__post_init__"):
        raise TypeError(f"quick() builds frozen records without __post_init__, not {cls}")
    constants: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    required = []
    for f in fields(cls):
        if f.default is not MISSING:
            constants[f.name] = f.default
        elif f.default_factory is not MISSING:
            factories[f.name] = f.default_factory
        else:
            required.append(f.name)
    names = frozenset(f.name for f in fields(cls))
    return _Fields(names, frozenset(required), constants, factories)
