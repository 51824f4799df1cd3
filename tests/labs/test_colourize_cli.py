"""The real ``convlens lab colourize`` commands: outputs, and exit status 2 on bad input."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from colourize_data import write_tiny
from typer.testing import CliRunner

from convlens.cli.main import app
from convlens.labs.runtime import loop

runner = CliRunner()
SMALL = [
    "--classes",
    "horse,cat",
    "--num-filters",
    "4",
    "--num-colours",
    "4",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--no-progress",
]


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def train_args(data: Path, out: Path, *extra: str) -> list[str | Path]:
    return [
        "lab",
        "colourize",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        *SMALL,
        *extra,
    ]


def test_train_prints_the_final_numbers(tiny_data: Path, tmp_path: Path) -> None:
    code, output = invoke(*train_args(tiny_data, tmp_path / "run"))
    assert code == 0, output
    assert "colour_cnn: 1 epochs, val loss" in output and "baseline" in output
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_groups_and_commands_exist() -> None:
    code, output = invoke("lab", "colourize", "--help")
    assert code == 0
    for command in ("train", "sweep", "compare"):
        assert command in output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--classes", "zebra"], "unknown class 'zebra'"),
        (["--batch-size", "100"], "larger than the training set (40 images"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--kernel", "4"], "--kernel must be odd"),
    ],
)
def test_bad_arguments_exit_2(
    tiny_data: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    code, output = invoke(*train_args(tiny_data, tmp_path / "run"), *extra)
    assert code == 2, output
    assert message in output.replace("\n", " ")
    assert "Traceback" not in output


def test_missing_data_folder_says_how_to_get_it(tmp_path: Path) -> None:
    code, output = invoke(*train_args(tmp_path / "nothing", tmp_path / "run"))
    assert code == 2 and "cifar.html" in output


def test_data_is_required(tmp_path: Path) -> None:
    code, output = invoke("lab", "colourize", "train", "--out", tmp_path / "run")
    assert code == 2 and "--data is required" in output


def test_foreign_pickle_exit_2_and_nothing_runs(tmp_path: Path) -> None:
    write_tiny(tmp_path / "data")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_4").write_bytes(
        pickle.dumps({"data": Evil(), "labels": []}, protocol=2)
    )
    code, output = invoke(*train_args(tmp_path / "data", tmp_path / "run"))
    assert code == 2 and "data_batch_4: refused to unpickle" in output.replace("\n", " ")
    assert not marker.exists()


def test_palette_size_mismatch_exit_2(tiny_data: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros((24, 3), np.float32))
    code, output = invoke(
        *train_args(tiny_data, tmp_path / "run"), "--palette", str(tmp_path / "p.npy")
    )
    assert code == 2 and "holds 24 colours but --num-colours is 4" in output


def test_saved_palette_is_reused(tiny_data: Path, tmp_path: Path) -> None:
    palette = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    np.save(tmp_path / "p.npy", palette)
    code, output = invoke(
        *train_args(tiny_data, tmp_path / "run"), "--palette", str(tmp_path / "p.npy")
    )
    assert code == 0, output
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "palette.npy"), palette)


def test_existing_run_is_never_overwritten(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke(*train_args(tiny_data, out))[0] == 0
    before = (out / "checkpoint.pt").read_bytes()
    code, output = invoke(*train_args(tiny_data, out))
    assert code == 2 and "already holds a run" in output and "--resume" in output
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_with_a_different_configuration_exit_2(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke(*train_args(tiny_data, out))[0] == 0
    code, output = invoke("lab", "colourize", "train", "--resume", out, "--lr", "0.5")
    assert code == 2 and "different configuration" in output and "lr" in output
    code, output = invoke("lab", "colourize", "train", "--resume", tmp_path / "elsewhere")
    assert code == 2 and "not a colourization run folder" in output


def test_resume_continues_with_more_epochs(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke(*train_args(tiny_data, out))[0] == 0
    code, output = invoke(
        "lab", "colourize", "train", "--resume", out, "--epochs", "2", "--no-progress"
    )
    assert code == 0, output
    assert "resuming colour_cnn at epoch 2" in output and "2 epochs" in output


def test_ctrl_c_saves_and_says_how_to_resume(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        loop,
        "_after_step",
        lambda position: os.kill(os.getpid(), signal.SIGINT) if position.step == 2 else None,
    )
    out = tmp_path / "run"
    code, output = invoke(*train_args(tiny_data, out))
    assert code == 130, output
    text = output.replace("\n", " ")
    assert "interrupted at epoch 1, step 2/5" in text
    assert f"convlens lab colourize train --resume {out}" in text
    assert (out / "checkpoint.pt").exists() and (out / "config.json").exists()
    monkeypatch.setattr(loop, "_after_step", lambda position: None)
    code, output = invoke("lab", "colourize", "train", "--resume", out, "--no-progress")
    assert code == 0, output


def test_sweep_writes_table_and_plot(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    code, output = invoke(
        "lab",
        "colourize",
        "sweep",
        "--batch-sizes",
        "20,8",
        "--data",
        tiny_data,
        "--epochs",
        "1",
        "--out",
        out,
        *SMALL,
    )
    assert code == 0, output
    assert {"sweep.md", "sweep.csv", "sweep.png", "batch_8", "batch_20"} <= {
        p.name for p in out.iterdir()
    }
    lines = (out / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("batch_size,epochs,val_loss,val_accuracy")
    assert [line.split(",")[0] for line in lines[1:]] == ["8", "20"]
    assert "| batch size |" in (out / "sweep.md").read_text()
    assert "| 8 | 1 |" in output


def test_sweep_rejects_bad_lists(tiny_data: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "lab", "colourize", "sweep", "--batch-sizes", "8,x", "--data", tiny_data, "--out", tmp_path
    )
    assert code == 2 and "comma-separated list of integers" in output


def test_compare_trains_both_and_then_reuses_them(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = [
        "lab",
        "colourize",
        "compare",
        "--data",
        tiny_data,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        out,
        *SMALL,
    ]
    code, output = invoke(*args)
    assert code == 0, output
    assert {
        "compare.md",
        "compare.csv",
        "compare_curves.png",
        "compare_grid.png",
        "colour_cnn",
        "colour_unet",
    } <= {p.name for p in out.iterdir()}
    table = (out / "compare.md").read_text()
    assert "colour_cnn" in table and "colour_unet" in table
    # both runs use the first run's palette, so their targets are the same
    np.testing.assert_array_equal(
        np.load(out / "colour_cnn" / "palette.npy"), np.load(out / "colour_unet" / "palette.npy")
    )
    assert json.loads((out / "colour_unet" / "config.json").read_text())["palette"]
    stamp = (out / "colour_unet" / "checkpoint.pt").stat().st_mtime_ns
    code, output = invoke(*args)
    assert code == 0 and "reusing the finished run" in output
    assert (out / "colour_unet" / "checkpoint.pt").stat().st_mtime_ns == stamp
    shutil.rmtree(out / "colour_cnn" / "grids")  # reuse needs only metrics and checkpoint
    assert invoke(*args)[0] == 0
