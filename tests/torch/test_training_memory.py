"""Training memory to the byte: parameters, gradients, optimizer state and saved activations
as ``analyze`` predicts them, against what one real training step holds (``.grad``,
``optimizer.state`` — Adam's per-parameter ``step`` tensors included — and the activations
autograd saves). Whole models, last layer or head only, BatchNorm kept in eval mode while the
rest trains, half precision, and random networks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import convlens
from convlens.core.analyze import Options, analyze_network
from convlens.torch.build import build_module
from convlens.zoo import create_model
from tests.core.test_memory import trainable_networks
from tests.torch.training_step import OPTIMIZERS, predicted, training_step


def _freeze_all_but(model: nn.Module, prefixes: tuple[str, ...]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(not prefixes or name.startswith(prefixes))


def _batchnorm_in_eval(model: nn.Module) -> None:
    """Fine-tuning's frozen BatchNorm: the model trains, its BatchNorms use running stats."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def check_step(model: nn.Module, x: torch.Tensor, optimizer: str = "adam", **options) -> None:
    torch.manual_seed(0)
    report = convlens.analyze(model, input=x, optimizer=optimizer, **options)
    assert predicted(report) == training_step(model, x, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_half_precision_resnet18_holds_what_its_training_step_holds(optimizer: str) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).half().train()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float16)
    report = convlens.analyze(model, input_size=tuple(x.shape), optimizer=optimizer)
    assert report.options.dtype == "float16"  # from the parameters: no --dtype needed
    assert report.totals.param_bytes == 2 * sum(p.numel() for p in model.parameters())
    check_step(model, x, optimizer)  # BatchNorm's saved mean and 1/std stay float16 too


class Parts(nn.Module):
    """A frozen stem, a BatchNorm, a module that never runs and a trainable head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.unused = nn.Linear(5, 5)  # trainable, but no gradient: the forward never uses it
        self.head = nn.Conv2d(8, 4, 1)
        self.stem.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.stem(x))))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("frozen_bn", [False, True])
def test_every_optimizer_frozen_and_unused_parameters(optimizer: str, frozen_bn: bool) -> None:
    model = Parts().train()
    if frozen_bn:
        _batchnorm_in_eval(model)
    check_step(model, torch.rand(2, 3, 8, 8), optimizer)


SEGMENTATION = [
    # (zoo model, per-sample input, trainable parameter prefixes (() = all), BatchNorm in
    # eval mode while the rest trains): H×W and 2H×2W, whole model, last layer, head
    ("deeplabv3_resnet50", (3, 64, 64), (), False),
    ("deeplabv3_resnet50", (3, 128, 128), (), True),
    ("deeplabv3_resnet50", (3, 64, 64), ("classifier.4",), True),  # the last layer only
    ("deeplabv3_resnet50", (3, 128, 128), ("classifier.4",), False),
    ("deeplabv3_resnet50", (3, 64, 64), ("classifier",), False),  # the head only
    ("deeplabv3_resnet50", (3, 64, 64), ("classifier",), True),
    ("unet", (1, 188, 188), (), False),  # the paper's valid U-Net (no BatchNorm)
    ("unet", (1, 188, 188), ("head",), False),
    ("unet_same", (3, 32, 32), (), False),
    ("unet_same", (3, 64, 64), (), True),
    ("unet_same", (3, 64, 64), ("decoders", "ups", "head"), False),
]


@pytest.mark.parametrize(
    "name, shape, trainable, frozen_bn",
    SEGMENTATION,
    ids=[
        f"{n}-{s[1]}-{'+'.join(t) or 'all'}-{'bn-eval' if f else 'bn-train'}"
        for n, s, t, f in SEGMENTATION
    ],
)
def test_segmentation_models_hold_what_a_training_step_holds(
    name: str, shape: tuple, trainable: tuple, frozen_bn: bool
) -> None:
    torch.manual_seed(0)
    model = create_model(name).train()
    _freeze_all_but(model, trainable)
    if frozen_bn:
        _batchnorm_in_eval(model)
    check_step(model, torch.rand(2, *shape))


def test_freeze_bn_option_equals_batchnorm_modules_in_eval() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).train()
    x = torch.rand(2, 3, 32, 32)
    option = convlens.analyze(model, input=x, freeze_bn=True)
    _batchnorm_in_eval(model)
    flags = convlens.analyze(model, input=x)
    assert predicted(option) == predicted(flags) == training_step(model, x)
    # without it, each BatchNorm adds its batch mean and 1/std: 2·C float32 values
    plain = convlens.analyze(create_model("resnet18", num_classes=10).train(), input=x)
    channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert plain.totals.saved_activation_bytes - option.totals.saved_activation_bytes == (
        2 * channels * 4
    )


def test_resnet50_over_count_without_frozen_batchnorm_is_the_batch_statistics() -> None:
    # issue 12: analyze over-counted a fine-tuned ResNet-50 by 0.25 % without this case
    model = create_model("resnet50")
    trained = convlens.analyze(model, input_size=(1, 3, 224, 224)).totals.saved_activation_bytes
    frozen = convlens.analyze(
        model, input_size=(1, 3, 224, 224), freeze_bn=True
    ).totals.saved_activation_bytes
    channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert trained - frozen == 2 * channels * 4
    assert 0.002 < (trained - frozen) / frozen < 0.003


@st.composite
def training_cases(draw):
    text, frozen = draw(trainable_networks())
    return text, frozen, draw(st.sampled_from(sorted(OPTIMIZERS))), draw(st.booleans())


@given(training_cases())
@settings(max_examples=40, deadline=None)
def test_random_networks_hold_what_a_training_step_holds(case: tuple) -> None:
    text, frozen, optimizer, frozen_bn = case
    net = convlens.api.load_network(text)
    net = replace(
        net, layers=tuple(replace(s, frozen=i < frozen) for i, s in enumerate(net.layers))
    )
    options = Options(batch=2, optimizer=optimizer, freeze_bn=frozen_bn)
    report = analyze_network(net, options)
    torch.manual_seed(0)
    module = build_module(net).train()
    if frozen_bn:
        _batchnorm_in_eval(module)
    x = torch.rand(2, *(int(d) for d in net.input_shape))
    assert predicted(report) == training_step(module, x, optimizer=optimizer), text


def test_cli_freeze_bn_and_the_models_own_dtype(tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from convlens.cli.main import app

    (tmp_path / "half_net.py").write_text(
        "from torch import nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).half()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def totals(*extra: str) -> dict:
        args = ["analyze", "half_net:build", "--input", "3x8x8", "-f", "json", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    plain, frozen = totals(), totals("--freeze-bn")
    assert plain["dtype"] == "float16" and plain["totals"]["param_bytes"] == 2 * (8 * 27 + 8 + 16)
    # BatchNorm's batch mean and 1/std (8 channels, float16) are kept only when it trains
    assert (
        plain["totals"]["saved_activation_bytes"] - frozen["totals"]["saved_activation_bytes"]
        == 2 * 8 * 2
    )
    assert totals("--dtype", "float32")["totals"]["param_bytes"] == 4 * (8 * 27 + 8 + 16)
