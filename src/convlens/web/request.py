"""Request bodies → checked values, before any analysis runs (malformed input → 400).

Each field is checked for its type here; values the analyser knows better (a dtype
name, a convention) are checked by ``convlens.api.make_options``, as on the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class BadRequest(Exception):
    """A request the server refuses before analysing: ``status`` and one clear line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Analysis:
    """What ``convlens analyze TEXT -f json`` takes, as the API's JSON fields."""

    description: str
    set: Mapping[str, int] = field(default_factory=dict)  # --set k=3,NF=32
    convention: str = "full"
    batch: int = 1
    dtype: str = "float32"
    optimizer: str = "adam"
    input: str | None = None  # --input 3x224x224
    frozen: tuple[str, ...] = ()  # --frozen PATTERN (repeatable)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string, got {_kind(value)}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"'{name}' must be a positive integer, got {json.dumps(value)}")
    return value


def _natural(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"'{name}' must be a whole number ≥ 0, got {json.dumps(value)}")
    return value


def _bindings(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be an object of symbol values, e.g. {{\"k\": 3}}")
    for key, number in value.items():
        if not key.isidentifier():
            raise BadRequest(f"'{name}': {json.dumps(key)} is not a symbol name")
        if not isinstance(number, int) or isinstance(number, bool):
            raise BadRequest(
                f"'{name}': the value of {key} must be an integer, got {json.dumps(number)}"
            )
    return dict(value)


def _patterns(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{name}' must be a list of layer-name patterns")
    return tuple(value)


def _optional_text(name: str, value: Any) -> str | None:
    return None if value is None else _text(name, value)


def _layer(name: str, value: Any) -> int | str | None:
    if value is None or isinstance(value, str):
        return value
    return _positive_int(name, value)


Check = Callable[[str, Any], Any]
ANALYSIS_FIELDS: dict[str, Check] = {
    "description": _text,
    "set": _bindings,
    "convention": _text,
    "batch": _positive_int,
    "dtype": _text,
    "optimizer": _text,
    "input": _optional_text,
    "frozen": _patterns,
}
# Further fields of the endpoints beside /api/analyze.
LAYER: dict[str, Check] = {"layer": _layer}
POSITION: dict[str, Check] = {"layer": _layer, "y": _natural, "x": _natural}
SECOND_DESCRIPTION: dict[str, Check] = {"description_b": _text}
EXPORT_FORMAT: dict[str, Check] = {"format": _text}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong and where."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the request body must be UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise BadRequest(
            f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {_kind(body)}")
    return body


def read_analysis(
    body: Mapping[str, Any], extra: Mapping[str, Check] | None = None
) -> tuple[Analysis, dict[str, Any]]:
    """The analysis fields and the endpoint's further fields (absent ones are None)."""
    extra = extra or {}
    known = {**ANALYSIS_FIELDS, **extra}
    unknown = [k for k in body if k not in known]
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}'; the fields are: {', '.join(known)}")
    if "description" not in body:
        raise BadRequest("'description' is required: the text of a .cnn description")
    values = {k: ANALYSIS_FIELDS[k](k, v) for k, v in body.items() if k in ANALYSIS_FIELDS}
    extras = {k: check(k, body[k]) if k in body else None for k, check in extra.items()}
    return Analysis(**values), extras


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )
