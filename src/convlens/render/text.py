"""Text formatting shared by every front of convlens that writes for people: the terminal
and document renderers, ``explain`` and the reference operators' worked examples.

One spelling of a shape (``64×56×56`` in tables, ``(64, 56, 56)`` in derivations) and one
escaping per target (LaTeX, Markdown), so a change reaches every output at once.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from convlens.core.numbers import fmt

# Characters LaTeX reads as commands, and the Unicode convlens writes, in LaTeX's spelling.
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "∂": r"$\partial$",
    "→": r"$\to$",
    "⊙": r"$\odot$",
    "Σ": r"$\Sigma$",
    "×": r"$\times$",
    "…": r"\ldots{}",
    "·": r"$\cdot$",
    "ᵀ": r"$^T$",
    "−": "-",
    "∞": r"$\infty$",
    "μ": r"$\mu$",
    "σ": r"$\sigma$",
    "²": r"$^2$",
    "γ": r"$\gamma$",
    "β": r"$\beta$",
    "ε": r"$\varepsilon$",
    "√": r"$\surd$",
    "≤": r"$\le$",
    "|": r"\textbar{}",
}


def latex_escape(text: str) -> str:
    """Text for a LaTeX document, outside math mode."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def markdown_cell(text: str) -> str:
    """A Markdown table cell: SymPy text (``NF*k**2``) in a code span so ``*`` is not read
    as emphasis; a pipe escaped so it does not end the cell."""
    if "*" in text:
        return f"`{text}`"
    return text.replace("|", "\\|")


def shape_text(shape: Iterable[Any], empty: str = "") -> str:
    """``(64, 56, 56)`` → ``64×56×56``, as tables show a shape (``empty`` for no axes)."""
    text = "×".join(fmt(d, grouping=False) for d in shape)
    return text or empty


def shape_tuple(shape: Iterable[Any]) -> str:
    """``(64, 56, 56)`` as derivations write it, symbols included: ``(NF, H - 2, W - 2)``."""
    return "(" + ", ".join(fmt(d, grouping=False) for d in shape) + ")"


class NullFile(io.StringIO):
    """A text file that keeps nothing: a recording Rich console's output goes nowhere
    (the recording is what is exported)."""

    def write(self, text: str) -> int:
        return len(text)
