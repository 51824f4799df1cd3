"""CSV: one row per layer, then a totals row; plain integers (no separators)."""

from __future__ import annotations

import csv
import io

from convlens.core.analyze import Report
from convlens.render.json import layer_to_dict, report_to_dict

FIELDS = (
    "index",
    "name",
    "kind",
    "line",
    "output_shape",
    "params",
    "trainable_params",
    "frozen_params",
    "buffers",
    "macs",
    "flops",
    "rf",
    "jump",
    "start",
    "activation_bytes",
    "saved_activation_bytes",
)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return "" if value is None else str(value)


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in report.layers:
        row = layer_to_dict(record)
        writer.writerow([_cell(row[f]) for f in FIELDS])
    totals = report_to_dict(report)["totals"]
    writer.writerow([_cell(totals.get(f, "total" if f == "name" else None)) for f in FIELDS])
    return out.getvalue()
