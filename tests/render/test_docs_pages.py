"""The hand-written docs stay true: generated sections are current, pasted output is
what the code prints today, and every example they name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convlens.api import analyze
from convlens.render import renderer
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _layer_kinds_module():  # type: ignore[no-untyped-def]
    return load_script(DOCS / "layer_kinds.py")


def test_language_kind_table_is_current() -> None:
    module = _layer_kinds_module()
    page = (DOCS / "language.md").read_text(encoding="utf-8")
    assert module.updated(page) == page, "run python docs/layer_kinds.py"


def test_language_lists_every_kind() -> None:
    from convlens.core.registry import all_rules

    page = (DOCS / "language.md").read_text(encoding="utf-8")
    for kind in all_rules():
        assert f"\n### {kind}\n" in page


def test_json_page_example_is_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    page = (DOCS / "json.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- example:start -->\n```json\n(.*?)```\n<!-- example:end -->", page, re.S
    )
    assert block
    monkeypatch.chdir(ROOT)
    text = renderer("json")(analyze("examples/separable_vs_standard/separable.cnn"))
    assert block.group(1) == text, (
        "docs/json.md is stale: paste the output of `convlens analyze "
        "examples/separable_vs_standard/separable.cnn -f json` (run from the repository "
        "root) between the example markers, and describe any new key in the tables"
    )
    assert json.loads(block.group(1))["totals"]["params"] == 128 * 3 * 3 + 256 * 128


@pytest.mark.parametrize("page", ["language.md", "conventions.md", "json.md"])
def test_examples_named_in_docs_exist(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    names = set(re.findall(r"examples/[\w/]+(?:\.cnn|/)", text))
    assert names
    for name in names:
        assert (ROOT / name).exists(), name


def test_conventions_page_numbers_are_real(monkeypatch: pytest.MonkeyPatch) -> None:
    page = (DOCS / "conventions.md").read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    flops = {
        c: analyze("examples/three_conv.cnn", convention=c).totals.flops
        for c in ("full", "2mac", "mac")
    }
    assert flops == {"full": 905_314_504, "2mac": 904_396_800, "mac": 452_198_400}
    for value in flops.values():
        assert f"{value:,}" in page
    c1 = analyze("input 1x32x32\nconv2d 6 k=5\n")
    assert (c1.totals.params, c1.totals.connections) == (156, 28 * 28 * 6 * (25 + 1))
    bn = analyze("input 8x16x16\nbatchnorm2d\nrelu\nmaxpool2d 2\n")
    assert (
        bn.totals.saved_activation_bytes
        == (8 * 16 * 16 * 4 + 2 * 8 * 4) + 8 * 16 * 16 * 4 + 8 * 8 * 8 * 8
        == 20_544
    )
    # params 2·8 and buffers 2·8 floats + one int64 counter; Adam keeps 2 copies and a
    # float32 step per parameter tensor (weight and bias)
    assert bn.totals.training_bytes == (
        4 * 16 + (4 * 16 + 8) + 4 * 16 + (2 * 4 * 16 + 2 * 4) + 20_544
    )
    assert "20,880 B" in page and "20,544" in page
    separable = analyze("examples/separable_vs_standard/separable.cnn")
    assert separable.totals.peak_activation_bytes == 4_816_896
    assert "4,816,896" in page


def test_conventions_page_covers_every_kind() -> None:
    """A new rule needs a line in the FLOPs table and the saved-for-backward table."""
    from convlens.core.registry import all_rules

    page = (DOCS / "conventions.md").read_text(encoding="utf-8")
    flops = page.split("Under `full`, each kind adds", 1)[1].split("## Parameters", 1)[0]
    saved = page.split("What each kind keeps for backward", 1)[1].split("A layer takes", 1)[0]
    for table, text in (("FLOPs", flops), ("saved-for-backward", saved)):
        missing = sorted(kind for kind in all_rules() if f"`{kind}`" not in text)
        assert not missing, f"missing from the {table} table: {missing}"


def test_conventions_page_explain_output_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    from convlens.explain.derivation import derivation, render_sections

    page = (DOCS / "conventions.md").read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    report = analyze("examples/three_conv.cnn")
    for what in ("flops", "memory"):
        for line in render_sections(derivation(report, 1, what)).splitlines():
            assert line in page, line


def test_connections_with_batch_norm_are_as_the_page_says() -> None:
    """conventions.md: the total is shown only when every layer with parameters defines
    connections; a network with batch norm has none, and the JSON gives null."""
    page = (DOCS / "conventions.md").read_text(encoding="utf-8")
    assert "a network with batch norm has none, and the JSON gives `null`" in page
    with_bn = analyze("input 3x16x16\nconv2d 8 k=3\nbatchnorm2d\nrelu\n")
    assert with_bn.layers[0].connections == 14 * 14 * 8 * (3 * 9 + 1)  # still per layer
    assert with_bn.totals.connections is None
    from convlens.render import renderer

    assert "connections:" not in renderer("table")(with_bn)
    assert '"connections": null' in renderer("json")(with_bn).split('"totals"')[1]
    without_bn = analyze("input 3x16x16\nconv2d 8 k=3\nrelu\n")
    assert without_bn.totals.connections == 14 * 14 * 8 * (3 * 9 + 1)
    assert f"connections: {14 * 14 * 8 * 28:,}" in renderer("table")(without_bn)


def test_language_page_signal_and_volume_outputs_are_real(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """docs/language.md's 1-D and 3-D section: every block between output markers is what
    its command prints today (run from the repository root, output piped: 200 columns)."""
    import shlex

    from typer.testing import CliRunner

    from convlens.cli.main import app

    page = (DOCS / "language.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- output:start -->\n```text\n\$ convlens (.*?)\n(.*?)```", page, re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(ROOT)
    for command, shown in blocks:
        result = CliRunner().invoke(app, shlex.split(command))
        assert result.exit_code == 0, result.output
        assert result.output == shown, f"docs/language.md is stale for: convlens {command}"
    (tmp_path / "wrong_rank.cnn").write_text("input 1x100\nconv2d 8 k=3\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["analyze", "wrong_rank.cnn"])
    assert result.exit_code == 2
    assert f"$ convlens analyze wrong_rank.cnn\n{result.output}```" in page
