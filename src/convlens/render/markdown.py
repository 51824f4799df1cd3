"""Markdown: a pipe table (layers, or modules with ``depth``) and a totals list."""

from __future__ import annotations

from convlens.core.analyze import Report
from convlens.render.columns import grid, summary_lines
from convlens.render.text import markdown_cell


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: Report, depth: int | None = None) -> str:
    table = grid(report, depth)
    lines = [
        f"### {table.title}",
        "",
        _row(list(table.titles())),
        "|" + "|".join("---:" if c in table.numeric else "---" for c in table.columns) + "|",
    ]
    lines += [_row([markdown_cell(cell) for cell in row]) for row in table.rows]
    lines.append(_row([f"**{markdown_cell(cell)}**" if cell else "" for cell in table.totals]))
    lines.append("")
    lines += [f"- **{label}**: {value}" for label, value in summary_lines(report)]
    lines += [f"- ⚠ {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"
