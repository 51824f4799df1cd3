"""Renderers against golden files, and invariants every renderer's numbers must keep.

``pytest --update-golden tests/render`` rewrites the files under ``tests/render/golden``;
review the diff before committing it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import sympy

from convlens.api import analyze
from convlens.core.analyze import Report
from convlens.core.numbers import symbol
from convlens.render import FORMATS, renderer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXTENSIONS = {
    "table": "txt",
    "markdown": "md",
    "json": "json",
    "csv": "csv",
    "latex": "tex",
    "html": "html",
}

# name → (description path relative to the repository root, --set values)
CASES: dict[str, tuple[str, dict[str, int]]] = {
    "three_conv": ("examples/three_conv.cnn", {}),
    "colour_cnn_symbolic": ("examples/colour_cnn.cnn", {}),
    "colour_cnn_set": ("examples/colour_cnn.cnn", {"k": 3, "NF": 32, "NC": 24}),
}


def report_for(case: str, monkeypatch: pytest.MonkeyPatch, **options: object) -> Report:
    # Run from the repository root so the source path in the output is the same everywhere.
    monkeypatch.chdir(ROOT)
    path, symbols = CASES[case]
    return analyze(path, **options, **symbols)  # type: ignore[arg-type]


def test_every_format_has_a_golden_extension() -> None:
    assert set(EXTENSIONS) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(CASES))
def test_golden(
    case: str, fmt: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = renderer(fmt)(report_for(case, monkeypatch))
    golden = GOLDEN / f"{case}.{EXTENSIONS[fmt]}"
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} is missing: run pytest --update-golden"
    expected = golden.read_text(encoding="utf-8")
    assert text == expected, (
        f"{fmt} output of {case} differs from {golden.name}; if the "
        "change is intended, run pytest --update-golden and review the diff"
    )


# -- invariants ---------------------------------------------------------------------------

SUMMED = (
    "params",
    "trainable_params",
    "frozen_params",
    "buffers",
    "macs",
    "flops",
    "activation_bytes",
    "saved_activation_bytes",
)
LAYER_KEYS = {
    "index",
    "name",
    "kind",
    "line",
    "output_shape",
    "params",
    "trainable_params",
    "buffers",
    "macs",
    "flops",
    "rf",
    "jump",
    "start",
    "activation_bytes",
    "warnings",
}
TOTAL_KEYS = {
    *SUMMED,
    "rf",
    "peak_activation_bytes",
    "param_bytes",
    "grad_bytes",
    "optimizer_bytes",
    "saved_activation_bytes",
    "training_bytes",
    "convention",
}


# Read symbols back as the engine makes them (positive integers), so that expressions
# from the JSON and from the report cancel exactly.
LOCALS = {name: symbol(name) for name in ("k", "NF", "NC")}


def value(x: object) -> sympy.Expr:
    """A JSON or CSV number or symbolic string as a SymPy value."""
    assert x is not None and x != ""
    assert not isinstance(x, float), "counts must be exact integers or expressions"
    return sympy.sympify(x, locals=LOCALS)


def assert_same(a: object, b: object) -> None:
    assert sympy.simplify(value(a) - value(b)) == 0, (a, b)


def examples() -> list[Path]:
    return sorted((ROOT / "examples").rglob("*.cnn"))


SYMBOLS = {"colour_cnn.cnn": {"k": 3, "NF": 32, "NC": 24}}


@pytest.mark.parametrize("convention", ["full", "2mac", "mac"])
@pytest.mark.parametrize("case", list(CASES))
def test_json_columns_sum_to_totals(
    case: str, convention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(renderer("json")(report_for(case, monkeypatch, convention=convention)))
    for key in SUMMED:
        assert_same(
            sum((value(layer[key]) for layer in data["layers"]), sympy.Integer(0)),
            data["totals"][key],
        )
    assert data["totals"]["flops_convention"] == convention


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_example_sums_to_its_totals(path: Path) -> None:
    report = analyze(path, batch=2, **SYMBOLS.get(path.name, {}))
    data = report.to_dict()
    for key in SUMMED:
        assert_same(
            sum((value(layer[key]) for layer in data["layers"]), sympy.Integer(0)),
            data["totals"][key],
        )


@pytest.mark.parametrize("case", list(CASES))
def test_csv_columns_sum_to_totals(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = list(csv.DictReader(io.StringIO(renderer("csv")(report_for(case, monkeypatch)))))
    *layers, totals = rows
    assert totals["name"] == "total"
    assert [int(r["index"]) for r in layers] == list(range(1, len(layers) + 1))
    for key in SUMMED:
        assert_same(sum((value(r[key]) for r in layers), sympy.Integer(0)), totals[key])


@pytest.mark.parametrize("case", list(CASES))
def test_csv_and_json_agree(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    report = report_for(case, monkeypatch)
    rows = list(csv.DictReader(io.StringIO(renderer("csv")(report))))
    data = json.loads(renderer("json")(report))
    for row, layer in zip(rows, data["layers"], strict=False):
        assert row["name"] == layer["name"]
        for key in SUMMED:
            assert_same(row[key], layer[key])


@pytest.mark.parametrize("case", list(CASES))
def test_json_has_the_documented_keys(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    report = report_for(case, monkeypatch)
    data = json.loads(renderer("json")(report))
    assert {
        "schema_version",
        "name",
        "source",
        "input",
        "batch",
        "dtype",
        "optimizer",
        "layers",
        "totals",
        "warnings",
    } <= set(data)
    assert data["schema_version"] == 1
    assert data["source"] == CASES[case][0]
    assert len(data["layers"]) == len(report.layers)
    for index, layer in enumerate(data["layers"], start=1):
        assert set(layer) >= LAYER_KEYS, LAYER_KEYS - set(layer)
        assert layer["index"] == index
        assert isinstance(layer["line"], int)
        assert isinstance(layer["warnings"], list)
    assert set(data["totals"]) >= TOTAL_KEYS, TOTAL_KEYS - set(data["totals"])
    assert data["totals"]["convention"] == report.convention
    assert data["totals"]["convention"].startswith("MACs = multiply-accumulates")


def test_symbolic_json_values_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Symbolic values are strings that sympy.sympify turns back into the report's values."""
    report = report_for("colour_cnn_symbolic", monkeypatch)
    data = json.loads(renderer("json")(report))
    strings = 0
    for record, layer in zip(report.layers, data["layers"], strict=True):
        for key, exact in (
            ("params", record.params),
            ("macs", record.macs),
            ("flops", record.flops),
            ("activation_bytes", record.activation_bytes),
        ):
            if isinstance(layer[key], str):
                strings += 1
                assert sympy.simplify(value(layer[key]) - exact) == 0
        for got, exact in zip(layer["output_shape"], record.output_shape, strict=True):
            assert sympy.simplify(value(got) - exact) == 0
    assert strings > 0  # the symbolic colour CNN must actually produce expressions
    assert isinstance(data["totals"]["params"], str)
    assert set(map(str, value(data["totals"]["params"]).free_symbols)) == {"k", "NF", "NC"}


def test_symbolic_totals_match_numeric_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Substituting k=3, NF=32, NC=24 in the symbolic JSON gives the numeric JSON."""
    symbolic = json.loads(renderer("json")(report_for("colour_cnn_symbolic", monkeypatch)))
    numeric = json.loads(renderer("json")(report_for("colour_cnn_set", monkeypatch)))
    bindings = {symbol(k): v for k, v in CASES["colour_cnn_set"][1].items()}
    for key in (
        "params",
        "macs",
        "flops",
        "activation_bytes",
        "peak_activation_bytes",
        "training_bytes",
    ):
        assert value(symbolic["totals"][key]).subs(bindings) == numeric["totals"][key], key


def test_numeric_json_has_plain_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(renderer("json")(report_for("three_conv", monkeypatch)))
    for layer in data["layers"]:
        for key in SUMMED:
            assert type(layer[key]) is int
    assert data["totals"]["params"] == 14_136_648


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex", "html"])
def test_text_formats_print_the_convention(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = renderer(fmt)(report_for("three_conv", monkeypatch))
    assert "MACs = multiply-accumulates" in text
    assert "14,136,648" in text  # total parameters, shown with separators


# -- bugs found while writing these tests (see the report to the lead) --------------------


def test_symbolic_table_keeps_layer_names(monkeypatch: pytest.MonkeyPatch) -> None:
    report = report_for("colour_cnn_symbolic", monkeypatch)
    text = renderer("table")(report)
    for record in report.layers:
        assert record.name in text


def _unescaped_stars(cell: str) -> bool:
    plain = re.sub(r"`[^`]*`", "", cell).replace("\\*", "")
    return "*" in plain


def test_markdown_escapes_symbolic_stars(monkeypatch: pytest.MonkeyPatch) -> None:
    text = renderer("markdown")(report_for("colour_cnn_symbolic", monkeypatch))
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and "**total**" not in line and "---" not in line
    ][1:]  # layer rows, without the header
    assert rows
    for row in rows:
        for cell in row.strip("|").split(" | "):
            assert not _unescaped_stars(cell), cell
