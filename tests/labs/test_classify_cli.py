"""The real ``convlens lab classify`` commands: output, JSON, and exit 2 on bad input with
nothing written."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_colourize_cli import invoke

SMALL = ["--classes", "horse,cat", "--model", "cifar_resnet9?width=4", "--batch-size", "8"]
SMALL += ["--device", "cpu", "--threads", "1", "--no-progress"]


def train_args(data: Path, out: Path, *extra: str) -> list[str | Path]:
    return ["lab", "classify", "train", "--data", data, "--out", out, "--epochs", "1", *SMALL,
            *extra]  # fmt: skip


def test_train_then_evaluate_as_json_and_table(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = invoke(*train_args(tiny_data, out))
    assert code == 0, output
    assert "predicted training memory (convlens, batch 8 per process, all trainable" in output
    assert "cifar_resnet9?width=4: 1 epochs, test accuracy" in output
    code, output = invoke("lab", "classify", "evaluate", out, "--format", "json")
    assert code == 0, output
    result = json.loads(output)
    assert {"accuracy", "ci95", "per_class", "n"} <= set(result) and result["n"] == 6
    assert list(result["per_class"]) == ["cat", "horse"]
    summary = json.loads((out / "summary.json").read_text())
    assert result["accuracy"] == summary["test_accuracy"]
    code, output = invoke("lab", "classify", "evaluate", out)
    assert code == 0 and "| cat | 3 |" in output and "95 % bootstrap interval" in output


def test_init_and_train_only_from_the_command_line(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    assert invoke(*train_args(tiny_data, source))[0] == 0
    state = torch.load(source / "checkpoint.pt", weights_only=True)["model"]
    torch.save(state, tmp_path / "weights.pt")
    out = tmp_path / "head"
    code, output = invoke(
        *train_args(tiny_data, out), "--init", tmp_path / "weights.pt", "--train-only", "fc.*",
        "--train-only", "res3.1.*", "--freeze-bn",
    )  # fmt: skip
    assert code == 0, output
    assert "train-only fc.*, res3.1.*, frozen BatchNorm in eval mode" in output.replace("\n", " ")
    assert json.loads((out / "config.json").read_text())["train_only"] == ["fc.*", "res3.1.*"]


def bad_pickle(folder: Path, name: str, value: object) -> Path:
    from colourize_data import write_tiny

    write_tiny(folder)
    (folder / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(value, protocol=4))
    return folder


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"data": np.zeros((8, 100), np.uint8), "labels": [3] * 8},
         "'data' must be uint8 of shape (N, 3072)"),
        ({"data": np.zeros((8, 3072), np.float32), "labels": [3] * 8},
         "'data' must be uint8 of shape (N, 3072)"),
        ({"data": np.zeros((8, 3072), np.uint8), "labels": ["cat"] * 8},
         "'labels' must be a flat list of integer class numbers"),
        ({"data": np.zeros((8, 3072), np.uint8), "labels": [[3, 3]] * 8},
         "'labels' must be a flat list"),
        ({"data": np.zeros((8, 3072), np.uint8), "labels": [12] * 8},
         "holds class number 12, but batches.meta names only 10 classes"),
        (np.zeros((8, 3072), np.uint8), "has no 'data' and 'labels'"),
    ],
)  # fmt: skip
def test_a_valid_pickle_of_the_wrong_shape_exit_2(
    tmp_path: Path, value: object, message: str
) -> None:
    data = bad_pickle(tmp_path / "data", "data_batch_2", value)
    out = tmp_path / "run"
    code, output = invoke(*train_args(data, out))
    text = output.replace("\n", " ")
    assert code == 2 and message in text and "data_batch_2" in text, output
    assert "Traceback" not in output and not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threads", "-3"], "--threads must be 0 (torch's default) or a positive count"),
        (["--model", "cifar_resnet21"], "unknown model 'cifar_resnet21'"),
        (["--model", "no_such_module:factory"], "cannot import module 'no_such_module'"),
        (["--augment", "rotate"], "--augment: 'rotate' is not one of none, flip, flip,crop"),
        (["--optimizer", "lbfgs"], "--optimizer: 'lbfgs' is not one of sgd, adam"),
        (["--train-only", "head.*"], "--train-only 'head.*' matches no parameter"),
        (["--freeze-bn"], "--freeze-bn keeps BatchNorm layers with frozen parameters"),
        (["--init", "nowhere.pt"], "--init: nowhere.pt does not exist"),
        (["--batch-size", "100"], "larger than the training set (40 images)"),
        (["--classes", "zebra"], "unknown class 'zebra'"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tiny_data: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, output = invoke(*train_args(tiny_data, out), *extra)
    assert code == 2, output
    assert message in output.replace("\n", " ") and "Traceback" not in output
    assert not out.exists()


def test_init_that_does_not_fit_exit_2(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    assert invoke(*train_args(tiny_data, source))[0] == 0
    out = tmp_path / "run"  # three classes (no dog in the tiny data: a class of no image)
    code, output = invoke(*train_args(tiny_data, out, "--classes", "horse,cat,dog"), "--init",
                          source)  # fmt: skip
    text = output.replace("\n", " ")
    assert code == 2 and "'fc.weight' has shape (2, 32) in the file but (3, 32)" in text
    assert not out.exists()


@pytest.mark.parametrize("lab", ["classify", "colourize"])
def test_evaluate_a_folder_that_does_not_exist(tmp_path: Path, lab: str) -> None:
    code, output = invoke("lab", lab, "evaluate", tmp_path / "nothing")
    text = output.replace("\n", " ")
    assert code == 2 and "nothing does not exist" in text and "--resume" not in text


def test_evaluate_a_colourization_run_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    from test_colourize_train import small as colour_small

    from convlens.labs.colourize import train

    train(colour_small(tiny_data, tmp_path / "colour", epochs=1), progress_bar=False)
    code, output = invoke("lab", "classify", "evaluate", tmp_path / "colour")
    assert code == 2 and "is a colourization run" in output


def test_colourize_threads_negative_exit_2(tiny_data: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "lab", "colourize", "train", "--data", tiny_data, "--out", tmp_path / "run",
        "--threads", "-3",
    )  # fmt: skip
    assert code == 2 and "--threads must be 0" in output and not (tmp_path / "run").exists()


def test_evaluate_refuses_a_run_that_stopped_early(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke(*train_args(tiny_data, out, "--lr-schedule", "constant"))[0] == 0
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "epochs": 3}))  # 1 of 3 epochs done
    code, output = invoke("lab", "classify", "evaluate", out)
    text = output.replace("\n", " ")
    assert code == 2 and "stopped after 1 of 3 epochs" in text
    assert f"convlens lab classify train --resume {out}" in text
