"""Errors found in review: a join with only itself, misspelled choices, unmatched --frozen."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from convlens.cli.main import app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_add_of_the_current_output_alone_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text("input 3x8x8\nconv2d 8 k=3 as x\nadd x\n")
    code, output = run("analyze", str(path))
    assert code == 2 and f"{path}:3:5" in output and "needs another output" in output


def test_misspelled_choice_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text("input 3x8x8\nupsample 2 mode=bilnear\n")
    code, output = run("analyze", str(path))
    assert code == 2 and "did you mean 'bilinear'" in output and "Traceback" not in output


def test_frozen_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text("input 3x8x8\nconv2d 8 k=3\nrelu\n")
    code, output = run("analyze", str(path), "--frozen", "nothing*")
    assert code == 2
    assert output.strip() == (
        "error: --frozen 'nothing*' matches no layer; layer names are like conv2d_1, relu_1"
    )
    code, output = run("analyze", str(path), "--frozen", "conv2d_2")
    assert code == 2 and "did you mean 'conv2d_1'?" in output


def test_frozen_pattern_that_matches_freezes(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text("input 3x8x8\nconv2d 8 k=3\nrelu\n")
    code, output = run("analyze", str(path), "--frozen", "conv*", "-f", "csv")
    assert code == 0, output
    conv = dict(
        zip(output.splitlines()[0].split(","), output.splitlines()[1].split(","), strict=True)
    )
    assert conv["frozen_params"] == str(8 * 3 * 3 * 3 + 8) and conv["trainable_params"] == "0"


def test_stride_larger_than_kernel_warns_about_skipped_rows(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text("input 8x56x56\nconv2d 16 k=1 s=2\n")  # ResNet's downsample shortcut
    code, output = run("analyze", str(path))
    assert code == 0
    assert "1 of every 2 input rows and columns are skipped" in output
    assert "and the last 1 are never read" in output  # (56 − 1) mod 2
