"""``lab gradflow init``: every reported number against autograd computed another way, the
model left as it was, and the same seed giving the same JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convlens.labs.gradflow import build_net, gradient_profile
from convlens.labs.gradflow_init import InitConfig, init_rows, measure_init


class Tap(nn.Module):
    """Wraps a layer: records its output's std and adds a zero tensor that requires grad,
    so ∂L/∂output arrives in ``delta.grad`` — no hooks involved."""

    def __init__(self, layer: nn.Module, log: list[Tap]) -> None:
        super().__init__()
        self.layer, self.log = layer, log
        self.delta: torch.Tensor | None = None
        self.std = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        self.std = float(out.detach().std(correction=0))
        self.delta = torch.zeros_like(out, requires_grad=True)
        self.log.append(self)
        return out + self.delta


def tapped(model: nn.Module) -> tuple[nn.Module, list[Tap], dict[Tap, str]]:
    """A copy of ``model`` with every Conv2d and Linear wrapped in a Tap."""
    twin = copy.deepcopy(model)
    log: list[Tap] = []
    names: dict[Tap, str] = {}
    for name, module in list(twin.named_modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            parent_name, _, attr = name.rpartition(".")
            parent = twin.get_submodule(parent_name) if parent_name else twin
            tap = Tap(module, log)
            setattr(parent, attr, tap)
            names[tap] = name
    return twin, log, names


def direct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, list]:
    """The three lists computed with plain ``backward`` on a tapped copy."""
    twin, log, names = tapped(model)
    twin.train()
    F.cross_entropy(twin(images), labels).backward()
    return {
        "layers": [names[t] for t in log],
        "activation_std": [t.std for t in log],
        "activation_grad_norm": [float(t.delta.grad.norm()) for t in log],  # type: ignore[union-attr]
        "weight_grad_norm": [float(t.layer.weight.grad.norm()) for t in log],
    }


def batch(
    n: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g, dtype=dtype), torch.randint(
        0, 10, (n,), generator=g
    )


def assert_profile_is_direct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    profile = gradient_profile(model, images, labels)
    expected = direct(model, images, labels)
    assert profile.layers == expected["layers"]
    for key in ("activation_std", "activation_grad_norm", "weight_grad_norm"):
        torch.testing.assert_close(
            torch.tensor(getattr(profile, key), dtype=torch.float64),
            torch.tensor(expected[key], dtype=torch.float64),
            rtol=1e-9,
            atol=0,
            msg=key,
        )


@pytest.mark.parametrize("arch", ["plain", "residual"])
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_every_norm_and_arch_against_autograd(arch: str, norm: str) -> None:
    """In-place ReLUs right after the convolutions (norm none) included."""
    model = build_net(arch, 8, norm, seed=1).double()
    images, labels = batch(4, seed=2)
    assert_profile_is_direct(model, images, labels)


@settings(max_examples=12)
@given(
    arch=st.sampled_from(["plain", "residual"]),
    norm=st.sampled_from(["batch", "group", "none"]),
    init=st.sampled_from(["kaiming", "xavier", "normal"]),
    init_std=st.sampled_from([1e-3, 0.01, 0.1]),
    seed=st.integers(0, 2**16),
    n=st.integers(2, 5),
)
def test_random_networks_against_autograd(
    arch: str, norm: str, init: str, init_std: float, seed: int, n: int
) -> None:
    model = build_net(arch, 8, norm, seed, init, init_std).double()
    assert_profile_is_direct(model, *batch(n, seed + 1))


def test_layers_are_the_weighted_layers_in_forward_order() -> None:
    profile = gradient_profile(build_net("residual", 14, "batch", 0).double(), *batch(2, 0))
    blocks = [f"layer{s}.{b}.conv{c}" for s in (1, 2, 3) for b in (0, 1) for c in (1, 2)]
    assert profile.layers == ["conv1", *blocks, "fc"]
    assert len(profile.layers) == 14  # 6n + 2 weighted layers, n = 2


def test_hooks_are_removed_and_the_model_is_left_as_it_was() -> None:
    model = build_net("plain", 8, "batch", 0).double().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = batch(3, 0)
    first = gradient_profile(model, images, labels)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not module._backward_pre_hooks
    assert not model.training  # eval mode restored
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics too
    assert gradient_profile(model, images, labels) == first


def test_small_weights_vanish_through_the_plain_net_not_the_residual_one() -> None:
    """N(0, 0.01²) weights, no normalisation: ∂L/∂activation of the first layer is a
    vanishing fraction of the last layer's in the plain net, not in its residual twin."""
    images, labels = batch(4, 0)
    ratios = {}
    for arch in ("plain", "residual"):
        model = build_net(arch, 20, "none", 0, "normal", 0.01).double()
        grads = gradient_profile(model, images, labels).activation_grad_norm
        ratios[arch] = grads[0] / grads[-1]
    assert ratios["plain"] < 1e-12 < 1e-3 < ratios["residual"]


def test_the_json_is_reproducible_and_complete(tiny_data: Path, tmp_path: Path) -> None:
    def run(out: Path) -> dict:
        cfg = InitConfig(str(tiny_data), depths="8,14", norm="group", batch_size=6, out=str(out))
        return measure_init(cfg)

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a == b
    text = (tmp_path / "a" / "gradflow_init.json").read_text()
    assert text == (tmp_path / "b" / "gradflow_init.json").read_text()
    assert json.loads(text) == a
    assert [(r["arch"], r["depth"]) for r in a["runs"]] == [
        ("plain", 8), ("plain", 14), ("residual", 8), ("residual", 14)
    ]  # fmt: skip
    for run_ in a["runs"]:
        keys = ("layers", "weight_grad_norm", "activation_grad_norm", "activation_std")
        assert {"arch", "depth", "norm", "init", *keys} <= set(run_)
        assert all(len(run_[k]) == run_["depth"] for k in keys)
    for suffix in (".md", ".csv", ".png"):
        assert (tmp_path / "a" / f"gradflow_init{suffix}").stat().st_size > 0
    rows = init_rows(a)
    assert (
        rows[0]["weight_grad_ratio"]
        == a["runs"][0]["weight_grad_norm"][0] / (a["runs"][0]["weight_grad_norm"][-1])
    )
    assert "| plain8 | group |" in (tmp_path / "a" / "gradflow_init.md").read_text()


def test_the_batch_is_real_images_drawn_by_the_seed(tiny_data: Path, tmp_path: Path) -> None:
    """The JSON's numbers are those of ``gradient_profile`` on the seeded batch of the data."""
    from convlens.labs.gradflow import first_batch
    from convlens.labs.runtime.images import load_data

    cfg = InitConfig(str(tiny_data), archs="residual", depths="8", batch_size=5, seed=3,
                     out=str(tmp_path))  # fmt: skip
    result = measure_init(cfg)
    images, labels = first_batch(load_data(str(tiny_data)), 5, 3)
    model = build_net("residual", 8, "batch", 3).double()
    profile = gradient_profile(model, images.double(), labels)
    assert result["runs"][0]["weight_grad_norm"] == profile.weight_grad_norm
    other = measure_init(dataclass_replace(cfg, seed=4, out=str(tmp_path / "other")))
    assert other["runs"][0]["weight_grad_norm"] != profile.weight_grad_norm


def dataclass_replace(cfg: InitConfig, **changes: object) -> InitConfig:
    import dataclasses

    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
