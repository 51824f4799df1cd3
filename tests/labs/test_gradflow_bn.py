"""``lab gradflow bn``: each BN measurement against a computation written out here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from convlens.labs.gradflow import build_net, first_batch
from convlens.labs.gradflow_bn import (
    BnConfig,
    batch_dependence,
    measure_bn,
    scale_invariance,
    statistics_spread,
    train_and_eval_modes,
    train_mode_accuracy,
)
from convlens.labs.runtime.images import load_data


@pytest.fixture(scope="module")
def data(tiny_data: Path):  # type: ignore[no-untyped-def]
    return load_data(str(tiny_data))


def test_scale_invariance_against_a_direct_backward(data) -> None:  # type: ignore[no-untyped-def]
    result = scale_invariance(data, [0.1, 1.0, 10.0], depth=8, seed=0)
    images, labels = first_batch(data, len(data.train_y), 0)
    for row in result["rows"]:
        model = build_net("residual", 8, "batch", 0).double()
        conv = model.layer1[0].conv1
        with torch.no_grad():
            conv.weight.mul_(row["a"])
        F.cross_entropy(model.train()(images.double()), labels).backward()
        assert row["weight_grad_norm"] == pytest.approx(float(conv.weight.grad.norm()), rel=1e-12)
        # ε is the whole deviation: the measured one is the one it predicts, and without it
        # the logits and the input gradient are the same whatever a
        assert row["output_scale_deviation"] == pytest.approx(
            row["predicted_scale_deviation"], rel=1e-6, abs=1e-15
        )
        assert row["tiny_eps_logits_max_diff"] < 1e-12
        assert row["tiny_eps_input_grad_max_rel_diff"] < 1e-10
        deviation = row["predicted_scale_deviation"]
        assert abs(row["scaled_grad_ratio"] - 1) < 0.01 + 20 * deviation
    assert result["rows"][1]["bn_output_max_diff"] == 0  # a = 1 is the reference
    assert result["images"] == len(data.train_y)


def test_statistics_spread_is_the_textbook_one_for_independent_values() -> None:
    """N(3, 2²) values, one per image (1 × 1 maps): the batch mean strays by 1/√B standard
    deviations, the biased batch variance by √(2(B − 1))/B of the variance."""
    g = torch.Generator().manual_seed(0)
    values = 3 + 2 * torch.randn(20_000, 4, 1, 1, generator=g)
    rows = statistics_spread(values, [4, 16], draws=800, seed=1)
    for row in rows:
        b = row["batch_size"]
        assert row["mean_spread"] == pytest.approx(1 / math.sqrt(b), rel=0.06)
        assert row["var_spread"] == pytest.approx(math.sqrt(2 * (b - 1)) / b, rel=0.1)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_an_images_output_depends_on_its_batch_mates_only_under_batchnorm(
    data,
    norm: str,  # type: ignore[no-untyped-def]
) -> None:
    model = build_net("residual", 8, norm, 0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = batch_dependence(model, "layer3.0.bn2", data.test_x[0], data.train_x, [2, 16], 6, 0)
    if norm == "batch":
        assert rows[0]["dependence"] > rows[1]["dependence"] > 0.01
    else:
        assert [r["dependence"] for r in rows] == [0.0, 0.0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_train_and_eval_mode_differ_by_the_statistics(data) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_net("residual", 8, "batch", 0)
    with torch.no_grad():  # running statistics that are not the batch's
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
        model.bn1.weight.uniform_(0.5, 1.5)
    model.eval()
    result = train_and_eval_modes(data, model, [2, 6], seed=0)
    bn = model.bn1
    with torch.no_grad():
        x = model.conv1(model.normalize(data.test_x))  # what bn1 receives
        train = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
        evaluated = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    assert result["max_diff"] == pytest.approx(float((train - evaluated).abs().max()), rel=1e-5)
    assert result["rebuilt_max_error"] < 1e-5
    assert result["running_mean_update_error"] < 1e-6 and result["running_var_update_error"] < 1e-6
    channel = result["channels"][1]
    assert channel["batch_mean"] == pytest.approx(float(x[:, 1].mean()), rel=1e-5)
    assert channel["running_var"] == float(bn.running_var[1])
    one_batch = next(r for r in result["train_mode"] if r["batch_size"] == 6)
    with torch.no_grad():
        predicted = model.train()(data.test_x).argmax(1)
    model.eval()
    assert one_batch["train_mode_accuracy"] == float((predicted == data.test_y).double().mean())


def test_train_mode_accuracy_leaves_the_model_as_it_was(data) -> None:  # type: ignore[no-untyped-def]
    model = build_net("residual", 8, "batch", 0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert 0 <= train_mode_accuracy(model, data, 5) <= 1  # 6 images: batches of 5 + 1 → 6
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bn_writes_reproducible_files_and_reuses_its_trainings(
    tiny_data: Path, tmp_path: Path
) -> None:
    def run(out: Path) -> dict:
        cfg = BnConfig(str(tiny_data), scales="0.1,1", batch_sizes="2,8", norms="batch,group",
                       epochs=1, draws=3, out=str(out), device="cpu", threads=1)  # fmt: skip
        return measure_bn(cfg, progress_bar=False)

    a = run(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "gradflow_bn.json").read_text()) == a
    assert set(a) == {"settings", "scale", "batch", "modes"}
    assert [(r["norm"], r["batch_size"], r["lr"]) for r in a["batch"]["accuracy"]] == [
        ("batch", 2, 0.1 * 2 / 128), ("batch", 8, 0.1 * 8 / 128),
        ("group", 2, 0.1 * 2 / 128), ("group", 8, 0.1 * 8 / 128),
    ]  # fmt: skip
    for name in ("gradflow_bn.md", "gradflow_bn.png", "runs/group-b8/checkpoint.pt"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    stamp = (tmp_path / "a" / "runs" / "batch-b2" / "checkpoint.pt").stat().st_mtime_ns
    assert run(tmp_path / "a") == a
    assert (tmp_path / "a" / "runs" / "batch-b2" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert run(tmp_path / "b") == a
