"""Training options beyond the course's set-up: palette over distinct colours, mirrored
images and a cosine learning-rate schedule — each deterministic and resumable."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_colourize_train import assert_same_run, interrupted_at, small

from convlens.errors import ArgumentError
from convlens.labs import colourize
from convlens.labs.colourize import (
    ColourizeConfig,
    Position,
    distinct_colours,
    learning_rate,
    make_palette,
    pixel_step,
    train,
)
from convlens.labs.runtime.loop import epoch_flips, run_epoch


def test_distinct_colours_lists_each_colour_once() -> None:
    rgb = np.array([[10, 20, 30], [10, 20, 30], [255, 0, 0], [0, 0, 255], [10, 20, 30]]) / 255.0
    got = distinct_colours(rgb.reshape(1, 5, 1, 3)) * 255
    np.testing.assert_allclose(got, [[0, 0, 255], [10, 20, 30], [255, 0, 0]], atol=1e-9)


def test_kmeans_over_colours_weighs_every_colour_once() -> None:
    """With one cluster k-means returns the mean: of every pixel, or of the distinct colours.

    900 pixels of two greys and 100 of black and white: the pixel mean leans to the
    greys, the mean of the four distinct colours does not.
    """
    levels = np.repeat([128, 143, 0, 255], [450, 450, 50, 50])
    rgb = (np.stack([levels] * 3, axis=1) / 255.0).reshape(1, 1000, 1, 3).astype(np.float32)
    base = ColourizeConfig(data="unused", num_colours=1)
    by_pixels = make_palette(rgb, base)
    by_colours = make_palette(rgb, dataclasses.replace(base, kmeans_over="colours"))
    np.testing.assert_allclose(by_pixels * 255, [[134.7] * 3], atol=1e-3)
    np.testing.assert_allclose(by_colours * 255, [[131.5] * 3], atol=1e-3)


def test_flips_are_a_seeded_function_of_the_epoch() -> None:
    a, b = epoch_flips(0, 3, 1000), epoch_flips(0, 3, 1000)
    assert torch.equal(a, b) and a.dtype == torch.bool
    assert not torch.equal(a, epoch_flips(0, 4, 1000))
    assert not torch.equal(a, epoch_flips(1, 3, 1000))
    assert 400 < int(a.sum()) < 600  # about half


def test_a_flipped_image_trains_like_its_mirror_image() -> None:
    """One step with every image flipped equals one step on the mirrored data."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, 32, 32)
    y = torch.randint(0, 4, (8, 32, 32))
    order = torch.arange(8)

    def step(inputs: torch.Tensor, targets: torch.Tensor, flips: torch.Tensor | None) -> list:
        torch.manual_seed(1)
        model = colourize.build_model(ColourizeConfig(data="", num_filters=4, num_colours=4))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        step = pixel_step(inputs, targets, lambda epoch: flips)
        run_epoch(model, optimizer, step, order, 8, Position())
        return [p.detach().clone() for p in model.parameters()]

    flipped = step(x, y, torch.ones(8, dtype=torch.bool))
    mirrored = step(x.flip(-1), y.flip(-1), None)
    unflipped = step(x, y, None)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(flipped, mirrored, strict=True))
    assert not all(torch.allclose(p, q) for p, q in zip(flipped, unflipped, strict=True))


def test_cosine_schedule_runs_from_lr_to_zero() -> None:
    cfg = ColourizeConfig(data="", lr=0.01, lr_schedule="cosine")
    assert learning_rate(cfg, 0, 100) == 0.01
    assert learning_rate(cfg, 50, 100) == pytest.approx(0.005)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0, abs=1e-15)
    rates = [learning_rate(cfg, s, 100) for s in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    constant = dataclasses.replace(cfg, lr_schedule="constant")
    assert {learning_rate(constant, s, 100) for s in range(101)} == {0.01}


def test_the_optimizer_gets_the_scheduled_rate(tiny_data: Path, tmp_path: Path) -> None:
    cfg = small(tiny_data, tmp_path / "run", lr_schedule="cosine", lr=0.01, epochs=2)
    result = train(cfg, progress_bar=False)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    last_rate = checkpoint["optimizer"]["param_groups"][0]["lr"]
    steps = 40 // 8 * 2  # the last step is step 9 of 10
    assert last_rate == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * (steps - 1) / steps)))
    assert result.finished


def test_options_are_saved_and_an_older_run_still_resumes(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = small(tiny_data, out, epochs=1)
    train(cfg, progress_bar=False)
    saved = json.loads((out / "config.json").read_text())
    assert (saved["kmeans_over"], saved["flip"], saved["lr_schedule"]) == (
        "pixels",
        False,
        "constant",
    )
    # a run written before these options existed has none of the keys: they mean the defaults
    for key in ("kmeans_over", "flip", "lr_schedule"):
        del saved[key]
    (out / "config.json").write_text(json.dumps(saved))
    longer = train(dataclasses.replace(cfg, epochs=2), resume=True, progress_bar=False)
    assert longer.finished and len(longer.metrics) == 2


def test_epochs_are_fixed_under_a_schedule(tiny_data: Path, tmp_path: Path) -> None:
    cfg = small(tiny_data, tmp_path / "run", epochs=1, lr_schedule="cosine")
    train(cfg, progress_bar=False)
    with pytest.raises(ArgumentError, match="not epochs, which fix the cosine schedule"):
        train(dataclasses.replace(cfg, epochs=2), resume=True, progress_bar=False)


@pytest.mark.parametrize("changes", [{"flip": True}, {"flip": True, "lr_schedule": "cosine"}])
def test_resume_with_flips_and_schedule_is_bit_identical(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict
) -> None:
    reference = train(small(tiny_data, tmp_path / "whole", epochs=2, **changes), progress_bar=False)
    cfg = small(tiny_data, tmp_path / "cut", epochs=2, **changes)
    assert interrupted_at(cfg, monkeypatch, stop_at=7).interrupted  # epoch 2, step 2
    assert_same_run(reference, train(cfg, resume=True, progress_bar=False))


def test_flips_change_the_run(tiny_data: Path, tmp_path: Path) -> None:
    plain = train(small(tiny_data, tmp_path / "plain", epochs=1), progress_bar=False)
    flipped = train(small(tiny_data, tmp_path / "flip", epochs=1, flip=True), progress_bar=False)
    assert plain.metrics[0]["train_loss"] != flipped.metrics[0]["train_loss"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kmeans_over": "hues"}, "--kmeans-over: 'hues' is not one of pixels, colours"),
        ({"lr_schedule": "step"}, "--lr-schedule: 'step' is not one of constant, cosine"),
    ],
)
def test_bad_option_values(tiny_data: Path, tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        train(small(tiny_data, tmp_path / "run", **changes), progress_bar=False)
