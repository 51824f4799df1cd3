"""CSV: one row per layer (every field of the JSON layers, in the same order) and a totals
row; with ``depth``, one row per module instead. Plain integers, no separators."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from convlens.core.analyze import Report
from convlens.core.hierarchy import module_rows
from convlens.render.json import layer_to_dict, module_to_dict, report_to_dict

# Lists of sizes (shapes, rf, jump, start) read as 3x224x224; lists of names or sentences
# are joined with "; ".
TEXT_LISTS = frozenset({"inputs", "warnings"})


def _cell(field: str, value: object) -> str:
    if isinstance(value, list):
        return ("; " if field in TEXT_LISTS else "x").join(str(v) for v in value)
    return "" if value is None else str(value)


def _write(rows: Sequence[dict[str, Any]], totals: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = list(rows[0]) if rows else list(totals)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_cell(f, row[f]) for f in fields])
    writer.writerow([_cell(f, totals.get(f, "total" if f == "name" else None)) for f in fields])
    return out.getvalue()


def render_csv(report: Report, depth: int | None = None) -> str:
    totals = report_to_dict(report)["totals"]
    if depth is not None:
        modules = [module_to_dict(row) for row in module_rows(report, depth)]
        return _write(modules, {**totals, "layers": len(report.layers)})
    return _write([layer_to_dict(record) for record in report.layers], totals)
