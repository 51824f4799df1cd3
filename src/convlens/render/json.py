"""JSON: the stable machine interface (documented in docs/json.md).

Integers stay integers; symbolic values are strings in SymPy syntax.
"""

from __future__ import annotations

import json
from typing import Any

from convlens.core.analyze import Report
from convlens.core.hierarchy import ModuleRow, module_rows
from convlens.core.numbers import to_json
from convlens.core.records import LayerRecord
from convlens.render.columns import rf_status_text
from convlens.render.text import shape_text

SCHEMA_VERSION = 1


def layer_to_dict(r: LayerRecord) -> dict[str, Any]:
    return {
        "index": r.index,
        "name": r.name,
        "kind": r.kind,
        "line": r.line,
        "inputs": list(r.inputs),
        "output_shape": to_json(list(r.output_shape)),
        "params": to_json(r.params),
        "trainable_params": to_json(r.trainable_params),
        "frozen_params": to_json(r.frozen_params),
        "buffers": to_json(r.buffers),
        "macs": to_json(r.macs),
        "flops": to_json(r.flops),
        "connections": to_json(r.connections),
        "rf": to_json(r.rf),
        "jump": to_json(r.jump),
        "start": to_json(r.start),
        "rf_status": rf_status_text(r),
        "activation_bytes": to_json(r.activation_bytes),
        "saved_activation_bytes": to_json(r.saved_bytes),
        "warnings": list(r.warnings),
    }


def module_to_dict(row: ModuleRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.module_type,
        "layers": row.layers,
        "first_layer": row.first_layer,
        "last_layer": row.last_layer,
        "output_shape": to_json(list(row.output_shape)),
        # a traced module's output when it is not one tensor (a tuple, a dict), else null
        "output": row.output_text
        if row.output_text not in ("", shape_text(row.output_shape))
        else None,
        "params": to_json(row.params),
        "trainable_params": to_json(row.trainable_params),
        "frozen_params": to_json(row.frozen_params),
        "buffers": to_json(row.buffers),
        "macs": to_json(row.macs),
        "flops": to_json(row.flops),
        "activation_bytes": to_json(row.activation_bytes),
        "saved_activation_bytes": to_json(row.saved_bytes),
    }


def report_to_dict(report: Report, depth: int | None = None) -> dict[str, Any]:
    """The report as JSON values; ``depth`` adds ``modules``, the layers grouped by module."""
    t, o = report.totals, report.options
    modules = {}
    if depth is not None:
        rows = [module_to_dict(row) for row in module_rows(report, depth)]
        modules = {"modules": {"depth": depth, "rows": rows}}
    return {
        "schema_version": SCHEMA_VERSION,
        "name": report.network.name,
        "source": report.network.source,
        "input": to_json(list(report.network.input_shape)),
        "batch": to_json(o.batch),
        "dtype": o.dtype,
        "optimizer": o.optimizer,
        "layers": [layer_to_dict(r) for r in report.layers],
        **modules,
        "totals": {
            "params": to_json(t.params),
            "trainable_params": to_json(t.trainable_params),
            "frozen_params": to_json(t.frozen_params),
            "buffers": to_json(t.buffers),
            "macs": to_json(t.macs),
            "flops": to_json(t.flops),
            "connections": to_json(t.connections),
            "rf": to_json(t.rf),
            "jump": to_json(t.jump),
            "start": to_json(t.start),
            "rf_status": rf_status_text(t),
            "activation_bytes": to_json(t.activation_bytes),
            "peak_activation_bytes": to_json(t.peak_activation_bytes),
            "param_bytes": to_json(t.param_bytes),
            "buffer_bytes": to_json(t.buffer_bytes),
            "grad_bytes": to_json(t.grad_bytes),
            "optimizer_bytes": to_json(t.optimizer_bytes),
            "saved_activation_bytes": to_json(t.saved_activation_bytes),
            "training_bytes": to_json(t.training_bytes),
            "convention": report.convention,
            "flops_convention": o.convention.value,
        },
        "warnings": list(report.warnings),
    }


def render_json(report: Report, indent: int = 2, depth: int | None = None) -> str:
    return json.dumps(report_to_dict(report, depth), indent=indent, ensure_ascii=False) + "\n"
