"""LaTeX: a ``tabular`` of the layers (or modules, with ``depth``) and totals (booktabs)."""

from __future__ import annotations

from convlens.core.analyze import Report
from convlens.render.columns import grid, summary_lines
from convlens.render.text import latex_escape


def render_latex(report: Report, depth: int | None = None) -> str:
    table = grid(report, depth)
    spec = "".join("r" if c in table.numeric else "l" for c in table.columns)
    lines = [
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        " & ".join(latex_escape(title) for title in table.titles()) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in table.rows]
    lines.append(r"\midrule")
    lines.append(" & ".join(latex_escape(cell) for cell in table.totals) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines += [f"% {label}: {value}" for label, value in summary_lines(report)]
    return "\n".join(lines) + "\n"
