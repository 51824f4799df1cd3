"""Writing numbers and matrices in text, Markdown or LaTeX: the pen every worked example
(``reference/render.py``) and detection's working (``detection/render/``) write with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlens.render.text import latex_escape

# Matrices with more entries than this are printed summarised (NumPy's "…" style).
FULL_MATRIX_LIMIT = 400


def num(value: float, fmt: str = "text") -> str:
    """12.0 → '12', 0.5 → '0.5', −∞ → '−∞'; six significant digits otherwise."""
    value = float(value)
    if np.isinf(value):
        sign = "-" if value < 0 else ""
        return f"{sign}\\infty" if fmt == "latex" else f"{sign}∞"
    if np.isnan(value):
        return "NaN"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


@dataclass
class Writer:
    """Collects lines in one format; each method knows how that format spells a thing."""

    fmt: str
    lines: list[str] = field(default_factory=list)
    in_list: bool = False
    open_lists: int = 0  # LaTeX: itemize environments open (nested items open another)

    def m(self, math: str) -> str:
        """Wrap a math fragment (already in this format's spelling)."""
        return f"${math}$" if self.fmt == "latex" else math

    def text(self, words: str) -> str:
        if self.fmt != "latex":
            return words
        return latex_escape(words)

    def num(self, value: float) -> str:
        return num(value, self.fmt)

    def factor(self, value: float) -> str:
        s = self.num(value)
        return f"({s})" if s.startswith("-") else s

    @property
    def times(self) -> str:
        return r" \cdot " if self.fmt == "latex" else "·"

    @property
    def odot(self) -> str:
        return r" \odot " if self.fmt == "latex" else " ⊙ "

    def sym(self, name: str, index: tuple[int, ...]) -> str:
        """y[0, 1] / y_{0,1}."""
        if self.fmt == "latex":
            name = name.replace("∂L/∂", r"\partial L/\partial ")
            return f"{name}_{{{','.join(map(str, index))}}}"
        return f"{name}[{', '.join(map(str, index))}]"

    def inline(self, a: np.ndarray) -> str:
        """A small matrix on one line: [1 2; 3 4] or a bmatrix."""
        a = np.atleast_2d(a)
        if self.fmt == "latex":
            body = r" \\ ".join(" & ".join(self.num(v) for v in row) for row in a)
            return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"
        inner = "; ".join(" ".join(self.num(v) for v in row) for row in a)
        return f"`[{inner}]`" if self.fmt == "markdown" else f"[{inner}]"

    def heading(self, title: str) -> None:
        self.end_list()
        if self.fmt == "markdown":
            self.lines += [f"### {title}", ""]
        elif self.fmt == "latex":
            self.lines += [rf"\paragraph{{{self.text(title)}}}", ""]
        else:
            self.lines += ["", title, "-" * len(title)]

    def para(self, line: str) -> None:
        self.end_list()
        self.lines += [line, ""] if self.fmt != "text" else [line]

    def item(self, line: str, depth: int = 0) -> None:
        if self.fmt == "latex":
            self.in_list = True
            while self.open_lists < depth + 1:
                self.lines.append("  " * self.open_lists + r"\begin{itemize}")
                self.open_lists += 1
            while self.open_lists > depth + 1:
                self.open_lists -= 1
                self.lines.append("  " * self.open_lists + r"\end{itemize}")
            self.lines.append("  " * self.open_lists + rf"\item {line}")
        elif self.fmt == "markdown":
            self.in_list = True
            self.lines.append("  " * depth + f"- {line}")
        else:
            self.lines.append("  " * (depth + 1) + line)

    def end_list(self) -> None:
        if self.in_list:
            while self.open_lists:
                self.open_lists -= 1
                self.lines.append("  " * self.open_lists + r"\end{itemize}")
            self.lines.append("")
            self.in_list = False

    def matrix(self, label: str, a: np.ndarray) -> None:
        self.end_list()
        a = np.atleast_2d(np.asarray(a, dtype=float))
        if a.size > FULL_MATRIX_LIMIT:
            body = np.array2string(a, precision=4, threshold=FULL_MATRIX_LIMIT, edgeitems=3)
            if self.fmt == "latex":
                self.lines += [
                    rf"{self.text(label)}:",
                    r"\begin{verbatim}",
                    body,
                    r"\end{verbatim}",
                    "",
                ]
            elif self.fmt == "markdown":
                self.lines += [f"**{label}**", "", "```text", body, "```", ""]
            else:
                self.lines += [f"{label}:", *("  " + ln for ln in body.splitlines())]
            return
        if self.fmt == "latex":
            self.lines += [rf"\[ \text{{{self.text(label)}}} = {self.inline(a)} \]", ""]
            return
        cells = [[self.num(v) for v in row] for row in a]
        width = max(len(c) for row in cells for c in row)
        grid = ["[ " + "  ".join(c.rjust(width) for c in row) + " ]" for row in cells]
        if self.fmt == "markdown":
            self.lines += [f"**{label}**", "", "```text", *grid, "```", ""]
        else:
            self.lines += [f"{label}:", *("  " + ln for ln in grid)]

    def render(self) -> str:
        self.end_list()
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"
