"""The real ``convlens lab memory`` command: its JSON (``predicted`` and ``measured``, each
with ``params``, ``grads``, ``optimizer``, ``saved_activations``, ``total``), its table,
the two fine-tuning questions on a small DeepLabv3 (last layer against the whole model;
H and W doubled), and one line with exit status 2 on bad input."""

from __future__ import annotations

import json

import pytest
import torch
from test_colourize_cli import invoke

import convlens
from convlens.errors import ConvlensError
from convlens.labs.memory import build_model

SMALL_DEEPLAB = "memory_models:small_deeplabv3"
PARTS = ("params", "grads", "optimizer", "saved_activations", "total")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def memory_json(*args: str) -> dict:
    code, output = invoke("lab", "memory", *args, "--format", "json")
    assert code == 0, output
    return json.loads(output)


def test_json_puts_the_prediction_beside_the_measurement() -> None:
    result = memory_json(SMALL_DEEPLAB, "--input", "3x32x32", "--optimizer", "sgd")
    model = build_model(SMALL_DEEPLAB, 0)
    values = sum(p.numel() for p in model.parameters())
    for side in ("predicted", "measured"):
        parts = result[side]
        assert set(PARTS) <= set(parts)
        assert parts["params"] == parts["grads"] == 4 * values  # float32, all trained
        assert parts["optimizer"] == 0  # plain SGD keeps no state
        assert parts["total"] == sum(parts[k] for k in (*PARTS[:-1], "buffers"))
    assert all(result["equal"].values())
    assert result["input"] == [2, 3, 32, 32]
    assert result["measured"]["peak"] > result["measured"]["params"] + result["measured"]["input"]


def test_the_table_says_every_part_is_equal_and_where_the_peak_is() -> None:
    code, output = invoke(
        "lab", "memory", SMALL_DEEPLAB, "-i", "3x32x32", "--train-only", "classifier.4*"
    )
    assert code == 0, output
    model = build_model(SMALL_DEEPLAB, 0)
    last = sum(p.numel() for n, p in model.named_parameters() if n.startswith("classifier.4."))
    total = sum(p.numel() for p in model.parameters())
    assert f"trains {last:,} of {total:,} parameters (--train-only 'classifier.4*')" in output
    for label in ("parameters", "gradients", "optimizer state", "saved activations"):
        row = next(line for line in output.splitlines() if line.startswith(f"| {label} |"))
        assert row.endswith("| equal |"), row
    assert "| **peak** |" in output
    assert "peak − total of the parts:" in output


def _parts(size: int, *train_only: str) -> dict:
    args = [f"--train-only={p}" for p in train_only]
    if train_only:
        args.append("--freeze-bn")
    return memory_json(SMALL_DEEPLAB, "--input", f"3x{size}x{size}", *args)["measured"]


def test_doubling_h_and_w_quadruples_activations_not_parameters() -> None:
    """Parameters, gradients and optimizer state do not depend on the input size; every
    saved activation is a feature map, ×4, except the ASPP image-pooling branch's 1×1 maps
    (which do not grow): ×4 exactly for the last layer, a little under for the whole."""
    for train_only in [(), ("classifier.4*",)]:
        small, large = _parts(32, *train_only), _parts(64, *train_only)
        for part in ("params", "grads", "optimizer", "buffers"):
            assert large[part] == small[part], part
        ratio = large["saved_activations"] / small["saved_activations"]
        if train_only:
            # classifier.4 saves its input alone: N × 256 × H/8 × W/8 float32 values
            assert small["saved_activations"] == 2 * 256 * 4 * 4 * 4
            assert ratio == 4
        else:
            assert 3.9 < ratio < 4
        assert large["peak"] > small["peak"]


def test_the_last_layer_holds_a_fraction_of_what_the_whole_model_holds() -> None:
    whole, last = _parts(32), _parts(32, "classifier.4*")
    assert whole["params"] == last["params"]  # frozen parameters stay in memory
    assert last["grads"] == 4 * (256 * 3 + 3)  # a 1×1 convolution 256 → 3 classes
    assert last["optimizer"] == 2 * last["grads"] + 2 * 4  # Adam: two moments, two steps
    assert 20 * last["saved_activations"] < whole["saved_activations"]
    assert last["peak"] < whole["peak"]


def one_line_error(*args: str) -> str:
    code, output = invoke("lab", "memory", *args)
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["deeplabv3_resnet50", "-i", "3x32x32"], "did you mean zoo:deeplabv3_resnet50"),
        (["zoo:no_such_model", "-i", "3x32x32"], "no_such_model"),
        ([SMALL_DEEPLAB, "-i", "3x32"], "C x H x W"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--optimizer", "rmsprop"], "--optimizer 'rmsprop'"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--format", "yaml"], "--format"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--batch", "0"], "--batch must be at least 1"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--train-only", "decoder.*"], "matches no parameter"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--freeze-bn"], "--freeze-bn"),
        ([SMALL_DEEPLAB, "-i", "3x32x32", "--batch", "1"], "--batch 2 or more"),
    ],
    ids=[
        "not-a-spec",
        "unknown-zoo-model",
        "two-sizes",
        "optimizer",
        "format",
        "batch-0",
        "pattern-matches-nothing",
        "freeze-bn-without-frozen-layers",
        "batchnorm-batch-1",
    ],
)
def test_bad_input_is_one_line(args: list[str], words: str) -> None:
    assert words in one_line_error(*args)


def test_an_input_too_small_for_valid_convolutions_names_the_smallest_that_works() -> None:
    line = one_line_error("memory_models:narrow_unet", "-i", "1x100x100", "--batch", "1")
    assert line.startswith("error: --input 1x100x100 is too small for memory_models:narrow_unet")
    works = line.split("; --input ")[1].split(" works")[0]
    c, h, w = (int(d) for d in works.split("x"))
    model = build_model("memory_models:narrow_unet", 0)
    model(torch.rand(1, c, h, w))  # the size it names runs ...
    with pytest.raises(ConvlensError):  # ... and one pixel less does not trace
        convlens.analyze(model, input_size=(1, c, h - 1, w - 1))
