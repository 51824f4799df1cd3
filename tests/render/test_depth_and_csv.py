"""``--depth N`` groups modules in every format; the CSV has every per-layer field of the
JSON; the terminal table lays out by Rich only the rows that need it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convlens.api import analyze
from convlens.cli.main import app
from convlens.core.hierarchy import module_rows
from convlens.render import FORMATS, renderer
from convlens.render.box_table import BoxTable
from convlens.render.csv import _cell
from convlens.render.json import report_to_dict
from convlens.render.table import render_table_text
from convlens.render.text import latex_escape

ROOT = Path(__file__).resolve().parents[2]
RESNET_BLOCK = ROOT / "examples" / "resnet_block.cnn"
EXAMPLES = sorted((ROOT / "examples").rglob("*.cnn"))
SUMMED = ("params", "trainable_params", "frozen_params", "buffers", "macs", "flops")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_csv_has_every_layer_field_of_the_json(path: Path) -> None:
    report = analyze(path, k=3, NF=8, NC=4) if path.name == "colour_cnn.cnn" else analyze(path)
    layers = report_to_dict(report)["layers"]
    rows = list(csv.reader(io.StringIO(renderer("csv")(report))))
    assert rows[0] == list(layers[0])  # the same fields, in the same order
    for layer, row in zip(layers, rows[1:-1], strict=True):
        assert row == [_cell(key, value) for key, value in layer.items()]
    assert rows[-1][rows[0].index("name")] == "total"


def test_csv_lists_of_names_and_of_sizes() -> None:
    assert _cell("inputs", ["conv2d_1", "skip"]) == "conv2d_1; skip"
    assert _cell("output_shape", [64, 56, 56]) == "64x56x56"
    assert _cell("warnings", []) == ""


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("depth", [1, 2])
def test_depth_json_adds_modules_that_partition_the_layers(depth: int) -> None:
    data = json.loads(cli("analyze", RESNET_BLOCK, "--depth", depth, "-f", "json"))
    assert len(data["layers"]) == 37  # every layer is still there
    modules = data["modules"]
    assert modules["depth"] == depth
    spans = [(m["first_layer"], m["last_layer"]) for m in modules["rows"]]
    covered = [i for first, last in spans for i in range(first, last + 1)]
    assert covered == [layer["index"] for layer in data["layers"]]
    assert [m["layers"] for m in modules["rows"]] == [last - first + 1 for first, last in spans]
    for key in (*SUMMED, "activation_bytes", "saved_activation_bytes"):
        assert sum(m[key] for m in modules["rows"]) == data["totals"][key], key
    for m in modules["rows"]:
        assert m["name"] == ".".join(
            data["layers"][m["first_layer"] - 1]["name"].split(".")[:depth]
        )


def test_depth_json_without_depth_has_no_modules() -> None:
    assert "modules" not in json.loads(cli("analyze", RESNET_BLOCK, "-f", "json"))


def test_depth_csv_has_one_row_per_module_summing_to_the_totals() -> None:
    report = analyze(RESNET_BLOCK)
    modules = module_rows(report, 1)
    rows = list(
        csv.DictReader(io.StringIO(cli("analyze", RESNET_BLOCK, "--depth", 1, "-f", "csv")))
    )
    assert [r["name"] for r in rows[:-1]] == [m.name for m in modules]
    assert rows[-1]["name"] == "total" and int(rows[-1]["layers"]) == len(report.layers)
    for key in SUMMED:
        assert (
            sum(int(r[key]) for r in rows[:-1]) == int(rows[-1][key]) == getattr(report.totals, key)
        )


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("json", "csv")])
def test_depth_groups_modules_in_every_tabular_format(fmt: str) -> None:
    report = analyze(RESNET_BLOCK)
    modules = module_rows(report, 1)
    assert len(modules) == 11 < len(report.layers) == 37
    shown = latex_escape if fmt == "latex" else str
    text = renderer(fmt)(report, depth=1)
    for module in modules:
        assert shown(module.name) in text
    # the layers inside a block are listed one by one only without --depth
    for inner in ("basic_1.conv2d_1", "stage3.conv2d_1"):
        assert shown(inner) not in text
        assert shown(inner) in renderer(fmt)(report)
    assert fmt == "latex" or "resnet_block (depth 1)" in text


def test_cli_depth_reaches_every_format() -> None:
    for fmt in FORMATS:
        text = cli("analyze", RESNET_BLOCK, "--depth", 1, "-f", fmt)
        assert "stage3" in text
        if fmt != "json":
            assert "stage3.conv2d_1" not in text, fmt


# -- the terminal table: Rich lays out only the header, the totals and folding rows -------


def test_rows_that_fit_are_not_laid_out_cell_by_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    network = "input 3x32x32\nrepeat 500: conv2d 3 k=3 p=1\n"
    report = analyze(network)
    laid_out: list[object] = []
    original = BoxTable._laid_out

    def counting(self: BoxTable, *args: object, **kwargs: object) -> object:
        laid_out.append(args[2])  # the row
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BoxTable, "_laid_out", counting)
    text = render_table_text(report)
    assert len(laid_out) == 2  # the header and the totals, whatever the number of rows
    assert text.count("conv2d_") == 500


def test_a_row_that_folds_is_laid_out_by_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    report = analyze("input CxHxW\nconv2d NF k=k\nconv2d NF k=3\n")
    laid_out: list[object] = []
    original = BoxTable._laid_out

    def counting(self: BoxTable, *args: object, **kwargs: object) -> object:
        laid_out.append(args[2])
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BoxTable, "_laid_out", counting)
    render_table_text(report, width=60)
    assert len(laid_out) > 2


def test_depth_json_names_a_traced_module_output_only_when_not_one_tensor() -> None:
    report = analyze("zoo:yolov3", input="3x64x64")
    (whole,) = report_to_dict(report, depth=0)["modules"]["rows"]  # the model as one row
    assert whole["output"] == "(255×2×2, 255×4×4, 255×8×8)"  # three heads, stride 32, 16, 8
    data = json.loads(cli("analyze", "zoo:resnet18", "--depth", 1, "-f", "json"))
    assert all(row["output"] is None for row in data["modules"]["rows"])
