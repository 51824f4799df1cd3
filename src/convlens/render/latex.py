"""LaTeX: a ``tabular`` of the layers and totals (booktabs rules)."""

from __future__ import annotations

from convlens.core.analyze import Report
from convlens.render.columns import COLUMNS, NUMERIC, layer_cells, summary_lines, total_cells

_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "×": r"$\times$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def render_latex(report: Report) -> str:
    spec = "".join("r" if c in NUMERIC else "l" for c in COLUMNS)
    lines = [
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        " & ".join(escape(c.value) for c in COLUMNS) + r" \\",
        r"\midrule",
    ]
    for record in report.layers:
        cells = layer_cells(record)
        lines.append(" & ".join(escape(cells[c]) for c in COLUMNS) + r" \\")
    lines.append(r"\midrule")
    totals = total_cells(report)
    lines.append(" & ".join(escape(totals[c]) for c in COLUMNS) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines += [f"% {label}: {value}" for label, value in summary_lines(report)]
    return "\n".join(lines) + "\n"
