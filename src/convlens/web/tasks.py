"""What the worker processes compute for each endpoint: plain data in, plain data out.

Every function reads the request, runs the same analysis ``convlens analyze`` runs,
and returns text or JSON-ready values built by the existing renderers and column
vocabulary; no count is computed here. (The one thing the report lacks, the field of a
single output position, is walked from the rules' own index maps in ``receptive.py``.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from fractions import Fraction
from typing import Any

from convlens.api import make_options, parse_shape
from convlens.core.analyze import Report, analyze_network
from convlens.core.compare import compare_reports
from convlens.core.numbers import fmt, is_numeric, is_symbolic, to_json
from convlens.core.records import LayerRecord
from convlens.errors import ArgumentError, ConvlensError, SpecError
from convlens.explain.derivation import Section, derivation
from convlens.render.columns import (
    COLUMNS,
    NUMERIC,
    Column,
    layer_cells,
    pair_text,
    rf_status_text,
    rf_text,
    summary_lines,
    total_cells,
)
from convlens.web.limits import Limits
from convlens.web.mathtex import step_latex, value_latex
from convlens.web.parse import TEXT_SOURCE, Parsed, parse_description, symbols_seen
from convlens.web.receptive import layer_costs, position_spans
from convlens.web.request import Analysis

EXPORTS = ("json", "markdown", "latex", "csv")
CLOSED_FORM_SHARE = 0.5  # of the time limit, for the closed forms beside the numbers
COMPARISON_EXPORTS = ("json", "markdown")


class DesignError(ConvlensError):
    """An error in one of two compared designs: says which."""

    def __init__(self, design: str, error: ConvlensError):
        super().__init__(str(error))
        self.design = design
        self.error = error


def error_body(err: ConvlensError) -> dict[str, Any]:
    """``{"error", "line", "column"}``; line and column only where they point into the
    description sent (not into a built-in block), else null."""
    design = None
    if isinstance(err, DesignError):
        design, err = err.design, err.error
    if isinstance(err, SpecError) and err.position and err.position.file == TEXT_SOURCE:
        in_layer = f"in layer '{err.layer}': " if err.layer else ""
        body: dict[str, Any] = {
            "error": in_layer + err.message,
            "line": err.position.line,
            "column": err.position.column,
        }
    else:
        body = {"error": str(err), "line": None, "column": None}
    if design is not None:
        body["design"] = design
    return body


# -- building reports --------------------------------------------------------------------


def parse(req: Analysis, limits: Limits, strict: bool = True, text: str | None = None) -> Parsed:
    parsed = parse_description(req.description if text is None else text, req.set, limits, strict)
    if req.input is not None:
        network = replace(parsed.network, input_shape=parse_shape(req.input))
        parsed = Parsed(network, parsed.symbols)
    return parsed


def report_of(req: Analysis, parsed: Parsed) -> Report:
    options = make_options(req.batch, req.dtype, req.optimizer, req.convention, req.frozen)
    return analyze_network(parsed.network, options)


def build(req: Analysis, limits: Limits, strict: bool = True) -> tuple[Report, Parsed]:
    parsed = parse(req, limits, strict)
    return report_of(req, parsed), parsed


# -- endpoints -----------------------------------------------------------------------------


def analyze_json(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> str:
    """Exactly ``convlens analyze TEXT -f json`` with the same options."""
    from convlens.render.json import render_json

    return render_json(build(req, limits)[0])


def export(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> str:
    """What the page shows, in a renderer's format; with ``description_b``, the comparison."""
    fmt_name = extras.get("format") or "json"
    if extras.get("description_b") is not None:
        from convlens.render.compare import render_comparison_json, render_comparison_markdown

        if fmt_name not in COMPARISON_EXPORTS:
            raise ArgumentError(
                f"format: a comparison exports as {' or '.join(COMPARISON_EXPORTS)}, "
                f"got {fmt_name!r}"
            )
        comparison = compare_reports(*_two_reports(req, extras["description_b"], limits))
        render = render_comparison_json if fmt_name == "json" else render_comparison_markdown
        return render(comparison)
    from convlens.render import renderer

    if fmt_name not in EXPORTS:
        raise ArgumentError(f"format must be one of {', '.join(EXPORTS)}, got {fmt_name!r}")
    return renderer(fmt_name)(build(req, limits, strict=False)[0])


def workbench(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """The page's table: the terminal's cells with the numbers given, and beside each the
    closed form (the same description with every symbol left free) where they differ.

    While a symbol has no value the answer is only the symbols (``rows`` null): the page
    gives them starting values and asks again, so the table always holds numbers and a
    slow symbolic analysis never stands between the user and them.
    """
    try:
        parsed = parse(req, limits, strict=False)
    except SpecError:
        seen = symbols_seen(req.description, req.set, limits)
        if seen - set(req.set):  # e.g. 'repeat n:' stops the parse until n has a value
            return _symbols_only(seen, req)
        raise
    if parsed.symbols - set(req.set):
        return _symbols_only(parsed.symbols, req)
    report = report_of(req, parsed)
    closed: Report | None = None
    closed_status = "none"  # the description names no symbol
    if parsed.symbols:
        budget = limits.timeout_s * CLOSED_FORM_SHARE
        try:
            with time_budget(budget):
                closed = report_of(req, parse(replace(req, set={}), limits, strict=False))
            closed_status = "ok"
        except ConvlensError as err:  # e.g. 'k**2 … must be a number' somewhere
            closed_status = f"unavailable: {error_body(err)['error']}"
        except OverBudget:
            closed_status = f"unavailable: they took longer than {budget:g} s"
        if closed is not None and len(closed.layers) != len(report.layers):
            closed, closed_status = None, "unavailable: the layers depend on the values"
    rows = []
    for i, record in enumerate(report.layers):
        cells = layer_cells(record)
        rows.append(
            {
                "index": record.index,
                "name": record.name,
                "line": record.line,
                "cells": [cells[c] for c in COLUMNS],
                "closed": _closed_forms(closed.layers[i], cells) if closed else None,
                "output": to_json(list(record.output_shape)),
                "rf_status": rf_status_text(record),
            }
        )
    totals = total_cells(report)
    closed_summary = dict(summary_lines(closed)) if closed else {}
    return {
        "name": report.network.name,
        "input": to_json(list(report.network.input_shape)),
        "columns": [{"title": c.value, "numeric": c in NUMERIC} for c in COLUMNS],
        "rows": rows,
        "totals": {
            "cells": [totals[c] for c in COLUMNS],
            "closed": _closed_totals(closed, totals) if closed else None,
        },
        "summary": [
            {"label": label, "value": value, "closed": _differs(closed_summary.get(label), value)}
            for label, value in summary_lines(report)
        ],
        "warnings": list(report.warnings),
        "symbols": sorted(parsed.symbols),
        "unbound": sorted(parsed.symbols - set(req.set)),
        "closed_forms": closed_status,
    }


def explain(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """A layer's derivations (``layer``: number or name), or with no layer the training
    memory of the whole network — each step as text and as LaTeX."""
    report = build(req, limits, strict=False)[0]
    layer = extras.get("layer")
    if layer is None:
        section = derivation(report, None, "memory")[-1]
    else:
        section = derivation(report, layer, "all")[0]
    return _section(section)


def receptive_field(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """The input rows and columns that output ``(y, x)`` of ``layer`` depends on."""
    report, parsed = build(req, limits, strict=False)
    if extras.get("layer") is None:
        raise ArgumentError("'layer' is required: a layer number or name")
    record = _layer(report, extras["layer"])
    y, x = extras.get("y") or 0, extras.get("x") or 0
    shape_in, shape_out = report.network.input_shape, record.output_shape
    free = sorted(parsed.symbols - set(req.set))
    if free:
        raise ArgumentError(
            "the receptive field is drawn for numbers: give values to " + ", ".join(free)
        )
    if len(shape_in) != 3:  # a signal or a volume: the table has its numbers per axis
        raise ArgumentError(
            f"the receptive field is drawn on images (C, H, W); this input is {fmt(shape_in)}"
        )
    if len(shape_out) != 3:
        raise ArgumentError(f"layer '{record.name}' has no spatial output ({fmt(shape_out)})")
    for name, value, size in (("y", y, shape_out[1]), ("x", x, shape_out[2])):
        if value >= size:
            raise ArgumentError(f"'{name}' must be below the output size {size}, got {value}")
    result: dict[str, Any] = {
        "layer": {"index": record.index, "name": record.name, "kind": record.kind},
        "input": to_json(list(shape_in)),
        "output": to_json(list(shape_out)),
        "position": [y, x],
        "rf": to_json(record.rf),
        "jump": to_json(record.jump),
        "start": to_json(record.start),
        "status": rf_status_text(record),
        # as the terminal prints them (3/2 rather than 1.5)
        "text": {
            "rf": rf_text(record),
            "jump": pair_text(record.jump),
            "start": pair_text(record.start),
        },
        "rows": None,
        "columns": None,
    }
    spans = position_spans(parsed.network, layer_costs(parsed.network), record.name, y, x)
    if isinstance(spans, str):  # WHOLE_INPUT
        result["rows"], result["columns"] = [0, shape_in[1] - 1], [0, shape_in[2] - 1]
        return result
    if spans is None:
        return result
    result["rows"] = to_json([spans[0].lo, spans[0].hi])
    result["columns"] = to_json([spans[1].lo, spans[1].hi])
    return result


def compare(req: Analysis, extras: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """Design A (``description``) and B (``description_b``): totals with ratios B / A and
    the layers side by side, under the same options and symbol values."""
    if extras.get("description_b") is None:
        raise ArgumentError("'description_b' is required: the design to compare with")
    comparison = compare_reports(*_two_reports(req, extras["description_b"], limits))
    left, right = comparison.left, comparison.right
    side = ("layer", "kind", "output (C, H, W)", "params", "MACs")
    layers = []
    for i in range(max(len(left.layers), len(right.layers))):
        row = []
        for report in (left, right):
            cells = layer_cells(report.layers[i]) if i < len(report.layers) else None
            row.append([cells[Column(c)] if cells else "" for c in side])
        layers.append(row)
    return {
        "metrics": [
            {"metric": m, "a": _metric(m, a), "b": _metric(m, b), "ratio": _ratio(r)}
            for m, a, b, r in comparison.rows
        ],
        "layer_columns": list(side),
        "layers": layers,
        "convention": left.convention,
    }


def _symbols_only(symbols: frozenset[str], req: Analysis) -> dict[str, Any]:
    return {"symbols": sorted(symbols), "unbound": sorted(symbols - set(req.set)), "rows": None}


class OverBudget(Exception):
    """The optional part of an answer ran past its share of the time limit."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise ``OverBudget`` in this (main) thread after ``seconds``. The worker's own kill
    is the hard limit; this one lets the numbers come back without their closed forms."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def overrun(signum: int, frame: Any) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


TASKS: dict[str, Callable[[Analysis, Mapping[str, Any], Limits], Any]] = {
    "analyze": analyze_json,
    "workbench": workbench,
    "explain": explain,
    "receptive_field": receptive_field,
    "compare": compare,
    "export": export,
}


# -- helpers -------------------------------------------------------------------------------


def _two_reports(req: Analysis, text_b: str, limits: Limits) -> tuple[Report, Report]:
    reports = []
    for design, text in (("a", req.description), ("b", text_b)):
        try:
            reports.append(report_of(req, parse(req, limits, strict=False, text=text)))
        except ConvlensError as err:
            raise DesignError(design, err) from None
    return reports[0], reports[1]


_VALUES = {
    Column.OUTPUT: "output_shape",
    Column.PARAMS: "params",
    Column.MACS: "macs",
    Column.FLOPS: "flops",
    Column.RF: "rf",
    Column.JUMP: "jump",
    Column.ACTIVATIONS: "activation_bytes",
}


def _closed_forms(record: LayerRecord, numeric: Mapping[Column, str]) -> list[str | None]:
    symbolic = layer_cells(record)
    return [
        _latex(getattr(record, _VALUES[c]), c)
        if c in _VALUES and symbolic[c] != numeric[c]
        else None
        for c in COLUMNS
    ]


def _closed_totals(report: Report, numeric: Mapping[Column, str]) -> list[str | None]:
    symbolic = total_cells(report)
    ran = [r for r in report.layers if r.kind != "params_only"]
    values = {c: getattr(report.totals, a, None) for c, a in _VALUES.items()}
    values[Column.OUTPUT] = ran[-1].output_shape if ran else None
    return [
        _latex(values[c], c) if c in _VALUES and symbolic[c] != numeric[c] else None
        for c in COLUMNS
    ]


def _latex(value: Any, column: Column) -> str | None:
    """A closed form as LaTeX; None when it holds no symbol (nothing to show)."""
    parts = value if isinstance(value, tuple) else (value,)
    if value is None or not any(is_symbolic(v) for v in parts):  # None: no RF to show
        return None
    if column in (Column.RF, Column.JUMP) and len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return r" \times ".join(value_latex(v, operand=len(parts) > 1) for v in parts)


def _differs(closed: str | None, value: str) -> str | None:
    return closed if closed is not None and closed != value else None


def _section(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "steps": [
            {
                "topic": s.topic,
                "quantity": s.quantity,
                "text": s.text,
                "latex": step_latex(s),
                "note": s.note,
            }
            for s in section.steps
        ],
        # the sentences for numbers without steps (what they are, or why unavailable)
        "notes": list(section.notes),
    }


def _layer(report: Report, key: int | str) -> LayerRecord:
    try:
        return report.layer(key)
    except KeyError as err:
        raise ArgumentError(
            f"layer: {err.args[0]}; layers are numbered 1 to {len(report.layers)}"
        ) from None


def _metric(metric: str, value: Any) -> str:
    return pair_text(value) if metric == "rf" else fmt(value)


def _ratio(ratio: Any) -> str:
    """As the terminal (``1.234×``), with three significant digits below 0.01 where three
    decimals would print ``0.000×``."""
    if ratio is None:
        return ""
    if not is_numeric(ratio):
        return str(ratio)
    value = float(Fraction(ratio))
    return f"{value:.3f}×" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}×"
