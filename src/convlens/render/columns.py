"""The column vocabulary shared by every renderer, and the cell text of each column."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from convlens.core.analyze import Report
from convlens.core.hierarchy import ModuleRow, module_rows
from convlens.core.numbers import fmt
from convlens.core.receptive_field import RFStatus
from convlens.core.records import LayerRecord, Totals
from convlens.core.rules.common import AXIS_SYMBOLS, layout
from convlens.render.text import shape_text


class Column(StrEnum):
    INDEX = "#"
    NAME = "layer"
    KIND = "kind"
    OUTPUT = "output (C, H, W)"
    PARAMS = "params"
    MACS = "MACs"
    FLOPS = "FLOPs"
    RF = "RF"
    JUMP = "jump"
    ACTIVATIONS = "activation bytes"


COLUMNS: tuple[Column, ...] = tuple(Column)
NUMERIC = {Column.PARAMS, Column.MACS, Column.FLOPS, Column.ACTIVATIONS}


def pair_text(pair: Any) -> str:
    """One value per spatial axis: ``3`` when they agree (3×3, or 3×3×3 on a volume),
    else ``3×5`` (height × width), ``1×3×3`` (depth × height × width)."""
    if pair is None:
        return ""
    if all(v == pair[0] for v in pair):
        return fmt(pair[0], grouping=False) if pair else ""
    return "×".join(fmt(v, grouping=False) for v in pair)


def rf_text(record: LayerRecord | Totals) -> str:
    if record.rf_status is RFStatus.UNAVAILABLE:
        return "n/a"
    text = pair_text(record.rf)
    return f"{text} (all)" if record.rf_status is RFStatus.WHOLE_INPUT else text


def rf_status_text(record: LayerRecord | Totals) -> str:
    """``ok``, ``whole input``, … or ``unavailable: REASON`` (JSON's ``rf_status``)."""
    if record.rf_status is RFStatus.UNAVAILABLE:
        return f"{record.rf_status}: {record.rf_reason}"
    return str(record.rf_status)


def layer_cells(record: LayerRecord) -> dict[Column, str]:
    return {
        Column.INDEX: str(record.index),
        Column.NAME: record.name,
        Column.KIND: record.kind,
        Column.OUTPUT: shape_text(record.output_shape),
        Column.PARAMS: fmt(record.params),
        Column.MACS: fmt(record.macs),
        Column.FLOPS: fmt(record.flops),
        Column.RF: rf_text(record),
        Column.JUMP: pair_text(record.jump),
        Column.ACTIVATIONS: fmt(record.activation_bytes),
    }


def total_cells(report: Report) -> dict[Column, str]:
    t = report.totals
    ran = [r for r in report.layers if r.kind != "params_only"]
    last = ran[-1] if ran else None
    return {
        Column.INDEX: "",
        Column.NAME: "total",
        Column.KIND: "",
        Column.OUTPUT: shape_text(last.output_shape) if last else "",
        Column.PARAMS: fmt(t.params),
        Column.MACS: fmt(t.macs),
        Column.FLOPS: fmt(t.flops),
        Column.RF: rf_text(t),
        Column.JUMP: pair_text(t.jump),
        Column.ACTIVATIONS: fmt(t.activation_bytes),
    }


class ModuleColumn(StrEnum):
    """The columns of the ``--depth`` table: one row per module."""

    INDEX = "#"
    MODULE = "module"
    TYPE = "type"
    LAYERS = "layers"
    OUTPUT = "output (C, H, W)"
    PARAMS = "params"
    MACS = "MACs"
    FLOPS = "FLOPs"
    ACTIVATIONS = "activation bytes"


MODULE_NUMERIC = {
    ModuleColumn.LAYERS,
    ModuleColumn.PARAMS,
    ModuleColumn.MACS,
    ModuleColumn.FLOPS,
    ModuleColumn.ACTIVATIONS,
}


def module_cells(index: int, row: ModuleRow) -> dict[ModuleColumn, str]:
    return {
        ModuleColumn.INDEX: str(index),
        ModuleColumn.MODULE: row.name,
        ModuleColumn.TYPE: row.module_type,
        ModuleColumn.LAYERS: str(row.layers),
        ModuleColumn.OUTPUT: row.output_text or shape_text(row.output_shape),
        ModuleColumn.PARAMS: fmt(row.params),
        ModuleColumn.MACS: fmt(row.macs),
        ModuleColumn.FLOPS: fmt(row.flops),
        ModuleColumn.ACTIVATIONS: fmt(row.activation_bytes),
    }


def module_total_cells(report: Report) -> dict[ModuleColumn, str]:
    t = report.totals
    return {
        ModuleColumn.INDEX: "",
        ModuleColumn.MODULE: "total",
        ModuleColumn.TYPE: "",
        ModuleColumn.LAYERS: str(len(report.layers)),
        ModuleColumn.OUTPUT: "",
        ModuleColumn.PARAMS: fmt(t.params),
        ModuleColumn.MACS: fmt(t.macs),
        ModuleColumn.FLOPS: fmt(t.flops),
        ModuleColumn.ACTIVATIONS: fmt(t.activation_bytes),
    }


@dataclass(frozen=True)
class Grid:
    """A report as a table of text cells: what every tabular renderer draws.

    ``depth=None`` gives one row per layer; ``depth=N`` one row per module N levels deep.
    """

    title: str
    columns: tuple[StrEnum, ...]
    numeric: frozenset[StrEnum]
    identity: frozenset[StrEnum]  # which row it is: never squeezed in a terminal
    rows: list[list[str]]
    totals: list[str]
    headers: tuple[str, ...] = ()  # the columns' titles; the input's layout in "output"

    def titles(self) -> tuple[str, ...]:
        return self.headers or tuple(c.value for c in self.columns)


def column_headers(columns: tuple[StrEnum, ...], report: Report) -> tuple[str, ...]:
    """The columns' titles, the output's naming the input's layout: ``output (C, H, W)``,
    ``output (C, L)`` for a signal, ``output (C, D, H, W)`` for a volume or clip."""
    axes = len(report.network.input_shape) - 1
    output = f"output {layout(axes)}" if axes in AXIS_SYMBOLS else "output"
    return tuple(output if c in (Column.OUTPUT, ModuleColumn.OUTPUT) else c.value for c in columns)


def grid(report: Report, depth: int | None = None) -> Grid:
    if depth is None:
        return Grid(
            report.network.name,
            COLUMNS,
            frozenset(NUMERIC),
            frozenset((Column.INDEX, Column.NAME, Column.KIND, Column.OUTPUT)),
            [_ordered(layer_cells(record), COLUMNS) for record in report.layers],
            _ordered(total_cells(report), COLUMNS),
            column_headers(COLUMNS, report),
        )
    columns = tuple(ModuleColumn)
    rows = module_rows(report, depth)
    return Grid(
        f"{report.network.name} (depth {depth})",
        columns,
        frozenset(MODULE_NUMERIC),
        frozenset((ModuleColumn.INDEX, ModuleColumn.MODULE, ModuleColumn.TYPE)),
        [_ordered(module_cells(i, row), columns) for i, row in enumerate(rows, start=1)],
        _ordered(module_total_cells(report), columns),
        column_headers(columns, report),
    )


def _ordered(cells: Mapping[Any, str], columns: tuple[StrEnum, ...]) -> list[str]:
    return [cells[c] for c in columns]


def summary_lines(report: Report) -> list[tuple[str, str]]:
    """The totals below the table, as (label, value) pairs."""
    t, o = report.totals, report.options
    lines = [
        ("input", f"{shape_text(report.network.input_shape)} × batch {fmt(o.batch)}, {o.dtype}"),
        (
            "parameters",
            f"{fmt(t.params)} ({fmt(t.trainable_params)} trainable, "
            f"{fmt(t.frozen_params)} frozen) + {fmt(t.buffers)} buffer values",
        ),
        ("MACs", fmt(t.macs)),
        ("FLOPs", fmt(t.flops)),
        ("receptive field", _rf_summary(t)),
        ("peak activations (inference)", bytes_text(t.peak_activation_bytes)),
        (
            f"training memory ({o.optimizer})",
            f"{bytes_text(t.training_bytes)} = params {bytes_text(t.param_bytes)} + buffers "
            f"{bytes_text(t.buffer_bytes)} + grads {bytes_text(t.grad_bytes)} + optimizer "
            f"{bytes_text(t.optimizer_bytes)} + saved activations "
            f"{bytes_text(t.saved_activation_bytes)}",
        ),
    ]
    if t.connections is not None:
        lines.append(("connections", fmt(t.connections)))
    lines.append(("convention", report.convention))
    return lines


def _rf_summary(t: Totals) -> str:
    if t.rf_status is RFStatus.WHOLE_INPUT and t.rf is not None:
        sizes = "×".join(str(v) for v in t.rf)
        return f"the whole input ({sizes}) after global pooling, flatten or linear"
    if t.rf_status is RFStatus.UNAVAILABLE:
        return rf_status_text(t)
    return f"{pair_text(t.rf)}, jump {pair_text(t.jump)}, start {pair_text(t.start)}"


def bytes_text(value: Any) -> str:
    """Exact bytes plus a readable unit: ``1,048,576 B (1.00 MiB)``."""
    if not isinstance(value, int):
        return f"{fmt(value)} B"
    if value >= 1024 * BINARY_UNITS[0][1]:  # past YiB: a power of ten reads better
        return f"{value:,} B ({value:.2e} B)"
    for unit, size in BINARY_UNITS:
        if value >= size:
            return f"{value:,} B ({value / size:.2f} {unit})"
    return f"{value:,} B"


# Largest first: a figure is shown in the largest unit it reaches (1.00 ≤ x < 1024).
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
BINARY_UNITS = tuple((unit, 1024**power) for power, unit in reversed(list(enumerate(_UNITS, 1))))
