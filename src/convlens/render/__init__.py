"""Renderers: they only read a ``Report`` and share one column vocabulary."""

from __future__ import annotations

from collections.abc import Callable

FORMATS = ("table", "markdown", "json", "csv", "latex", "html")


def renderer(fmt: str) -> Callable[..., str]:
    """The renderer of ``fmt``: ``renderer(fmt)(report, depth=None)`` → text.

    ``depth=N`` groups the layers into modules N levels deep: the table, Markdown, LaTeX,
    HTML and CSV show one row per module; JSON keeps every layer and adds ``modules``.
    """
    from convlens.render.csv import render_csv
    from convlens.render.html import render_html
    from convlens.render.json import render_json
    from convlens.render.latex import render_latex
    from convlens.render.markdown import render_markdown
    from convlens.render.table import render_table_text

    table: dict[str, Callable[..., str]] = {
        "table": render_table_text,
        "markdown": render_markdown,
        "json": render_json,
        "csv": render_csv,
        "latex": render_latex,
        "html": render_html,
    }
    return table[fmt]
