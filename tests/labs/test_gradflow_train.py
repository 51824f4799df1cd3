"""``lab gradflow train``: per-layer gradient norms over training against a loop written
out here, exact resume, finished runs read back, the same seed giving the same JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import lab_runs
import pytest
import torch
import torch.nn.functional as F

from convlens.labs.gradflow import NetConfig, build_net, train_net, train_nets, warmed_rate
from convlens.labs.runtime.images import augment, epoch_offsets, load_data
from convlens.labs.runtime.loop import epoch_flips, epoch_permutation, scheduled_rate


def small(data: Path, out: Path, **changes: object) -> NetConfig:
    """40 images, 5 steps of 8 per epoch, the 8-layer nets."""
    base = NetConfig(str(data), arch="plain", depth=8, epochs=2, batch_size=8, lr=0.05,
                     out=str(out), device="cpu", threads=1)  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def rate_by_hand(cfg: NetConfig, epoch: int, step: int, steps: int) -> float:
    """The warm-up by epochs (constant, or linear over its steps), then the schedule over
    the steps after it."""
    if epoch < cfg.warmup_epochs:
        k, w = epoch * steps + step, cfg.warmup_epochs * steps
        linear = cfg.warmup == "linear"
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * k / w if linear else cfg.warmup_lr
    after = (epoch - cfg.warmup_epochs) * steps + step
    return scheduled_rate(cfg.lr_schedule, cfg.lr, after, steps * (cfg.epochs - cfg.warmup_epochs))


def gradient_norms_by_hand(cfg: NetConfig) -> list[list[float]]:
    """The training loop written out: per epoch, the mean over its steps of each weighted
    layer's ‖∂L/∂W‖, from ``torch.autograd.grad`` at the weights of that step."""
    data = load_data(cfg.data)
    n = len(data.train_y)
    steps = n // cfg.batch_size
    model = build_net(cfg.arch, cfg.depth, cfg.norm, cfg.seed)
    params = list(model.parameters())
    weights = [
        m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)  # fmt: skip
    means = []
    for epoch in range(cfg.epochs):
        model.train()
        order = epoch_permutation(cfg.seed, epoch, n)
        flips, offsets = epoch_flips(cfg.seed, epoch, n), epoch_offsets(cfg.seed, epoch, n)
        total = torch.zeros(len(weights), dtype=torch.float64)
        for step in range(steps):
            index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = rate_by_hand(cfg, epoch, step, steps)
            x = augment(data.train_x[index], flips[index], offsets[index])
            loss = F.cross_entropy(model(x), data.train_y[index])
            grads = torch.autograd.grad(loss, params)
            by_param = dict(zip(map(id, params), grads, strict=True))
            total += torch.tensor(
                [float(by_param[id(w)].norm()) for w in weights], dtype=torch.float64
            )
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            optimizer.step()
        means.append((total / steps).tolist())
    return means


@pytest.mark.parametrize(
    ("arch", "norm", "warmup"),
    [("plain", "batch", ""), ("residual", "none", ""), ("residual", "batch", "constant"),
     ("plain", "batch", "linear")],
)  # fmt: skip
def test_gradient_norms_over_training_are_the_autograd_ones(
    tiny_data: Path, tmp_path: Path, arch: str, norm: str, warmup: str
) -> None:
    """With a warm-up (one epoch of two), the loop above sets its rates by hand."""
    changes = {"warmup_epochs": 1, "warmup": warmup, "warmup_lr": 0.01} if warmup else {}
    cfg = small(tiny_data, tmp_path / "run", arch=arch, norm=norm, **changes)
    result = train_net(cfg, progress_bar=False)
    layers = [n for n, m in build_net(arch, 8, norm, 0).named_modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]  # fmt: skip
    reported = [[row[f"grad_norm.{name}"] for name in layers] for row in result.metrics]
    torch.testing.assert_close(
        torch.tensor(reported), torch.tensor(gradient_norms_by_hand(cfg)), rtol=1e-5, atol=0
    )


@pytest.mark.parametrize(("warmup", "stop_at"), [(0, 7), (2, 3)])
def test_a_run_resumes_exactly_after_ctrl_c_mid_epoch(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warmup: int, stop_at: int
) -> None:
    """The gradient-norm sums of the steps before the interruption are in the checkpoint;
    stopped in the middle of a warm-up, the run resumes at the warm-up's rate."""
    changes = {"warmup_epochs": warmup, "epochs": 3}
    whole = train_net(small(tiny_data, tmp_path / "whole", **changes), progress_bar=False)
    cut = small(tiny_data, tmp_path / "cut", **changes)
    stopped = lab_runs.interrupted_at(train_net, cut, monkeypatch, stop_at=stop_at)
    assert stopped.interrupted and stopped.position.step == stop_at % 5
    assert "grad_norm.fc" in stopped.position.sums
    resumed = train_net(cut, resume=True, progress_bar=False)
    keys = [k for k in whole.metrics[0] if k not in ("epoch_seconds", "images_per_second")]
    lab_runs.assert_same_run(whole, resumed, keys)


def test_train_nets_writes_its_files_and_reads_finished_runs_back(
    tiny_data: Path, tmp_path: Path
) -> None:
    base = small(tiny_data, tmp_path)
    result, _ = train_nets(base, "plain,residual", "8", str(tmp_path / "a"), progress_bar=False)
    out = tmp_path / "a"
    assert json.loads((out / "gradflow_train.json").read_text()) == result
    assert [r["arch"] for r in result["runs"]] == ["plain", "residual"]
    for run in result["runs"]:
        assert len(run["train_error"]) == len(run["test_error"]) == 2
        assert [len(epoch) for epoch in run["weight_grad_norm"]] == [8, 8]
        assert run["layers"][0] == "conv1" and run["layers"][-1] == "fc"
        assert "epoch_seconds" not in run  # timings stay out of the JSON
    for name in ("gradflow_train.md", "gradflow_train.csv", "gradflow_train.png",
                 "plain8/checkpoint.pt", "residual8/metrics.csv"):  # fmt: skip
        assert (out / name).stat().st_size > 0
    assert "| plain8 | 75,290 | 2 |" in (out / "gradflow_train.md").read_text()
    stamp = (out / "plain8" / "checkpoint.pt").stat().st_mtime_ns
    again, _ = train_nets(base, "plain,residual", "8", str(out), progress_bar=False)
    assert again == result and (out / "plain8" / "checkpoint.pt").stat().st_mtime_ns == stamp
    other, _ = train_nets(base, "plain,residual", "8", str(tmp_path / "b"), progress_bar=False)
    assert other == result  # the same seed, the same JSON


def test_train_error_is_one_minus_the_runtimes_accuracy(tiny_data: Path, tmp_path: Path) -> None:
    base = small(tiny_data, tmp_path, epochs=1)
    result, _ = train_nets(base, "residual", "8", str(tmp_path / "a"), progress_bar=False)
    rows = json.loads((tmp_path / "a" / "residual8" / "summary.json").read_text())
    assert result["runs"][0]["train_error"] == rows["train_error"]
    metrics = (tmp_path / "a" / "residual8" / "metrics.csv").read_text().splitlines()
    header, first = metrics[0].split(","), metrics[1].split(",")
    accuracy = float(first[header.index("train_accuracy")])
    assert result["runs"][0]["train_error"] == [1 - accuracy]


def test_the_warm_up_holds_its_rate_then_the_schedule_starts_from_lr() -> None:
    """He et al. 2016 §4.2's warm-up for ResNet-110: lr 0.01 first, then back to 0.1; the
    cosine runs over the epochs after the warm-up (5 steps per epoch here)."""
    cfg = NetConfig("data", epochs=3, lr=0.1, warmup_epochs=1, warmup_lr=0.01)
    rates = [warmed_rate(cfg, step, 5) for step in range(15)]
    cosine = [0.1 * (1 + math.cos(math.pi * k / 10)) / 2 for k in range(10)]
    assert rates == pytest.approx([0.01] * 5 + cosine, rel=1e-12)
    assert rates[5] == 0.1
    constant = dataclasses.replace(cfg, lr_schedule="constant", warmup_epochs=2)
    assert [warmed_rate(constant, s, 5) for s in range(15)] == [0.01] * 10 + [0.1] * 5
    linear = dataclasses.replace(cfg, warmup="linear", warmup_epochs=2)  # Goyal et al. 2017
    ramp = [0.01 + 0.09 * k / 10 for k in range(10)]  # 0.01, 0.019, …, 0.091, then 0.1
    assert [warmed_rate(linear, s, 5) for s in range(15)] == pytest.approx(
        ramp + [0.1 * (1 + math.cos(math.pi * k / 5)) / 2 for k in range(5)], rel=1e-12
    )
    plain = dataclasses.replace(cfg, warmup_epochs=0)  # no warm-up: the schedule alone
    assert [warmed_rate(plain, s, 5) for s in range(15)] == [
        scheduled_rate("cosine", 0.1, s, 15) for s in range(15)
    ]


def test_the_warm_up_is_in_the_tables_title(tiny_data: Path, tmp_path: Path) -> None:
    base = small(tiny_data, tmp_path, epochs=2, warmup_epochs=1, warmup_lr=0.02)
    result, _ = train_nets(base, "residual", "8", str(tmp_path / "a"), progress_bar=False)
    assert result["settings"]["warmup_epochs"] == 1 and result["settings"]["warmup_lr"] == 0.02
    assert (
        "lr 0.05 (cosine, warm-up 1 epoch at lr 0.02)"
        in (tmp_path / "a" / "gradflow_train.md").read_text()
    )
