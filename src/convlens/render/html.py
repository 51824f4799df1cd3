"""HTML: a table for Jupyter (``Report._repr_html_``) and ``--format html``."""

from __future__ import annotations

from html import escape

from convlens.core.analyze import Report
from convlens.render.columns import grid, summary_lines


def render_html(report: Report, depth: int | None = None) -> str:
    table = grid(report, depth)
    aligns = ["right" if c in table.numeric else "left" for c in table.columns]

    def row(cells: list[str], tag: str = "td") -> str:
        return (
            "<tr>"
            + "".join(
                f'<{tag} style="text-align:{align}">{escape(cell)}</{tag}>'
                for cell, align in zip(cells, aligns, strict=True)
            )
            + "</tr>"
        )

    head = "<tr>" + "".join(f"<th>{escape(title)}</th>" for title in table.titles()) + "</tr>"
    body = "".join(row(cells) for cells in table.rows)
    foot = row(table.totals, "th")
    summary = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in summary_lines(report))
    return (
        f"<div><h4>{escape(table.title)}</h4><table><thead>{head}</thead>"
        f"<tbody>{body}</tbody><tfoot>{foot}</tfoot></table><ul>{summary}</ul></div>\n"
    )
