"""HTML: a table for Jupyter (``Report._repr_html_``) and ``--format html``."""

from __future__ import annotations

from html import escape

from convlens.core.analyze import Report
from convlens.render.columns import COLUMNS, NUMERIC, layer_cells, summary_lines, total_cells


def render_html(report: Report) -> str:
    def row(cells: dict, tag: str = "td") -> str:
        return (
            "<tr>"
            + "".join(
                f'<{tag} style="text-align:{"right" if c in NUMERIC else "left"}">'
                f"{escape(cells[c])}</{tag}>"
                for c in COLUMNS
            )
            + "</tr>"
        )

    head = "<tr>" + "".join(f"<th>{escape(c.value)}</th>" for c in COLUMNS) + "</tr>"
    body = "".join(row(layer_cells(r)) for r in report.layers)
    foot = row(total_cells(report), "th")
    summary = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in summary_lines(report))
    return (
        f"<div><h4>{escape(report.network.name)}</h4><table><thead>{head}</thead>"
        f"<tbody>{body}</tbody><tfoot>{foot}</tfoot></table><ul>{summary}</ul></div>\n"
    )
