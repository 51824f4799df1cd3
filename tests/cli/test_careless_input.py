"""Careless and hostile descriptions (issue 15): each is one clear line and exit status 2,
or is accepted and gives the same numbers as its plain spelling. Absurd expansions are
refused by count before the work is done, never by a clock."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convlens.spec import parser
from convlens.spec.parser import MAX_LAYERS, MAX_STATEMENTS, parse_text
from tests.cli.test_errors import at, fails, run, write


def report_json(*args: object) -> dict:
    code, output = run("analyze", *(str(a) for a in args), "-f", "json")
    assert code == 0, output
    return json.loads(output)


def same_numbers(a: dict, b: dict) -> bool:
    """Two reports agree on every layer and total (the file names may differ)."""
    return a["layers"] == b["layers"] and a["totals"] == b["totals"]


# -- arithmetic ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "column"),
    [("p=1/0", 10), ("k=ceil_div(K, 0)", 10), ("k=floor_div(3, 0)", 10), ("k=3%0", 10)],
)
def test_division_by_zero_is_named_at_its_column(
    tmp_path: Path, argument: str, column: int
) -> None:
    path = write(tmp_path, f"input 3x32x32\nconv2d 8 {argument}\n")
    message = fails("analyze", path)
    assert at(path, 2, column) in message
    assert "division by zero" in message
    assert "zoo" not in message and "Fraction" not in message


# -- spellings that mean the same network --------------------------------------------------


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    text = "input 3x32x32\nconv2d 8 k=3\n"
    plain = write(tmp_path, text, "plain.cnn")
    marked = tmp_path / "marked.cnn"
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert same_numbers(report_json(marked), report_json(plain))
    assert parse_text("\ufeff" + text).layers == parse_text(text).layers


def test_the_display_form_of_a_shape_is_accepted_as_input(tmp_path: Path) -> None:
    plain = write(tmp_path, "input 3x32x32\nconv2d 8 k=3x3\n", "plain.cnn")
    shown = write(tmp_path, "input 3×32×32\nconv2d 8 k=3×3\n", "shown.cnn")
    expected = report_json(plain)
    assert expected["layers"][0]["output_shape"] == [8, 30, 30]
    assert same_numbers(report_json(shown), expected)
    assert same_numbers(report_json(plain, "--input", "3×32×32"), expected)


# -- values out of range -------------------------------------------------------------------


@pytest.mark.parametrize("p", ["2", "-0.1", "1.5"])
def test_dropout_probability_outside_zero_one_is_refused(tmp_path: Path, p: str) -> None:
    path = write(tmp_path, f"input 3x32x32\ndropout {p}\n")
    message = fails("analyze", path)
    assert at(path, 2, 9) in message
    assert f"dropout argument 'p' must be between 0 and 1, got {p}" in message


@pytest.mark.parametrize("p", ["0", "0.5", "1"])
def test_dropout_probability_in_zero_one_is_accepted(tmp_path: Path, p: str) -> None:
    data = report_json(write(tmp_path, f"input 3x32x32\ndropout {p}\n"))
    assert data["layers"][0]["output_shape"] == [3, 32, 32]


# -- labels --------------------------------------------------------------------------------


def test_a_label_bound_on_two_lines_names_both(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 8 k=3 as a\nrelu\nconv2d 8 k=3 as a\n")
    message = fails("analyze", path)
    assert at(path, 4, 17) in message
    assert "'a' is bound twice, at line 2 and at line 4" in message


def test_a_block_call_label_bound_twice_is_refused(tmp_path: Path) -> None:
    text = "input 3x32x32\nblock b(c):\n    conv2d c k=1\nb 8 as x\nb 8 as x\n"
    message = fails("analyze", write(tmp_path, text))
    assert "'x' is bound twice, at line 4 and at line 5" in message


def test_a_repeat_may_bind_the_same_label_again(tmp_path: Path) -> None:
    # Each pass binds `skip` to its own convolution; `add skip` joins with the latest.
    text = "input 8x16x16\nrepeat 3:\n    conv2d 8 k=3 p=1 as skip\n    relu\n    add skip\n"
    data = report_json(write(tmp_path, text))
    adds = [layer for layer in data["layers"] if layer["kind"] == "add"]
    convs = [layer["name"] for layer in data["layers"] if layer["kind"] == "conv2d"]
    assert [a["inputs"][1] for a in adds] == convs  # each add reads its own pass's conv
    assert len(convs) == 3


# -- absurd expansions: refused by count, before the work --------------------------------


@pytest.fixture
def layers_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the layers the expander builds before it stops."""
    built: list[str] = []
    original = parser.Expander.add_layer

    def counting(self: parser.Expander, *args: object, **kwargs: object) -> str:
        name = original(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(name)
        return name

    monkeypatch.setattr(parser.Expander, "add_layer", counting)
    return built


def test_a_billion_repeats_are_refused_before_any_layer(
    tmp_path: Path, layers_built: list[str]
) -> None:
    path = write(tmp_path, "input 3x32x32\nrepeat 1000000000: relu\n")
    message = fails("analyze", path)
    assert at(path, 2, 8) in message
    assert f"repeat 1,000,000,000 is more than the limit of {MAX_LAYERS:,} repetitions" in message
    assert layers_built == []


def test_nested_repeats_stop_after_the_first_outer_pass(
    tmp_path: Path, layers_built: list[str]
) -> None:
    text = "input 3x32x32\nrepeat 100:\n    repeat 100:\n        repeat 100:\n            relu\n"
    path = write(tmp_path, text)
    message = fails("analyze", path)
    assert at(path, 2, 8) in message
    assert (
        f"repeat 100 would expand the description to {100 * 100 * 100:,} layers, "
        f"more than the limit of {MAX_LAYERS:,}" in message
    )
    assert len(layers_built) == 100 * 100  # one outer pass, then the refusal


def test_repeats_of_statements_without_layers_are_bounded(tmp_path: Path) -> None:
    text = "input 3x32x32\nrelu as a\nrepeat 100000:\n    repeat 100000:\n        from a\n"
    message = fails("analyze", write(tmp_path, text))
    assert f"more than the limit of {MAX_STATEMENTS:,}" in message


def test_a_large_repeat_within_the_limit_is_expanded(tmp_path: Path) -> None:
    network = parse_text("input 1x4x4\nrepeat 100:\n    repeat 100:\n        relu\n")
    assert len(network.layers) == 100 * 100


# -- huge figures ----------------------------------------------------------------------------


def test_huge_memory_figures_use_large_units(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x100000x100000\nconv2d 100000 k=3 p=1\n")
    code, output = run("analyze", path, "--batch", "100000")
    assert code == 0, output
    readable = re.findall(r"\(([0-9.e+]+) ([KMGTPEZY]iB|B)\)", output)
    assert readable  # every byte figure has its readable form
    for number, _unit in readable:
        assert float(number) < 1024, output  # never a 12-digit count of GiB
    # Peak inference memory: the input and the output live together, 4 bytes a value.
    batch, size = 100000, 100000 * 100000
    peak = batch * (3 + 100000) * size * 4
    assert peak // 2**60 < 1024 <= peak // 2**50  # so EiB is the unit that fits
    assert f"peak activations (inference): {peak:,} B ({peak / 2**60:.2f} EiB)" in output


# -- --set ---------------------------------------------------------------------------------


def test_set_given_several_times_accumulates(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d NF k=k\n")
    once = report_json(path, "--set", "NF=8,k=3")
    assert once["totals"]["params"] == 8 * (3 * 3 * 3) + 8
    assert same_numbers(report_json(path, "--set", "NF=8", "--set", "k=3"), once)
    assert same_numbers(report_json(path, "--set", "NF=8,k=3", "--set", "NF=8"), once)


def test_set_giving_one_name_two_values_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d NF k=k\n")
    message = fails("analyze", path, "--set", "NF=8,k=3", "--set", "NF=16")
    assert "--set NF is given two values, 8 and 16" in message
    assert "--set k is given two values, 3 and 5" in fails("explain", path, "--set", "k=3,k=5")


def test_a_description_with_only_its_input_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# a comment\ninput 3x32x32\n")
    message = fails("analyze", path)
    assert at(path, 2, 1) in message
    assert "nothing to analyse: the description has no layers after its input line" in message
