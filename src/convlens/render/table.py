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
            table.add_column(column.value, justify="right" if column in NUMERIC else "left",
                             overflow="fold")
    for cells in rows:
        table.add_row(*(cells[c] for c in COLUMNS))
    table.add_section()
    table.add_row(*(totals[c] for c in COLUMNS), style="bold")
    return table


def render_table_text(report: Report, width: int = 160) -> str:
    console = Console(width=width, record=True, file=_Null(), color_system=None)
    print_report(report, console)
    return console.export_text()


def print_report(report: Report, console: Console) -> None:
    console.print(build_table(report))
    for label, value in summary_lines(report):
        console.print(f"[bold]{label}:[/bold] {value}", highlight=False, markup=True,
                      soft_wrap=True)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass
