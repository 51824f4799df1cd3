"""Rendering of a ``Comparison`` (terminal, Markdown, JSON)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from rich.console import Console
from rich.table import Table

from convlens.core.compare import Comparison
from convlens.core.numbers import fmt, is_numeric, to_json
from convlens.render.columns import Column, layer_cells, pair_text
from convlens.render.json import report_to_dict
from convlens.render.text import NullFile


def _value(metric: str, value: Any) -> str:
    return pair_text(value) if metric == "rf" else fmt(value)


def _ratio(ratio: Any) -> str:
    if ratio is None:
        return ""
    if is_numeric(ratio):
        return f"{float(Fraction(ratio)):.3f}×"
    return str(ratio)


def comparison_table(c: Comparison) -> Table:
    table = Table(title=f"{c.left.network.name} vs {c.right.network.name}", title_justify="left")
    for name, justify in (
        ("metric", "left"),
        (c.left.network.name, "right"),
        (c.right.network.name, "right"),
        ("B / A", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for metric, a, b, ratio in c.rows:
        table.add_row(metric, _value(metric, a), _value(metric, b), _ratio(ratio))
    return table


def layers_table(c: Comparison) -> Table:
    table = Table(title="layers side by side", title_justify="left")
    for side in ("A", "B"):
        for col in ("layer", "output", "params", "MACs"):
            table.add_column(
                f"{side} {col}", justify="right" if col in ("params", "MACs") else "left"
            )
    n = max(len(c.left.layers), len(c.right.layers))
    for i in range(n):
        row = []
        for report in (c.left, c.right):
            if i < len(report.layers):
                cells = layer_cells(report.layers[i])
                row += [
                    f"{cells[Column.NAME]} ({cells[Column.KIND]})",
                    cells[Column.OUTPUT],
                    cells[Column.PARAMS],
                    cells[Column.MACS],
                ]
            else:
                row += ["", "", "", ""]
        table.add_row(*row)
    return table


def render_comparison_text(c: Comparison, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None, file=NullFile())
    console.print(comparison_table(c))
    console.print(layers_table(c))
    console.print(f"convention: {c.left.convention}", highlight=False, soft_wrap=True)
    return console.export_text()


def render_comparison_markdown(c: Comparison) -> str:
    lines = [
        f"| metric | {c.left.network.name} | {c.right.network.name} | B / A |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {_value(m, a)} | {_value(m, b)} | {_ratio(r)} |" for m, a, b, r in c.rows]
    return "\n".join(lines) + f"\n\nconvention: {c.left.convention}\n"


def render_comparison_json(c: Comparison) -> str:
    return (
        json.dumps(
            {
                "left": report_to_dict(c.left),
                "right": report_to_dict(c.right),
                "ratios": {
                    m: to_json(r) if r is None or not is_numeric(r) else float(Fraction(r))
                    for m, _, _, r in c.rows
                    if m != "rf"
                },
            },
            indent=2,
        )
        + "\n"
    )
