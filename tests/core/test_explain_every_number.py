"""Every number a report prints can be explained: worked steps that add up to it, or a
sentence saying what it is and why it has no steps (an unavailable receptive field says
why). FLOPs and memory are derived for every layer, under every convention."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy
from hypothesis import given, settings
from typer.testing import CliRunner

import convlens
from convlens.cli.main import app
from convlens.core.analyze import Report
from convlens.explain.derivation import TOPICS, derivation, render_sections
from tests.core.test_derivations import evaluate
from tests.core.test_rules_vs_torch import chains

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COLOUR = EXAMPLES / "colour_cnn.cnn"


def example_reports() -> list[tuple[str, dict]]:
    return [(str(p), {}) for p in sorted(EXAMPLES.rglob("*.cnn"))] + [
        (str(COLOUR), {"k": 3, "NF": 8, "NC": 4})
    ]


def final(report: Report, layer: int, topic: str, quantity_start: str) -> object:
    (section,) = derivation(report, layer, topic)
    steps = [s for s in section.steps if s.quantity.startswith(quantity_start)]
    assert steps, (topic, section)
    return steps[-1].result


def steps_add_up(report: Report) -> None:
    for section in derivation(report, None, "all"):
        for step in section.steps:
            if not step.values:  # a sentence ("Σ over 53 layers"), not a formula
                continue
            value = evaluate(step.substituted)
            if isinstance(value, tuple):  # a whole shape, e.g. (C, 1, 1) after global pooling
                continue
            assert sympy.simplify(value - sympy.sympify(step.result)) == 0, step


@pytest.mark.parametrize(("path", "symbols"), example_reports(), ids=lambda v: str(v)[-30:])
def test_every_layer_explains_every_topic(path: str, symbols: dict) -> None:
    report = convlens.analyze(path, **symbols)
    for record in report.layers:
        for topic in TOPICS[:-1]:
            (section,) = derivation(report, record.index, topic)
            assert section.entries, (record.name, topic)


@pytest.mark.parametrize("convention", ["full", "2mac", "mac"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("path", "symbols"), example_reports(), ids=lambda v: str(v)[-30:])
def test_flops_and_activation_bytes_are_derived(
    path: str, symbols: dict, convention: str, batch: int
) -> None:
    report = convlens.analyze(path, batch=batch, convention=convention, **symbols)
    for record in report.layers:
        assert final(report, record.index, "flops", "FLOPs (convention") == record.flops
        if record.kind != "params_only":
            assert final(report, record.index, "memory", "activation bytes") == (
                record.activation_bytes
            )
    steps_add_up(report)


@given(chains())
@settings(max_examples=60)
def test_random_chains_add_up(text: str) -> None:
    try:
        report = convlens.analyze(text, batch=2)
    except convlens.errors.SpecError:
        return
    steps_add_up(report)
    for record in report.layers:
        assert final(report, record.index, "flops", "FLOPs (convention") == record.flops


@pytest.mark.parametrize(("path", "symbols"), example_reports(), ids=lambda v: str(v)[-30:])
def test_whole_network_sums_equal_the_totals(path: str, symbols: dict) -> None:
    report = convlens.analyze(path, **symbols)
    sections = {s.title: s for s in derivation(report, None, "all")}
    for title, total in (
        ("parameters (whole network)", report.totals.params),
        ("MACs (whole network)", report.totals.macs),
        ("FLOPs (whole network)", report.totals.flops),
    ):
        assert sections[title].steps[-1].result == total
    memory = sections["training memory (whole network)"]
    saved = next(s for s in memory.steps if s.symbol == "A")
    assert saved.result == report.totals.saved_activation_bytes
    assert memory.steps[-1].result == report.totals.training_bytes
    assert any("peak activations" in note for note in memory.notes)


def test_a_convolution_derives_its_flops_and_memory() -> None:
    report = convlens.analyze(EXAMPLES / "three_conv.cnn")
    text = render_sections(derivation(report, 1, "flops"))
    macs = 64 * 64 * 64 * (3 * 5 * 5)  # C_out·H_out·W_out·C_in·K_h·K_w
    bias = 64 * 64 * 64
    assert f"FLOPs = 2·M + B + E = 2·{macs} + {bias} + 0 = {2 * macs + bias}" in text
    memory = render_sections(derivation(report, 1, "memory"))
    assert f"A = N·V·b = 1·{64 * 64 * 64}·4 = {64 * 64 * 64 * 4}" in memory
    assert "nothing to derive" not in text + memory


def test_other_conventions_say_which_they_are() -> None:
    report = convlens.analyze(EXAMPLES / "three_conv.cnn", convention="mac")
    text = render_sections(derivation(report, 2, "flops"))  # a ReLU: no MACs
    assert "FLOPs (convention mac): FLOPs = M = 0" in text
    assert "relu FLOPs" not in text  # element work is not counted under this convention


def test_an_unavailable_receptive_field_says_why() -> None:
    report = convlens.analyze(COLOUR)
    record = next(r for r in report.layers if r.rf is None)
    (section,) = derivation(report, record.index, "rf")
    assert section.notes == (f"receptive field unavailable: {record.rf_reason}",)
    assert "give the sizes with --set" in record.rf_reason


def test_cli_explain_rf_after_symbolic_upsampling() -> None:
    result = CliRunner().invoke(app, ["explain", str(COLOUR), "--what", "rf"])
    assert result.exit_code == 0, result.output
    assert "receptive field unavailable: after upsampling" in result.output
    assert "nothing to derive" not in result.output


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_notes_reach_every_format(fmt: str) -> None:
    report = convlens.analyze(EXAMPLES / "three_conv.cnn")
    text = render_sections(derivation(report, 2, "params"), fmt)
    assert "no parameters" in text


def test_an_operation_without_a_rule_says_it_is_not_counted() -> None:
    from torch import nn

    class Lgamma(nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return nn.functional.conv2d(x, x.new_ones(2, 3, 1, 1)).lgamma()

    report = convlens.analyze(Lgamma(), input_size=(1, 3, 4, 4))
    record = next(r for r in report.layers if r.unsupported)
    for topic in ("macs", "flops"):
        (section,) = derivation(report, record.index, topic)
        assert section.steps == ()
        assert f"not counted: no rule for {record.unsupported}" in section.notes[0]
