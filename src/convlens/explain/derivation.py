"""Select the steps behind a report's numbers and render them.

Every number a report prints can be explained: a rule's own steps (shape, parameters,
MACs, element-wise work), the analyser's (receptive field, memory), the steps derived
here from the very values the analyser combined (FLOPs under the report's convention,
activation bytes, sums over the layers), or — where nothing is derived — a sentence
saying why (a receptive field that is unavailable gives its reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.core.analyze import Report
from convlens.core.conventions import DTYPE_BYTES, Convention
from convlens.core.numbers import Dim, divide, fmt, normalize, product
from convlens.core.receptive_field import RFStatus
from convlens.core.records import LayerRecord
from convlens.core.steps import Step, step
from convlens.errors import ArgumentError
from convlens.render.text import latex_escape, shape_tuple

TOPICS = ("shape", "params", "macs", "flops", "rf", "memory", "all")
EXPLAIN_FORMATS = ("text", "markdown", "latex")
MAX_TERMS = 12  # a sum over more layers is shown as "Σ over N layers"


@dataclass(frozen=True)
class Section:
    """A layer's (or the network's) explanations in order: worked steps, and sentences
    for the numbers that have none (what they are, or why they are unavailable)."""

    title: str
    entries: tuple[Step | str, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(e for e in self.entries if isinstance(e, Step))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(e for e in self.entries if isinstance(e, str))


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
    topics = TOPICS[:-1] if what == "all" else (what,)
    sections = []
    for record in records:
        entries: list[Step | str] = []
        for topic in topics:
            topic_steps, topic_notes = layer_topic(report, record, topic)
            entries += [*topic_steps, *topic_notes]
        sections.append(Section(_title(record), tuple(entries)))
    if layer is None:
        sections += network_sections(report, topics)
    return sections


# -- one layer -----------------------------------------------------------------------------


def layer_topic(report: Report, record: LayerRecord, topic: str) -> tuple[list[Step], list[str]]:
    """The steps behind one of a layer's numbers, or the sentences that say why none."""
    if record.unsupported and topic in ("macs", "flops"):
        return [], [
            f"not counted: no rule for {record.unsupported}, so its {topic.upper()} are "
            "missing from the totals (the report says the figures are partial)"
        ]
    own = [s for s in record.steps if s.topic == topic]
    if topic == "shape":
        if own:
            return own, []
        if record.input_shapes and record.output_shape == record.input_shapes[0]:
            return [], [f"output {shape_tuple(record.output_shape)}: the shape of its input"]
        return [], [f"output {shape_tuple(record.output_shape)}: as the {record.kind} rule maps it"]
    if topic == "params":
        if own or record.params != 0:
            return own, [] if own else [f"{fmt(record.params)} parameters"]
        return [], [f"no parameters: {record.kind} learns nothing"]
    if topic == "macs":
        if own or record.macs != 0:
            return own, []
        return [], [
            f"0 MACs: {record.kind} multiplies no weights (MACs count convolutions and "
            "linear layers; its work is in FLOPs)"
        ]
    if topic == "flops":
        return flops_steps(report, record, own), []
    if topic == "rf":
        return own, rf_notes(record)
    if topic == "memory":
        return memory_steps(report, record), [
            f"keeps {fmt(record.saved_bytes)} B for the backward pass (storage an earlier "
            "layer already keeps is not counted again)"
        ]
    raise AssertionError(topic)


def flops_steps(report: Report, record: LayerRecord, own: list[Step]) -> list[Step]:
    """FLOPs from MACs, bias additions and element work under the report's convention."""
    convention = report.options.convention
    values = {"M": record.macs, "B": record.bias_flops, "E": record.other_flops}
    if convention is Convention.FULL:
        # The rule's steps count the element work E of one sample.
        batch = report.options.batch
        if own and batch != 1:
            per_sample = divide(record.other_flops, batch)
            own = [
                *own,
                step(
                    "flops",
                    "element work of the batch",
                    "E",
                    "{N}·{e}",
                    {"N": batch, "e": per_sample},
                    record.other_flops,
                ),
            ]
        return [
            *own,
            step(
                "flops",
                "FLOPs (convention full)",
                "FLOPs",
                "2·{M} + {B} + {E}",
                values,
                record.flops,
                note="2 per multiply-accumulate + bias additions + element-wise work",
            ),
        ]
    if convention is Convention.MAC2:
        return [
            step(
                "flops",
                "FLOPs (convention 2mac)",
                "FLOPs",
                "2·{M}",
                {"M": record.macs},
                record.flops,
                note="2 per multiply-accumulate, as torch.utils.flop_counter counts",
            )
        ]
    return [
        step(
            "flops",
            "FLOPs (convention mac)",
            "FLOPs",
            "{M}",
            {"M": record.macs},
            record.flops,
            note="one per multiply-accumulate, as fvcore counts",
        )
    ]


def memory_steps(report: Report, record: LayerRecord) -> list[Step]:
    """The output's bytes: batch × values per sample × bytes per value."""
    if record.kind == "params_only":
        return []
    itemsize = DTYPE_BYTES[report.options.dtype]
    values = {"N": report.options.batch, "V": product(record.output_shape), "b": itemsize}
    return [
        step(
            "memory",
            "activation bytes",
            "A",
            "{N}·{V}·{b}",
            values,
            record.activation_bytes,
            note=f"batch · values of {shape_tuple(record.output_shape)} · bytes per "
            f"{report.options.dtype}",
        )
    ]


def rf_notes(record: LayerRecord) -> list[str]:
    status = record.rf_status
    if status is RFStatus.UNAVAILABLE:
        return [f"receptive field unavailable: {record.rf_reason}"]
    if status is RFStatus.WHOLE_INPUT:
        return ["receptive field: the whole input (after global pooling, flatten or linear)"]
    if status is RFStatus.INDEPENDENT:
        return ["receptive field: none, this output does not depend on the first input"]
    return []


# -- the whole network -------------------------------------------------------------------


def network_sections(report: Report, topics: tuple[str, ...]) -> list[Section]:
    sections = []
    totals = report.totals
    layers = report.layers
    for topic, attr, name, symbol in (
        ("params", "params", "parameters", "params"),
        ("macs", "macs", "MACs", "MACs"),
        ("flops", "flops", "FLOPs", "FLOPs"),
    ):
        if topic in topics:
            values = {r.index: getattr(r, attr) for r in layers}
            sections.append(Section(f"{name} (whole network)", (sum_step(topic, symbol, values),)))
    if "memory" in topics:
        *parts, training = report.memory_steps
        saved = sum_step("memory", "A", {r.index: r.saved_bytes for r in layers})
        entries: tuple[Step | str, ...] = (
            *parts,
            f"buffer bytes B = {fmt(totals.buffer_bytes)}: float buffers in the dtype, "
            "integer counters 8 bytes each",
            saved,
            training,
            f"peak activations (inference) {fmt(totals.peak_activation_bytes)} B: the largest "
            "sum of the tensors alive at once when the layers run in order",
        )
        sections.append(Section("training memory (whole network)", entries))
    return sections


def sum_step(topic: str, symbol: str, values: dict[int, Dim]) -> Step:
    """Σ over the layers (``L3`` is layer 3's value), each term shown when there are few."""
    terms = {f"L{index}": v for index, v in values.items() if v != 0}
    result = normalize(sum(terms.values())) if terms else 0
    quantity = f"{symbol} summed over the layers" if symbol != "A" else "saved activation bytes"
    if len(terms) <= MAX_TERMS:
        template = " + ".join(f"{{{name}}}" for name in terms) or "0"
        return step(topic, quantity, symbol, template, terms, result)
    # no placeholders: a sentence, not a formula to evaluate
    return step(topic, quantity, symbol, f"Σ over {len(terms)} layers", {}, result)


# -- rendering -------------------------------------------------------------------------------


def _title(r: LayerRecord) -> str:
    where = f", line {r.line}" if r.line else ""
    shapes = ", ".join(shape_tuple(s) for s in r.input_shapes)
    return f"layer {r.index} '{r.name}' ({r.kind}{where}): {shapes} → {shape_tuple(r.output_shape)}"


def render_sections(sections: list[Section], fmt_name: str = "text") -> str:
    if fmt_name not in EXPLAIN_FORMATS:
        raise ArgumentError(f"--format must be one of {', '.join(EXPLAIN_FORMATS)}")
    lines: list[str] = []
    for section in sections:
        if fmt_name == "text":
            lines.append(section.title)
            lines += [
                f"  {e}"
                if isinstance(e, str)
                else f"  {e.quantity}: {e.text}" + (f"   ({e.note})" if e.note else "")
                for e in section.entries
            ]
        elif fmt_name == "markdown":
            lines.append(f"**{section.title}**\n")
            lines += [
                f"- {e}"
                if isinstance(e, str)
                else f"- {e.quantity}: `{e.text}`" + (f" — {e.note}" if e.note else "")
                for e in section.entries
            ]
        else:
            lines.append(r"\paragraph{" + latex_escape(section.title) + "}")
            lines += [
                latex_escape(e) + r"\par" if isinstance(e, str) else r"\[ " + latex_math(e) + r" \]"
                for e in section.entries
            ]
        lines.append("")
    return "\n".join(lines)


_LATEX = {
    "⌊": r"\left\lfloor ",
    "⌋": r"\right\rfloor ",
    "⌈": r"\left\lceil ",
    "⌉": r"\right\rceil ",
    "·": r" \cdot ",
    "−": "-",
    "×": r" \times ",
    "…": r"\ldots ",
    "Σ": r"\Sigma ",
}


def latex_math(s: Step) -> str:
    text = s.text
    for old, new in _LATEX.items():
        text = text.replace(old, new)
    symbol, _, rest = text.partition(" = ")
    symbol = symbol.replace("_", "_{", 1) + "}" if "_" in symbol else symbol
    return f"\\mathrm{{{symbol}}} = {rest}".replace("**", "^")
