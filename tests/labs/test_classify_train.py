"""``lab classify``: a run writes its files, resumes bit-identically after Ctrl-C, augments
as it says, and ``load_run`` gives back the trained model."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import lab_runs
import pytest
import torch
import torch.nn.functional as F

import convlens.labs
from convlens.labs.classify import (
    ClassifyConfig,
    augment,
    confusion_matrix,
    epoch_offsets,
    evaluate_run,
    load_data,
    train,
)
from convlens.labs.runtime import loop
from convlens.labs.runtime.files import read_metrics_csv
from convlens.labs.runtime.loop import RunResult, scheduled_rate

EXACT = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")


def small(data: Path, out: Path, **changes: object) -> ClassifyConfig:
    """40 images of two classes, 5 steps of 8 per epoch, ResNet-9 of width 4."""
    base = ClassifyConfig(
        data=str(data),
        classes="horse,cat",
        model="cifar_resnet9?width=4",
        epochs=2,
        batch_size=8,
        lr=0.05,
        out=str(out),
        device="cpu",
        threads=1,
        misclassified=4,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def interrupted_at(cfg: ClassifyConfig, monkeypatch: pytest.MonkeyPatch, stop_at: int) -> RunResult:
    return lab_runs.interrupted_at(train, cfg, monkeypatch, stop_at)


def assert_same_run(a: RunResult, b: RunResult) -> None:
    lab_runs.assert_same_run(a, b, EXACT)


def test_a_run_writes_its_files_and_numbers(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(small(tiny_data, out), progress_bar=False)
    assert result.finished
    assert {
        "config.json", "checkpoint.pt", "metrics.csv", "summary.json",
        "learning_curves.png", "confusion.png", "misclassified.png",
    } <= {p.name for p in out.iterdir()}  # fmt: skip
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    rows = read_metrics_csv(out / "metrics.csv")
    assert list(rows[0]) == [*EXACT[:3], "test_loss", "test_accuracy", "epoch_seconds",
                             "images_per_second"]  # fmt: skip
    assert [r["epoch"] for r in rows] == [1, 2]
    # the test accuracy is the model's, recomputed here by hand
    model = result.model
    assert model is not None
    data = load_data(str(tiny_data), "horse,cat")
    model.eval()
    with torch.no_grad():
        logits = model(data.test_x)
    assert rows[-1]["test_accuracy"] == float((logits.argmax(1) == data.test_y).double().mean())
    assert rows[-1]["test_loss"] == pytest.approx(float(F.cross_entropy(logits, data.test_y)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == ["cat", "horse"]  # label order: CIFAR numbers 3, 7
    assert summary["test_accuracy"] == rows[-1]["test_accuracy"]
    train_accuracy = [r["train_accuracy"] for r in rows]
    assert all(0 <= a <= 1 and (a * 40).is_integer() for a in train_accuracy)  # counts / 40


@pytest.mark.parametrize("stop_at", [7, 5])  # epoch 2 step 2 (mid-epoch); the end of epoch 1
def test_resume_after_ctrl_c_is_bit_identical(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    reference = train(small(tiny_data, tmp_path / "whole"), progress_bar=False)
    cfg = small(tiny_data, tmp_path / "cut")
    first = interrupted_at(cfg, monkeypatch, stop_at)
    assert first.interrupted and (first.position.epoch, first.position.step) == (
        (1, 2) if stop_at == 7 else (1, 0)
    )
    assert first.position.sums if stop_at == 7 else True  # train accuracy so far is kept
    resumed = train(cfg, resume=True, progress_bar=False)
    assert resumed.finished
    assert_same_run(reference, resumed)


def test_hard_stop_loses_at_most_the_current_epoch(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[object] = []

    def hard_stop(position: object) -> None:
        steps.append(position)
        if len(steps) == 8:  # epoch 2, step 3
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_after_step", hard_stop)
    cfg = small(tiny_data, tmp_path / "cut")
    first = train(cfg, progress_bar=False)
    assert first.interrupted and (first.position.epoch, first.position.step) == (1, 0)
    monkeypatch.setattr(loop, "_after_step", lambda position: None)
    resumed = train(cfg, resume=True, progress_bar=False)
    assert_same_run(train(small(tiny_data, tmp_path / "whole"), progress_bar=False), resumed)


def test_crop_and_flip_are_what_they_say() -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 32)
    offsets = torch.tensor([[0, 8], [4, 4], [8, 1]])
    flips = torch.tensor([True, False, True])
    got = augment(images, flips, offsets)
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    for i, (dy, dx) in enumerate(offsets.tolist()):
        crop = padded[i, :, dy : dy + 32, dx : dx + 32]
        assert torch.equal(got[i], crop.flip(-1) if flips[i] else crop)
    assert torch.equal(augment(images, None, torch.full((3, 2), 4)), images)  # centre crop
    assert torch.equal(augment(images, None, None), images)


def test_augmentation_is_a_function_of_seed_and_epoch() -> None:
    a = epoch_offsets(0, 3, 500)
    assert torch.equal(a, epoch_offsets(0, 3, 500)) and a.shape == (500, 2)
    assert not torch.equal(a, epoch_offsets(0, 4, 500))
    assert not torch.equal(a, epoch_offsets(1, 3, 500))
    assert int(a.min()) == 0 and int(a.max()) == 8


def test_onecycle_rises_then_falls_to_zero() -> None:
    rates = [scheduled_rate("onecycle", 0.2, s, 100, warmup=0.25) for s in range(100)]
    assert rates[24] == pytest.approx(0.2) and max(rates) == pytest.approx(0.2)
    assert rates[0] == pytest.approx(0.2 / 25)
    assert all(a < b for a, b in itertools.pairwise(rates[:25]))
    assert all(a > b for a, b in itertools.pairwise(rates[24:]))
    assert rates[-1] == pytest.approx(0.2 / 76)


def test_load_run_returns_the_trained_model(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(small(tiny_data, out), progress_bar=False)
    model, cfg = convlens.labs.load_run(out)
    assert isinstance(cfg, ClassifyConfig) and cfg.model == "cifar_resnet9?width=4"
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert result.model is not None
    result.model.eval()
    x = torch.rand(5, 3, 32, 32)  # plain images in [0, 1]
    with torch.no_grad():
        assert torch.equal(model(x), result.model(x))


def test_evaluate_run_gives_accuracy_interval_and_classes(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(small(tiny_data, out), progress_bar=False)
    got = evaluate_run(out)
    assert set(got) >= {"accuracy", "ci95", "per_class", "n"}
    assert got["n"] == 6 and got["accuracy"] == result.final["test_accuracy"]
    low, high = got["ci95"]
    assert low <= got["accuracy"] <= high
    assert sum(c["n"] for c in got["per_class"].values()) == 6
    correct = sum(c["correct"] for c in got["per_class"].values())
    assert correct / 6 == got["accuracy"]


def test_confusion_matrix_counts_pairs() -> None:
    truth = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(truth, predicted, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
