"""``convlens lab colourize evaluate``: a run's accuracy with its spread over images."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_colourize_cli import SMALL, invoke, train_args
from test_colourize_train import small

from convlens.errors import ArgumentError
from convlens.labs.colourize import (
    build_model,
    grayscale,
    load_data,
    nearest_colour,
    per_image_accuracy,
    spread,
    train,
)
from convlens.labs.runtime.stats import bootstrap_interval


def test_spread_of_a_run_is_its_accuracy_with_an_honest_standard_error(
    tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cfg = small(tiny_data, out, epochs=2)
    result = train(cfg, progress_bar=False)
    got = spread(out)
    assert got.accuracy == pytest.approx(result.final["val_accuracy"], abs=1e-12)
    assert (got.model, got.epochs, got.images) == ("colour_cnn", 2, 6)

    # The tiny model colours every image alike (25 % each); random weights do not, so
    # give the checkpoint some, then recompute by hand: per-image accuracies, sample s.e.
    torch.manual_seed(5)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["model"] = model.state_dict()
    torch.save(checkpoint, out / "checkpoint.pt")
    model.eval()
    val = load_data(cfg).val_rgb
    with torch.no_grad():
        predicted = model(grayscale(val)).argmax(1)
    targets = nearest_colour(val, np.load(out / "palette.npy"))
    by_hand = [float((predicted[i] == targets[i]).double().mean()) for i in range(len(val))]
    mean = sum(by_hand) / len(by_hand)
    se = math.sqrt(sum((a - mean) ** 2 for a in by_hand) / (len(by_hand) - 1) / len(by_hand))
    assert se > 0.001  # the images differ
    got = spread(out)
    assert got.accuracy == pytest.approx(mean, abs=1e-12)
    assert got.standard_error == pytest.approx(se, abs=1e-12)
    assert got.low < got.accuracy < got.high


def test_per_image_accuracy_counts_each_image_apart() -> None:
    class Fixed(torch.nn.Module):  # predicts colour 1 everywhere
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(len(x), 3, 32, 32)
            logits[:, 1] = 1.0
            return logits

    targets = torch.ones(3, 32, 32, dtype=torch.int64)
    targets[1, :16] = 0  # half of image 1 wrong
    targets[2] = 2  # all of image 2 wrong
    got = per_image_accuracy(Fixed(), torch.zeros(3, 1, 32, 32), targets, chunk=2)
    assert got.tolist() == [1.0, 0.5, 0.0]


def test_bootstrap_interval_is_seeded_and_narrows_with_more_images() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.random(25), rng.random(2500)
    assert bootstrap_interval(few) == bootstrap_interval(few)
    low, high = bootstrap_interval(few)
    assert low < few.mean() < high
    wide = high - low
    low, high = bootstrap_interval(many)
    assert high - low < wide / 5  # ~1/√n: 10× the images, ~⅒ the width
    # about mean ± 1.96 s.e. for a roughly normal mean
    se = many.std(ddof=1) / np.sqrt(len(many))
    assert low == pytest.approx(many.mean() - 1.96 * se, abs=0.3 * se)


def test_evaluate_command_prints_a_table(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _ = invoke(*train_args(tiny_data, out, *SMALL))
    assert code == 0
    code, output = invoke("lab", "colourize", "evaluate", out)
    assert code == 0, output
    final = json.loads((out / "summary.json").read_text())["val_accuracy"]
    assert f"| `{out}` | colour_cnn |" in output
    assert f"{100 * final:.2f} %" in output


def test_evaluate_finds_moved_data_with_data_option(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(small(tiny_data, out, epochs=1), progress_bar=False)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    config = json.loads((out / "config.json").read_text())
    config["data"] = str(tmp_path / "gone")
    (out / "config.json").write_text(json.dumps(config))
    code, output = invoke("lab", "colourize", "evaluate", out)
    assert code == 2 and "Traceback" not in output
    assert spread(out, data=str(moved)).images == 6


def test_evaluate_refuses_an_unfinished_run(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = small(tiny_data, out, epochs=1)
    train(cfg, progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    config["epochs"] = 3  # as if it had been stopped after epoch 1 of 3
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArgumentError, match="stopped after 1 of 3 epochs"):
        spread(out)
    code, output = invoke("lab", "colourize", "evaluate", out)
    assert code == 2 and "--resume" in output


def test_evaluate_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    code, output = invoke("lab", "colourize", "evaluate", tmp_path)
    assert code == 2 and "not a colourization run folder" in output
