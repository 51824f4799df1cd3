"""Select the steps behind a report's numbers and render them."""

from __future__ import annotations

from dataclasses import dataclass

from convlens.core.analyze import Report
from convlens.core.numbers import fmt
from convlens.core.records import LayerRecord
from convlens.core.steps import Step
from convlens.errors import ArgumentError

TOPICS = ("shape", "params", "macs", "flops", "rf", "memory", "all")
EXPLAIN_FORMATS = ("text", "markdown", "latex")


@dataclass(frozen=True)
class Section:
    title: str
    steps: tuple[Step, ...]


def derivation(report: Report, layer: int | str | None = None, what: str = "all") -> list[Section]:
    if what not in TOPICS:
        raise ArgumentError(f"--what must be one of {', '.join(TOPICS)}, got {what!r}")
    if layer is None:
        records = list(report.layers)
    else:
        try:
            records = [report.layer(int(layer) if str(layer).isdigit() else layer)]
        except KeyError as err:
            raise ArgumentError(
                f"--layer: {err.args[0]}; layers are numbered 1 to {len(report.layers)}"
            ) from None
    sections = []
    for record in records:
        steps = tuple(s for s in record.steps if what in ("all", s.topic))
        if steps or layer is not None:
            sections.append(Section(_title(record), steps))
    if what in ("memory", "all") and layer is None:
        sections.append(Section("training memory (whole network)", report.memory_steps))
    return sections


def _title(r: LayerRecord) -> str:
    where = f", line {r.line}" if r.line else ""
    shapes = ", ".join(_shape(s) for s in r.input_shapes)
    return f"layer {r.index} '{r.name}' ({r.kind}{where}): {shapes} → {_shape(r.output_shape)}"


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(fmt(d, grouping=False) for d in shape) + ")"


def render_sections(sections: list[Section], fmt_name: str = "text") -> str:
    if fmt_name not in EXPLAIN_FORMATS:
        raise ArgumentError(f"--format must be one of {', '.join(EXPLAIN_FORMATS)}")
    lines: list[str] = []
    for section in sections:
        if fmt_name == "text":
            lines.append(section.title)
            lines += [
                f"  {s.quantity}: {s.text}" + (f"   ({s.note})" if s.note else "")
                for s in section.steps
            ] or ["  (nothing to derive for this layer)"]
        elif fmt_name == "markdown":
            lines.append(f"**{section.title}**\n")
            lines += [
                f"- {s.quantity}: `{s.text}`" + (f" — {s.note}" if s.note else "")
                for s in section.steps
            ]
        else:
            lines.append(r"\paragraph{" + _latex_text(section.title) + "}")
            lines += [r"\[ " + latex_math(s) + r" \]" for s in section.steps]
        lines.append("")
    return "\n".join(lines)


def _latex_text(text: str) -> str:
    from convlens.render.latex import escape

    return escape(text)


_LATEX = {
    "⌊": r"\left\lfloor ",
    "⌋": r"\right\rfloor ",
    "⌈": r"\left\lceil ",
    "⌉": r"\right\rceil ",
    "·": r" \cdot ",
    "−": "-",
    "×": r" \times ",
    "…": r"\ldots ",
}


def latex_math(s: Step) -> str:
    text = s.text
    for old, new in _LATEX.items():
        text = text.replace(old, new)
    symbol, _, rest = text.partition(" = ")
    symbol = symbol.replace("_", "_{", 1) + "}" if "_" in symbol else symbol
    return f"\\mathrm{{{symbol}}} = {rest}".replace("**", "^")
