"""Transfer learning in ``lab classify``: --init from a run, a .pt and a .safetensors file;
--train-only freezes exactly what it says; --freeze-bn keeps running statistics; the
printed memory prediction follows the freeze pattern."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_classify_train import small

from convlens.errors import ArgumentError, DataError
from convlens.labs.classify import build_model, load_run, train
from convlens.labs.runtime import finetune


@pytest.fixture(scope="module")
def source_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    train(small(tiny_data, out, epochs=1), progress_bar=False)
    return out


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["run", "pt", "checkpoint-pt", "safetensors"])
def test_init_loads_every_tensor(source_run: Path, tmp_path: Path, kind: str) -> None:
    trained, _ = load_run(source_run)
    state = weights(trained)
    source: Path = source_run
    if kind == "pt":
        source = tmp_path / "weights.pt"
        torch.save(state, source)
    elif kind == "checkpoint-pt":
        source = tmp_path / "weights.pt"
        torch.save({"state_dict": state, "epoch": 3}, source)
    elif kind == "safetensors":
        source = tmp_path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(source))
    model = build_model("cifar_resnet9?width=4", 2, seed=1)
    loaded = finetune.load_weights(model, source)
    assert loaded == list(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_file_that_does_not_fit_names_the_key_and_both_shapes(
    source_run: Path, tmp_path: Path
) -> None:
    model = build_model("cifar_resnet9?width=4", 3, seed=0)  # 3 classes: fc is 3 × 32
    with pytest.raises(
        DataError, match=r"'fc\.weight' has shape \(2, 32\) in the file but \(3, 32\)"
    ):
        finetune.load_weights(model, source_run)
    fresh = weights(model)
    kept = finetune.load_weights(model, source_run, exclude=["fc.*"])  # a new head
    assert "fc.weight" not in kept and torch.equal(model.fc.weight, fresh["fc.weight"])
    other = build_model("cifar_resnet20", 2, seed=0)
    with pytest.raises(DataError, match=r"does not fit the model: it has no 'conv1\.weight'"):
        finetune.load_weights(other, source_run)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="holds no state dict"):
        finetune.load_weights(model, tmp_path / "list.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match=r"junk\.safetensors is not a readable \.safetensors"):
        finetune.load_weights(model, tmp_path / "junk.safetensors")


def test_train_only_changes_exactly_the_chosen_parameters(
    source_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    before = weights(load_run(source_run)[0])
    cfg = small(tiny_data, tmp_path / "head", init=str(source_run), train_only=["fc.*"])
    result = train(cfg, progress_bar=False)
    assert result.model is not None
    after = result.model.state_dict()
    params = dict(result.model.named_parameters())
    for name, parameter in params.items():
        if name == "fc.weight":
            assert parameter.requires_grad and not torch.equal(after[name], before[name])
        else:
            assert not parameter.requires_grad and parameter.grad is None, name
            assert torch.equal(after[name], before[name]), name
    # without --freeze-bn the frozen BatchNorm layers still update their running statistics
    assert not torch.equal(after["prep.1.running_mean"], before["prep.1.running_mean"])
    summary = json.loads((tmp_path / "head" / "summary.json").read_text())
    assert summary["trainable_params"] == 32 * 2


def test_freeze_bn_keeps_running_statistics(
    source_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    before = weights(load_run(source_run)[0])
    cfg = small(
        tiny_data, tmp_path / "frozen", init=str(source_run), train_only=["fc.*", "res3.*"],
        freeze_bn=True,
    )  # fmt: skip
    result = train(cfg, progress_bar=False)
    assert result.model is not None
    after = result.model.state_dict()
    frozen = [k for k in after if k.startswith(("prep.", "layer1.", "res1.")) and "running" in k]
    assert frozen
    for key in frozen:
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["res3.0.1.running_mean"], before["res3.0.1.running_mean"])
    assert json.loads((tmp_path / "frozen" / "summary.json").read_text())["frozen_batchnorm"][
        :2
    ] == ["prep.1", "layer1.0.1"]


def test_frozen_bn_is_in_eval_mode_during_training() -> None:
    model = build_model("cifar_resnet9?width=4", 2, seed=0)
    finetune.train_only(model, ["res3.*", "fc.*"])
    set_mode = finetune.train_mode(finetune.frozen_batchnorms(model))
    set_mode(model)
    assert model.training and not model.prep[1].training and model.res3[0][1].training


def test_train_only_matching_nothing_is_an_error() -> None:
    model = build_model("cifar_resnet9?width=4", 2, seed=0)
    with pytest.raises(ArgumentError, match=r"--train-only 'head\.\*' matches no parameter.*fc"):
        finetune.train_only(model, ["fc.*", "head.*"])


def test_predicted_memory_follows_the_freeze_pattern(
    source_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """Gradient bytes are 4 per trainable parameter (numel, float32), momentum state as
    many; parameter bytes count every parameter."""
    cfg = small(tiny_data, tmp_path / "m", init=str(source_run), train_only=["fc.*", "res3.*"])
    result = train(cfg, progress_bar=False)
    assert result.model is not None
    memory = result.extra["memory"]
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    every = sum(p.numel() for p in result.model.parameters())
    assert memory["grads"] == 4 * trainable == memory["optimizer_state"]
    assert memory["params"] == 4 * every and memory["batch"] == 8
    whole = train(small(tiny_data, tmp_path / "w", epochs=1), progress_bar=False).extra["memory"]
    assert whole["grads"] == 4 * every
    assert whole["saved_activations"] > memory["saved_activations"]  # frozen early layers
    adam = dataclasses.replace(cfg, out=str(tmp_path / "a"), optimizer="adam", lr=0.001)
    # Adam keeps two moments per trainable value and a 4-byte step per trainable tensor.
    tensors = sum(1 for p in result.model.parameters() if p.requires_grad)
    adam_state = train(adam, progress_bar=False).extra["memory"]["optimizer_state"]
    assert adam_state == 2 * 4 * trainable + 4 * tensors


@pytest.mark.parametrize("patterns", [[], ["fc.*", "res3.*"], ["fc.*"]])
def test_predicted_saved_activations_equal_autograd(patterns: list[str]) -> None:
    """The printed prediction against the tensors autograd really keeps for backward."""
    from tests.torch.saved import saved_bytes

    model = build_model("cifar_resnet9?width=8", 10, seed=0)
    if patterns:
        finetune.train_only(model, patterns)
    predicted = finetune.predicted_memory(model, (8, 3, 32, 32), "momentum")
    model.train()
    assert predicted["saved_activations"] == saved_bytes(model, torch.rand(8, 3, 32, 32))
