"""Terminal table (Rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from convlens.core.analyze import Report
from convlens.render.columns import (
    COLUMNS,
    NUMERIC,
    Column,
    layer_cells,
    summary_lines,
    total_cells,
)

IDENTITY = (Column.INDEX, Column.NAME, Column.KIND, Column.OUTPUT)


def build_table(report: Report) -> Table:
    table = Table(title=f"{report.network.name}", title_justify="left", show_lines=False)
    rows = [layer_cells(record) for record in report.layers]
    totals = total_cells(report)
    for column in COLUMNS:
        if column in IDENTITY:  # never squeezed: the reader must see which layer it is
            width = max(len(cells[column]) for cells in [*rows, totals, {column: column.value}])
            table.add_column(column.value, no_wrap=True, min_width=width)
        else:  # long closed forms fold onto several lines instead
            table.add_column(
                column.value, justify="right" if column in NUMERIC else "left", overflow="fold"
            )
    for cells in rows:
        table.add_row(*(cells[c] for c in COLUMNS))
    table.add_section()
    table.add_row(*(totals[c] for c in COLUMNS), style="bold")
    return table


def render_table_text(report: Report, width: int = 160) -> str:
    console = Console(width=width, record=True, file=_Null(), color_system=None)
    print_report(report, console)
    return console.export_text()


def print_report(report: Report, console: Console, depth: int | None = None) -> None:
    console.print(build_table(report) if depth is None else build_module_table(report, depth))
    for label, value in summary_lines(report):
        console.print(
            f"[bold]{label}:[/bold] {value}", highlight=False, markup=True, soft_wrap=True
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def build_module_table(report: Report, depth: int) -> Table:
    """One row per module at ``depth`` (``--depth``), summing its layers."""
    from convlens.core.hierarchy import module_rows
    from convlens.core.numbers import fmt
    from convlens.render.columns import shape_text

    table = Table(title=f"{report.network.name} (depth {depth})", title_justify="left")
    for title, right in (
        ("#", False),
        ("module", False),
        ("type", False),
        ("layers", True),
        ("output (C, H, W)", False),
        ("params", True),
        ("MACs", True),
        ("FLOPs", True),
        ("activation bytes", True),
    ):
        table.add_column(title, justify="right" if right else "left", overflow="fold")
    rows = module_rows(report, depth)
    for i, row in enumerate(rows, start=1):
        table.add_row(
            str(i),
            row.name,
            row.module_type,
            str(row.layers),
            row.output_text or shape_text(row.output_shape),
            fmt(row.params),
            fmt(row.macs),
            fmt(row.flops),
            fmt(row.activation_bytes),
        )
    t = report.totals
    table.add_section()
    table.add_row(
        "",
        "total",
        "",
        str(len(report.layers)),
        "",
        fmt(t.params),
        fmt(t.macs),
        fmt(t.flops),
        fmt(t.activation_bytes),
        style="bold",
    )
    return table
