"""``lab segment``: a run writes its files, resumes bit-identically after Ctrl-C, trains
every model kind and loss; evaluate and predict through the CLI; bad input exits 2 with
one line and writes nothing."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.io
import torch
from lab_runs import assert_same_run
from lab_runs import interrupted_at as lab_interrupted_at
from test_colourize_cli import invoke
from test_segment_data import write_sections

from convlens.labs.runtime import loop
from convlens.labs.runtime.loop import RunResult
from convlens.labs.segment import SegmentConfig, segmentation_loss, train


@pytest.fixture(scope="module")
def sections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sections(tmp_path_factory.mktemp("em"), n=6, size=64)


def small(data: Path, out: Path, **changes: object) -> SegmentConfig:
    """4 training sections × 2 crops of 32², batch 4: 2 steps per epoch, 2 validation."""
    base = SegmentConfig(
        data=str(data),
        model="unet_same?base_channels=4&depth=2",
        epochs=2,
        batch_size=4,
        crop=32,
        repeat=2,
        val=2,
        out=str(out),
        device="cpu",
        threads=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


METRICS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_pixel_error",
           "val_rand_error", "val_vi", "val_iou_0", "val_iou_255"]  # fmt: skip


def test_a_run_writes_its_files(sections: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(small(sections, out), progress_bar=False)
    assert result.finished and len(result.metrics) == 2
    written = ["config.json", "checkpoint.pt", "metrics.csv", "summary.json", "data.json"]
    written += ["learning_curves.png", "predictions.png", "augmented.png", "weight_map.png"]
    for name in written:
        assert (out / name).is_file(), name
    data = json.loads((out / "data.json").read_text())
    assert data["values"] == [0, 255] and data["classes"] == {"0": 0, "255": 1}
    assert len(data["val"]) == 2 and not set(data["val"]) & set(data["train"])
    final = result.final
    assert 0 <= final["val_pixel_error"] <= 1 and 0 <= final["val_rand_error"] <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["pixel_error"] == final["baseline_pixel_error"]
    assert summary["trainable_params"] == sum(p.numel() for p in result.model.parameters())  # type: ignore[union-attr]


@pytest.mark.parametrize("stop_at", [3, 2])  # epoch 2 step 1 (mid-epoch); the end of epoch 1
def test_resume_after_ctrl_c_is_bit_identical(
    sections: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    reference = train(small(sections, tmp_path / "whole"), progress_bar=False)
    cfg = small(sections, tmp_path / "cut")
    first: RunResult = lab_interrupted_at(train, cfg, monkeypatch, stop_at)
    assert first.interrupted
    assert (first.position.epoch, first.position.step) == ((1, 1) if stop_at == 3 else (1, 0))
    resumed = train(cfg, resume=True, progress_bar=False)
    assert resumed.finished
    assert_same_run(reference, resumed, METRICS)


def test_hard_stop_loses_at_most_the_current_epoch(
    sections: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[object] = []

    def hard_stop(position: object) -> None:
        steps.append(position)
        if len(steps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_after_step", hard_stop)
    cfg = small(sections, tmp_path / "cut")
    first = train(cfg, progress_bar=False)
    assert first.interrupted and (first.position.epoch, first.position.step) == (1, 0)
    monkeypatch.setattr(loop, "_after_step", lambda position: None)
    resumed = train(cfg, resume=True, progress_bar=False)
    assert_same_run(train(small(sections, tmp_path / "whole"), progress_bar=False), resumed,
                    METRICS)  # fmt: skip


@pytest.mark.parametrize(
    ("model", "crop", "loss"),
    [
        ("unet_valid?width=4&depth=2&batch_norm=true", 36, "weighted-ce"),
        ("deeplabv3_cifar?backbone=resnet9&width=4", 32, "ce+dice"),
        ("unet_same?base_channels=4&depth=2", 32, "dice"),
        ("unet_same?base_channels=4&depth=2", 32, "ce"),
    ],
)
def test_models_and_losses_train(
    sections: Path, tmp_path: Path, model: str, crop: int, loss: str
) -> None:
    cfg = small(sections, tmp_path / "r", model=model, crop=crop, loss=loss, epochs=1)
    result = train(cfg, progress_bar=False)
    assert result.finished and np.isfinite(result.final["train_loss"])


def test_losses_by_hand() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    masks = torch.tensor([[[0, 1]]])
    ce = torch.nn.functional.cross_entropy(logits, masks, reduction="none")
    weights = torch.tensor([[[3.0, 0.5]]])
    torch.testing.assert_close(
        segmentation_loss("weighted-ce", logits, masks, weights), (ce * weights).mean()
    )
    p = logits.softmax(1)[0, :, 0]  # (2 classes, 2 pixels)
    dice0 = (2 * p[0, 0] + 1) / (p[0].sum() + 1 + 1)
    dice1 = (2 * p[1, 1] + 1) / (p[1].sum() + 1 + 1)
    torch.testing.assert_close(
        segmentation_loss("dice", logits, masks, None), 1 - (dice0 + dice1) / 2
    )
    torch.testing.assert_close(
        segmentation_loss("ce+dice", logits, masks, None), ce.mean() + 1 - (dice0 + dice1) / 2
    )


# -----------------------------------------------------------------------------
# the CLI


def train_args(data: Path, out: Path, *extra: str) -> list[str | Path]:
    return ["lab", "segment", "train", "--data", data, "--out", out, "--epochs", "1",
            "--batch-size", "4", "--crop", "32", "--repeat", "2", "--val", "2",
            "--model", "unet_same?base_channels=4&depth=2", "--threads", "1", "--no-progress",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def finished(sections: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    code, output = invoke(*train_args(sections, out))
    assert code == 0, output
    assert "Rand error" in output and "majority-class pixel error" in output
    return out


def test_evaluate_json_and_table(finished: Path, sections: Path) -> None:
    code, output = invoke("lab", "segment", "evaluate", finished, "--data", sections,
                          "--format", "json", "--no-progress")  # fmt: skip
    assert code == 0, output
    result = json.loads(output)
    assert {"pixel_error", "rand_error", "iou", "dice", "n"} <= set(result)
    assert result["n"] == 6 and set(result["iou"]) == {"0", "255"}
    assert result["baseline"]["class"] == 255
    code, table = invoke("lab", "segment", "evaluate", finished, "--data", sections,
                         "--no-progress")  # fmt: skip
    assert code == 0 and f"pixel error {result['pixel_error']:.4f}" in table
    assert result["orientations"] == 8 and "mean over the 8 orientations" in table


def test_evaluate_without_orientations_is_the_last_validation(
    finished: Path, sections: Path, tmp_path: Path
) -> None:
    """On the held-out sections alone, ``--no-tta`` scores the run as its last epoch's
    validation did (one orientation); averaging the eight gives other numbers."""
    held_out = json.loads((finished / "data.json").read_text())["val"]
    for folder in ("image", "label"):
        (tmp_path / folder).mkdir()
        for name in held_out:
            (tmp_path / folder / name).write_bytes((sections / folder / name).read_bytes())
    last = list(csv.DictReader((finished / "metrics.csv").open()))[-1]
    scores = {}
    for flag in ("--no-tta", "--tta"):
        code, output = invoke("lab", "segment", "evaluate", finished, "--data", tmp_path,
                              "--format", "json", "--no-progress", flag)  # fmt: skip
        assert code == 0, output
        scores[flag] = json.loads(output)
    plain = scores["--no-tta"]
    assert plain["orientations"] == 1 and plain["n"] == len(held_out) == 2
    assert plain["pixel_error"] == pytest.approx(float(last["val_pixel_error"]), abs=1e-9)
    assert plain["rand_error"] == pytest.approx(float(last["val_rand_error"]), abs=1e-9)
    assert scores["--tta"]["orientations"] == 8


def test_evaluate_refuses_a_run_that_stopped_early(
    finished: Path, sections: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "epochs": 3}))  # 1 of 3 epochs done
    code, output = invoke("lab", "segment", "evaluate", out, "--data", sections, "--no-progress")
    text = output.replace("\n", " ")
    assert code == 2 and "stopped after 1 of 3 epochs" in text
    assert f"convlens lab segment train --resume {out}" in text


def test_predict_writes_masks_and_probabilities(
    finished: Path, sections: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred"
    code, output = invoke("lab", "segment", "predict", finished, "--data", sections, "--out", out,
                          "--no-progress")  # fmt: skip
    assert code == 0, output
    mask = skimage.io.imread(out / "masks" / "3.png")
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    low = skimage.io.imread(out / "probabilities" / "0" / "3.png").astype(int)
    high = skimage.io.imread(out / "probabilities" / "255" / "3.png").astype(int)
    assert np.abs(low + high - 255).max() <= 1  # probabilities sum to 1 (rounded to 8 bits)
    np.testing.assert_array_equal(mask == 255, high > low)
    single = tmp_path / "one"
    code, _ = invoke("lab", "segment", "predict", finished, "--data", sections / "image" / "0.png",
                     "--out", single, "--no-progress")  # fmt: skip
    assert code == 0 and sorted(p.name for p in (single / "masks").iterdir()) == ["0.png"]


def broken(tmp_path: Path, how: str) -> Path:
    root = write_sections(tmp_path / "bad", n=4, size=64)
    if how == "unpaired":
        (root / "label" / "2.png").unlink()
    elif how == "values":
        mask = skimage.io.imread(root / "label" / "1.png")
        mask[3, 4] = 128
        skimage.io.imsave(root / "label" / "1.png", mask, check_contrast=False)
    elif how == "empty":
        for folder in ("image", "label"):
            for path in (root / folder).iterdir():
                path.unlink()
    return root


@pytest.mark.parametrize(
    ("how", "extra", "message"),
    [
        ("unpaired", [], r"image/2\.png has no mask: .*label/2\.png is missing"),
        ("empty", [], r"holds no PNG images"),
        ("fine", ["--crop", "80"], r"--crop 80 is larger than the images.*64 pixels"),
        ("fine", ["--model", "unet_valid?width=2&depth=2", "--crop", "2"],
         r"--crop 2 is too small for .*the smallest size that works is 4 \(an input tile of 44\)"),
        ("fine", ["--model", "unet_valid?width=2&depth=2", "--crop", "30"],
         r"--crop 30 does not fit .*nearest crops that work are 28, 32"),
        ("fine", ["--init", "{weights}"], r"does not fit the model"),
        ("fine", ["--tile", "40"], r"--tile 40 is too small .* tile that works is 68"),
        ("fine", ["--val", "4"], r"--val 4: the folder has 4 sections"),
        ("fine", ["--loss", "focal"], r"--loss: 'focal' is not one of"),
        ("fine", ["--augment", "elastic,blur"], r"--augment: 'blur' is not one of"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, how: str, extra: list[str], message: str
) -> None:
    import re

    root = broken(tmp_path, how)
    weights = tmp_path / "w.pt"
    torch.save({"head.weight": torch.zeros(3, 3)}, weights)
    out = tmp_path / "out"
    args = [a.replace("{weights}", str(weights)) for a in extra]
    code, output = invoke(*train_args(root, out), *args)
    assert code == 2, output
    assert "Traceback" not in output and re.search(message, output.replace("\n", " ")), output
    assert not out.exists()


def test_unexpected_mask_value_in_evaluate(finished: Path, tmp_path: Path) -> None:
    root = broken(tmp_path, "values")
    code, output = invoke("lab", "segment", "evaluate", finished, "--data", root, "--no-progress")
    assert code == 2
    assert "label/1.png has the value 128 at row 3, column 4" in output.replace("\n", " ")
