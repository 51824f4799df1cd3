"""Training: the loss falls, every file is written, resume is bit-identical, Ctrl-C is safe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import lab_runs
import numpy as np
import pytest
import torch

from convlens.labs.colourize import (
    ColourizeConfig,
    Position,
    RunResult,
    build_model,
    grayscale,
    kmeans_palette,
    load_data,
    nearest_colour,
    pixel_step,
    train,
)
from convlens.labs.runtime import loop
from convlens.labs.runtime.files import read_metrics_csv
from convlens.labs.runtime.loop import epoch_permutation, run_epoch

EXACT = ("epoch", "train_loss", "val_loss", "val_accuracy", "baseline_accuracy")


def small(data: Path, out: Path, **changes: object) -> ColourizeConfig:
    """40 images, 5 steps of 8 per epoch, 4 filters, 4 colours: a second or two per run."""
    base = ColourizeConfig(
        data=str(data),
        classes="horse,cat",
        num_filters=4,
        num_colours=4,
        epochs=3,
        batch_size=8,
        out=str(out),
        device="cpu",
        threads=1,
        grid_every=2,
        grid_images=4,
        kmeans_pixels=20_000,
        kmeans_iters=10,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_few_steps_lower_the_loss(tiny_data: Path) -> None:
    cfg = small(tiny_data, Path("unused"))
    data = load_data(cfg)
    palette = kmeans_palette(data.train_rgb, 4, seed=0, sample=20_000)
    x, y = grayscale(data.train_rgb), nearest_colour(data.train_rgb, palette)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def loss() -> float:  # in training mode: BatchNorm uses the batch statistics
        model.train()
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))

    before = loss()
    for epoch in range(3):
        order = epoch_permutation(0, epoch, len(x))
        run_epoch(model, optimizer, pixel_step(x, y), order, 8, Position(epoch))
    assert loss() < 0.7 * before


def test_a_run_writes_all_its_files(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(small(tiny_data, out), progress_bar=False)
    assert result.finished and len(result.metrics) == 3
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "metrics.csv",
        "palette.npy",
        "checkpoint.pt",
        "summary.json",
        "learning_curves.png",
        "grid.png",
        "grids",
    } <= names
    assert not [n for n in names if n.startswith(".")]  # no temp files left behind
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_002.png", "epoch_003.png"]
    for png in [out / "learning_curves.png", out / "grid.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "colour_cnn" and saved["num_colours"] == 4
    assert np.load(out / "palette.npy").shape == (4, 3)
    rows = read_metrics_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, kept in zip(rows, result.metrics, strict=True):
        assert all(row[k] == kept[k] for k in EXACT)  # the CSV round-trips exactly
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert 0 <= rows[-1]["baseline_accuracy"] <= 1


def test_same_seed_same_run(tiny_data: Path, tmp_path: Path) -> None:
    a = train(small(tiny_data, tmp_path / "a", epochs=1), progress_bar=False)
    b = train(small(tiny_data, tmp_path / "b", epochs=1), progress_bar=False)
    assert [m["val_loss"] for m in a.metrics] == [m["val_loss"] for m in b.metrics]
    assert a.model is not None and b.model is not None
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def interrupted_at(
    cfg: ColourizeConfig, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> RunResult:
    return lab_runs.interrupted_at(train, cfg, monkeypatch, stop_at)


def assert_same_run(a: RunResult, b: RunResult) -> None:
    lab_runs.assert_same_run(a, b, EXACT)


@pytest.mark.parametrize(
    "stop_at",
    [7, 5],  # global step 7 = epoch 2, step 2 (mid-epoch); 5 = the last step of epoch 1
)
def test_resume_after_ctrl_c_is_bit_identical(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    reference = train(
        small(tiny_data, tmp_path / "whole", model="colour_unet", epochs=2), progress_bar=False
    )
    cfg = small(tiny_data, tmp_path / "cut", model="colour_unet", epochs=2)
    first = interrupted_at(cfg, monkeypatch, stop_at)
    assert first.interrupted and not first.finished
    expected = (1, 2) if stop_at == 7 else (1, 0)
    assert (first.position.epoch, first.position.step) == expected

    resumed = train(cfg, resume=True, progress_bar=False)
    assert resumed.finished
    assert_same_run(reference, resumed)
    whole = read_metrics_csv(tmp_path / "whole" / "metrics.csv")
    cut = read_metrics_csv(tmp_path / "cut" / "metrics.csv")
    assert [{k: r[k] for k in EXACT} for r in whole] == [{k: r[k] for k in EXACT} for r in cut]


def test_resume_may_add_epochs(tiny_data: Path, tmp_path: Path) -> None:
    reference = train(small(tiny_data, tmp_path / "three"), progress_bar=False)
    two = small(tiny_data, tmp_path / "two", epochs=2)
    train(two, progress_bar=False)
    longer = train(dataclasses.replace(two, epochs=3), resume=True, progress_bar=False)
    assert [m["val_loss"] for m in longer.metrics] == [m["val_loss"] for m in reference.metrics]


def test_global_batch_must_split_evenly(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convlens.errors import ArgumentError

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc_per_node=3 would set
    with pytest.raises(ArgumentError, match=r"--batch-size 8 must be divisible by .* \(3\)"):
        train(small(tiny_data, tmp_path / "run"), progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_hard_stop_keeps_the_last_whole_checkpoint(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C (or Ctrl-C under torchrun) raises KeyboardInterrupt mid-epoch: the
    checkpoint of the last finished epoch stays, and resuming from it is still exact."""
    reference = train(small(tiny_data, tmp_path / "whole", epochs=2), progress_bar=False)
    steps = []

    def hard_stop(position: Position) -> None:
        steps.append(position)
        if len(steps) == 8:  # epoch 2, step 3
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_after_step", hard_stop)
    cfg = small(tiny_data, tmp_path / "cut", epochs=2)
    first = train(cfg, progress_bar=False)
    assert first.interrupted and (first.position.epoch, first.position.step) == (1, 0)
    assert len(read_metrics_csv(tmp_path / "cut" / "metrics.csv")) == 1
    monkeypatch.setattr(loop, "_after_step", lambda position: None)
    resumed = train(cfg, resume=True, progress_bar=False)
    assert reference.model is not None and resumed.model is not None
    for p, q in zip(
        reference.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q)
