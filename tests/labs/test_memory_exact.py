"""``lab memory``: convlens's prediction equals one real training step to the byte —
parameters, gradients, optimizer state (Adam's ``step`` tensors included), saved
activations, buffers — for DeepLabv3 and the segmentation U-Net, trained whole, last layer
only and head only, with BatchNorm training or kept in eval mode, at H×W and 2H×2W."""

from __future__ import annotations

import pytest
from torch import nn

from convlens.labs.memory import MemoryConfig, build_model, compare, freeze, run
from convlens.labs.runtime import finetune

SMALL_DEEPLAB = "memory_models:small_deeplabv3"
NARROW_UNET = "memory_models:narrow_unet"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_exact(result) -> None:
    for part in ("params", "grads", "optimizer", "saved_activations", "buffers", "total"):
        predicted, measured = getattr(result.predicted, part), getattr(result.measured.memory, part)
        assert predicted == measured, f"{part}: predicted {predicted:,} B, measured {measured:,} B"
    assert result.partial == ()


def trainable(model: nn.Module, prefix: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


# (train-only patterns, parameter-name prefix they train ("" = all))
DEEPLAB_PARTS = [
    ((), ""),
    (("classifier.4*",), "classifier.4."),
    (("classifier.*",), "classifier."),
]


@pytest.mark.parametrize("size", [32, 64], ids=["HxW", "2Hx2W"])
@pytest.mark.parametrize("freeze_bn", [False, True], ids=["bn-train", "bn-eval"])
@pytest.mark.parametrize("parts", DEEPLAB_PARTS, ids=["whole", "last-layer", "head"])
def test_deeplabv3_prediction_equals_a_real_step(parts: tuple, freeze_bn: bool, size: int) -> None:
    patterns, prefix = parts
    cfg = MemoryConfig(SMALL_DEEPLAB, (3, size, size), 2, patterns, freeze_bn)
    model = build_model(cfg.model, cfg.seed)
    freeze(model, patterns, freeze_bn and bool(patterns))
    if freeze_bn and not patterns:  # the whole model trains, every BatchNorm in eval mode
        names = [n for n, m in model.named_modules() if isinstance(m, finetune.BATCHNORMS)]
        finetune.train_mode(names)(model)
    result = compare(model, cfg)
    assert_exact(result)
    assert result.trainable_params == trainable(model, prefix)
    in_eval = 0 if not freeze_bn else (24 if prefix in ("", "classifier.4.") else 17)
    assert (result.batchnorms, result.eval_batchnorms) == (24, in_eval)  # 17 in the backbone


@pytest.mark.parametrize("size", [188, 376], ids=["HxW", "2Hx2W"])
@pytest.mark.parametrize(
    "patterns", [(), ("head.*",), ("dec1.*", "head.*")], ids=["whole", "last-layer", "head"]
)
def test_valid_unet_prediction_equals_a_real_step(patterns: tuple, size: int) -> None:
    result = run(MemoryConfig(NARROW_UNET, (1, size, size), 2, patterns))
    assert_exact(result)
    head = 4 * 2 + 2  # a 1×1 convolution 4 → 2 classes
    dec1 = (8 * 9 * 4 + 4) + (4 * 9 * 4 + 4)  # two 3×3 convolutions 8 → 4 → 4
    expected = {(): 121_658, ("head.*",): head, ("dec1.*", "head.*"): dec1 + head}
    assert result.trainable_params == expected[patterns]


UNET_SAME = "zoo:unet_same?base_channels=4&depth=2"


@pytest.mark.parametrize("size", [32, 64], ids=["HxW", "2Hx2W"])
@pytest.mark.parametrize(
    "patterns, freeze_bn",
    [((), False), (("head.*",), True), (("decoders.*", "ups.*", "head.*"), False)],
    ids=["whole", "last-layer-bn-eval", "decoder"],
)
def test_padded_unet_with_batchnorm_prediction_equals_a_real_step(
    patterns: tuple, freeze_bn: bool, size: int
) -> None:
    result = run(MemoryConfig(UNET_SAME, (3, size, size), 2, patterns, freeze_bn))
    assert_exact(result)
    assert result.eval_batchnorms == (result.batchnorms if freeze_bn else 0)


@pytest.mark.parametrize(
    "patterns, freeze_bn, size",
    [
        (("classifier.4*",), True, 32),
        (("classifier.4*",), False, 64),
        (("classifier.*",), True, 64),
        (("classifier.*",), False, 32),
    ],
    ids=["last-layer-bn-eval-HxW", "last-layer-2Hx2W", "head-bn-eval-2Hx2W", "head-HxW"],
)
def test_the_zoos_deeplabv3_resnet50_prediction_equals_a_real_step(
    patterns: tuple, freeze_bn: bool, size: int
) -> None:
    # the whole model, with and without BatchNorm in eval mode, is held to a real step in
    # tests/torch/test_training_memory.py (the same measurement)
    result = run(MemoryConfig("zoo:deeplabv3_resnet50", (3, size, size), 2, patterns, freeze_bn))
    assert_exact(result)
    last = 256 * 21 + 21  # classifier.4: a 1×1 convolution 256 → 21 classes
    aspp = 2 * 2048 * 256 + 3 * 2048 * 256 * 9 + 5 * 256 * 256 + 6 * 2 * 256  # 6 BatchNorms
    head = aspp + 256 * 256 * 9 + 2 * 256 + last  # classifier.1–4
    assert result.trainable_params == (last if patterns == ("classifier.4*",) else head)
    assert result.params == 39_638_869


def test_the_optimizer_state_is_everything_in_optimizer_state() -> None:
    # Adam: two float32 moments per parameter and one float32 step tensor per tensor;
    # SGD with momentum: one buffer; plain SGD: nothing
    counts = {}
    for optimizer in ("adam", "adamw", "momentum", "sgd"):
        result = run(
            MemoryConfig(NARROW_UNET, (1, 188, 188), 1, ("dec1.*", "head.*"), optimizer=optimizer)
        )
        assert_exact(result)
        counts[optimizer] = result.measured.memory.optimizer
    values, tensors = (8 * 9 * 4 + 4) + (4 * 9 * 4 + 4) + (4 * 2 + 2), 6
    assert counts == {
        "adam": 2 * 4 * values + 4 * tensors,
        "adamw": 2 * 4 * values + 4 * tensors,
        "momentum": 4 * values,
        "sgd": 0,
    }
