"""The real ``convlens lab gradflow`` commands: JSON and tables, and one clear line with exit
status 2 (nothing written) on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_colourize_cli import invoke

QUICK = ["--threads", "1", "--no-progress"]


def gradflow(*args: str | Path) -> tuple[int, str]:
    return invoke("lab", "gradflow", *args, *QUICK)


def test_init_prints_the_json_it_writes(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "init"
    code, output = gradflow("init", "--data", tiny_data, "--depths", "8", "--batch-size", "4",
                            "--out", out, "--format", "json")  # fmt: skip
    assert code == 0, output
    printed = json.loads(output)
    assert printed == json.loads((out / "gradflow_init.json").read_text())
    assert [r["arch"] for r in printed["runs"]] == ["plain", "residual"]
    code, output = gradflow("init", "--data", tiny_data, "--depths", "8", "--batch-size", "4",
                            "--out", out, "--norm", "none", "--init", "normal", "--init-std",
                            "0.05")  # fmt: skip
    assert code == 0, output
    assert "| plain8 | none | normal σ=0.05 |" in output
    assert f"wrote {out}/gradflow_init.json, .md, .png" in output


def test_train_from_the_command_line(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "train"
    code, output = gradflow("train", "--data", tiny_data, "--archs", "residual", "--depths", "8",
                            "--epochs", "2", "--warmup-epochs", "1", "--warmup-lr", "0.02",
                            "--batch-size", "8", "--out", out, "--device", "cpu")  # fmt: skip
    assert code == 0, output
    assert "| residual8 | 75,290 | 2 |" in output
    written = json.loads((out / "gradflow_train.json").read_text())
    assert written["runs"][0]["depth"] == 8
    assert (written["settings"]["warmup_epochs"], written["settings"]["warmup_lr"]) == (1, 0.02)


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("init", ["--archs", "plain,dense"], "--archs: unknown architecture 'dense'; the CIFAR "
         "nets of He et al. 2016 §4.2 come as plain and residual"),
        ("train", ["--archs", "vgg"], "unknown architecture 'vgg'"),
        ("init", ["--depths", "8,21"], "--depths: 21 is not a depth of the CIFAR nets of He et "
         "al. 2016 §4.2: depth must be 6n + 2 (e.g. 8, 14, 20, 32, 44, 56, 110), got 21; the "
         "nearest valid depths are 20 and 26."),
        ("train", ["--depths", "57"], "the nearest valid depths are 56 and 62"),
        ("init", ["--depths", "8,x"], "--depths: '8,x' is not a comma-separated list"),
        ("init", ["--batch-size", "1"], "--batch-size 1: BatchNorm in training mode normalises "
         "every channel with the statistics of the batch"),
        ("train", ["--batch-size", "1"], "with the statistics of the batch at every step"),
        ("init", ["--norm", "layer"], "--norm must be one of batch, group, none, got 'layer'."),
        ("init", ["--init", "zeros"], "--init must be one of kaiming, xavier, normal"),
        ("init", ["--init-std", "-1"], "--init-std must be positive"),
        ("init", ["--dtype", "float16"], "--dtype: 'float16' is not one of float32, float64."),
        ("init", ["--batch-size", "41"], "--batch-size 41 is larger than the training set"),
        ("train", ["--batch-size", "41"], "--batch-size 41 is larger than the training set"),
        ("train", ["--augment", "crop"], "--augment: 'crop' is not one of none, flip, flip,crop"),
        ("train", ["--epochs", "0"], "--epochs must be at least 1"),
        ("train", ["--epochs", "2", "--warmup-epochs", "2"], "--warmup-epochs must be between 0 "
         "and --epochs − 1 = 1 (got 2): the schedule needs at least one epoch after the warm-up."),
        ("train", ["--warmup-epochs", "-1"], "--warmup-epochs must be between 0 and"),
        ("train", ["--warmup-lr", "0"], "--warmup-lr must be positive (got 0.0)."),
        ("train", ["--warmup", "cosine"], "--warmup: 'cosine' is not one of constant, linear."),
        ("init", ["--format", "yaml"], "--format: 'yaml' is not one of table, json."),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    tiny_data: Path, tmp_path: Path, command: str, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    depths = [] if "--depths" in args else ["--depths", "8"]
    code, output = gradflow(command, "--data", tiny_data, "--out", out, *args, *depths)
    assert code == 2, output
    assert message in " ".join(output.split())
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3
    assert not out.exists()  # nothing written


def test_the_batch_size_of_one_is_fine_without_batchnorm(tiny_data: Path, tmp_path: Path) -> None:
    code, output = gradflow("init", "--data", tiny_data, "--depths", "8", "--batch-size", "1",
                            "--norm", "group", "--out", tmp_path)  # fmt: skip
    assert code == 0, output


@pytest.mark.parametrize("command", ["init", "train"])
def test_missing_data_exit_2(tmp_path: Path, command: str) -> None:
    code, output = gradflow(command, "--data", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert code == 2 and "does not exist" in output and "cifar-10-python.tar.gz" in output
    code, output = gradflow(command, "--out", tmp_path / "out")
    assert code == 2 and "--data is required" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "1,8"], "--batch-size 1: BatchNorm in training mode normalises"),
        (["--norms", "group,layer"], "--norms: unknown normalisation 'layer'; give some of batch"),
        (["--norms", "group,none"], "--norms must include batch"),
        (["--scales", "0,1"], "--scales: '0,1' must list positive numbers."),
        (["--scales", "a"], "--scales: 'a' is not a comma-separated list of numbers"),
        (["--draws", "1"], "--draws must be at least 2"),
        (["--depth", "10"], "the nearest valid depths are 8 and 14"),
        (["--batch-sizes", "2,64"], "--batch-size 64 is larger than the training set (40"),
    ],
)
def test_bn_bad_input_exit_2(
    tiny_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "bn"
    code, output = gradflow("bn", "--data", tiny_data, "--out", out, "--device", "cpu", *args)
    assert code == 2, output
    assert message in " ".join(output.split())
    assert "Traceback" not in output
    assert not out.exists()  # not even a training started
