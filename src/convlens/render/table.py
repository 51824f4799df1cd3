"""Terminal table (Rich): one row per layer, or per module with ``--depth``."""

from __future__ import annotations

from typing import Literal

from rich.cells import cell_len
from rich.console import Console

from convlens.core.analyze import Report
from convlens.render.box_table import BoxTable, TableColumn
from convlens.render.columns import Grid, grid, summary_lines
from convlens.render.text import NullFile


def build_table(report: Report, depth: int | None = None) -> BoxTable:
    return box_table(grid(report, depth))


def box_table(table: Grid) -> BoxTable:
    columns = []
    for index, (column, title) in enumerate(zip(table.columns, table.titles(), strict=True)):
        justify: Literal["left", "right"] = "right" if column in table.numeric else "left"
        if column in table.identity:  # never squeezed: the reader must see which row it is
            cells = [row[index] for row in table.rows] + [table.totals[index], title]
            width = max(cell_len(cell) for cell in cells)
            columns.append(TableColumn(title, justify, no_wrap=True, min_width=width))
        else:  # long closed forms fold onto several lines instead
            columns.append(TableColumn(title, justify))
    return BoxTable(table.title, columns, table.rows, table.totals)


def render_table_text(report: Report, depth: int | None = None, width: int = 160) -> str:
    console = Console(width=width, record=True, file=NullFile(), color_system=None)
    print_report(report, console, depth)
    return console.export_text()


def print_report(report: Report, console: Console, depth: int | None = None) -> None:
    console.print(build_table(report, depth))
    for label, value in summary_lines(report):
        console.print(
            f"[bold]{label}:[/bold] {value}", highlight=False, markup=True, soft_wrap=True
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
