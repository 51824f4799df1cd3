"""Lines of working in text or Markdown: the document every detection renderer writes into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from convlens.reference.writer import num

FORMATS = ("text", "markdown")


def p4(value: float) -> str:
    """A ratio to four decimals (IoU, precision, recall, AP)."""
    return "nan" if np.isnan(value) else f"{value:.4f}"


def box(values: Sequence[float]) -> str:
    return "(" + ", ".join(num(v) for v in values) + ")"


@dataclass
class Doc:
    """Lines in one format; ``section`` and ``table`` know how each format spells them."""

    fmt: str
    lines: list[str] = field(default_factory=list)

    def title(self, text: str) -> None:
        self.lines += [f"## {text}" if self.fmt == "markdown" else text, ""]

    def section(self, text: str) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")
        if self.fmt == "markdown":
            self.lines += [f"### {text}", ""]
        else:
            self.lines += [text, "-" * len(text)]

    def line(self, text: str = "") -> None:
        self.lines.append(text)

    def item(self, text: str) -> None:
        self.lines.append(f"- {text}" if self.fmt == "markdown" else f"  {text}")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
    ) -> None:
        """Markdown, or aligned text: the ``left`` columns (names, reasons) left, numbers right."""
        if self.fmt == "markdown":
            self.lines.append("| " + " | ".join(headers) + " |")
            self.lines.append("|" + "|".join("---:" for _ in headers) + "|")
            self.lines += ["| " + " | ".join(r) + " |" for r in rows]
            self.lines.append("")
            return
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if i in left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        self.lines.append(line(headers))
        self.lines += [line(r) for r in rows]

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"
