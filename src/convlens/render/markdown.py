"""Markdown: a pipe table and a totals list."""

from __future__ import annotations

from convlens.core.analyze import Report
from convlens.render.columns import COLUMNS, NUMERIC, layer_cells, summary_lines, total_cells


def _cell(text: str) -> str:
    """SymPy text (``NF*k**2``) goes in code spans so Markdown does not read emphasis."""
    if "*" in text:
        return f"`{text}`"
    return text.replace("|", "\\|")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: Report) -> str:
    lines = [
        f"### {report.network.name}",
        "",
        _row([c.value for c in COLUMNS]),
        "|" + "|".join("---:" if c in NUMERIC else "---" for c in COLUMNS) + "|",
    ]
    for record in report.layers:
        cells = layer_cells(record)
        lines.append(_row([_cell(cells[c]) for c in COLUMNS]))
    totals = total_cells(report)
    lines.append(_row([f"**{_cell(totals[c])}**" if totals[c] else "" for c in COLUMNS]))
    lines.append("")
    lines += [f"- **{label}**: {value}" for label, value in summary_lines(report)]
    lines += [f"- ⚠ {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"
