"""The public Python API: ``analyze``, ``explain`` and ``compare``.

``source`` may be a path to a ``.cnn`` file, description text, or a ``Network``.
Symbols are given as keyword arguments: ``analyze("colour.cnn", k=3, NF=32)``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from convlens.core.analyze import Options, Report, analyze_network
from convlens.core.conventions import DTYPE_BYTES, OPTIMIZER_STATES, Convention
from convlens.core.records import Network
from convlens.errors import ArgumentError


def load_network(source: Any, bindings: dict[str, Any] | None = None,
                 strict: bool = True) -> Network:
    """A ``Network`` from a path, description text, or a ``Network`` itself."""
    from convlens.spec import parse_file, parse_text

    if isinstance(source, Network):
        return source
    if isinstance(source, Path):
        return parse_file(source, bindings, strict)
    if isinstance(source, str):
        if "\n" in source or source.lstrip().startswith("input "):
            return parse_text(source, "<text>", "network", bindings, strict)
        return parse_file(source, bindings, strict)
    raise ArgumentError(f"cannot analyse a {type(source).__name__}: give a .cnn path, "
                        "description text or a Network")


def parse_shape(text: str) -> tuple[int, ...]:
    """``3x224x224`` → (3, 224, 224), with a clear error."""
    try:
        dims = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ArgumentError(f"--input must look like 3x224x224 (C x H x W), got {text!r}") from None
    if len(dims) != 3 or any(d <= 0 for d in dims):
        raise ArgumentError(f"--input must be three positive sizes C x H x W, got {text!r}")
    return dims


def make_options(batch: Any = 1, dtype: str = "float32", optimizer: str = "adam",
                 convention: str | Convention = Convention.FULL,
                 frozen: tuple[str, ...] | list[str] = ()) -> Options:
    if dtype not in DTYPE_BYTES:
        raise ArgumentError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if optimizer not in OPTIMIZER_STATES:
        raise ArgumentError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, "
                            f"got {optimizer!r}")
    try:
        convention = Convention(convention)
    except ValueError:
        raise ArgumentError(f"convention must be one of {', '.join(c.value for c in Convention)}"
                            f", got {convention!r}") from None
    if isinstance(batch, int) and batch <= 0:
        raise ArgumentError(f"batch must be positive, got {batch}")
    return Options(batch=batch, dtype=dtype, optimizer=optimizer, convention=convention,
                   frozen=tuple(frozen))


def analyze(source: Any, input: tuple[int, ...] | str | None = None, batch: int = 1,
            dtype: str = "float32", optimizer: str = "adam", convention: str = "full",
            frozen: tuple[str, ...] | list[str] = (), **symbols: Any) -> Report:
    """Analyse a description: per-layer shapes, parameters, MACs/FLOPs, RF and memory."""
    network = load_network(source, symbols)
    if input is not None:
        shape = parse_shape(input) if isinstance(input, str) else tuple(input)
        network = replace(network, input_shape=shape)
    return analyze_network(network, make_options(batch, dtype, optimizer, convention, frozen))


def explain(source: Any, layer: int | str | None = None, what: str = "all",
            **kwargs: Any) -> list[Any]:
    """The worked steps behind a layer's numbers (or the memory totals)."""
    from convlens.explain.derivation import derivation

    report = source if isinstance(source, Report) else analyze(source, **kwargs)
    return derivation(report, layer, what)


def compare(a: Any, b: Any, **kwargs: Any) -> Any:
    """Two designs side by side, with ratios of their totals."""
    from convlens.core.compare import compare_reports

    left = a if isinstance(a, Report) else analyze(a, **kwargs)
    right = b if isinstance(b, Report) else analyze(b, **kwargs)
    return compare_reports(left, right)
