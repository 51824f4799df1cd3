"""Saved-for-backward bytes against what autograd really keeps (saved_tensors_hooks)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.core.analyze import Options, analyze_network
from tests.core.oracle import saved_activation_bytes

LAYERS = [
    "conv2d 4 k=3 p=1",
    "conv2d 4 k=3 p=1 bias=false",
    "batchnorm2d",
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "gelu",
    "leaky_relu 0.1",
    "silu",
    "elu",
    "hardswish",
    "maxpool2d 2",
    "avgpool2d 2",
    "dropout 0.5",
    "upsample 2",
    "upsample 2 mode=bilinear",
    "se 2",
    "conv_transpose2d 4 k=2 s=2",
    "depthwise 3 p=1",
    "adaptive_avgpool2d 3",
    "identity",
    "dropout 0",
    "relu inplace=true",
    "relu6 inplace=true",
    "leaky_relu 0.1 inplace=true",
    "elu inplace=true",
    "silu inplace=true",
    "hardswish inplace=true",
    "hardsigmoid inplace=true",
    "dropout 0.2 inplace=true",
    "dropout 0.3 channelwise=true",
    "batchnorm2d training=false",
    "pad (1,2,0,1)",
    "pad (1,1,1,1) mode=reflect",
    "pad (2,1,1,2) mode=replicate",
    "pad (1,1,1,1) mode=circular",
    "roll (1,2) dims=(2,3)",
    "concat_tensor before=(2)",
]


@st.composite
def trainable_networks(draw):
    lines = ["input 4x12x12"]
    for i in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:
            lines += [f"conv2d 4 k=1 as r{i}", "relu", "conv2d 4 k=3 p=1", f"add r{i}"]
        else:
            lines.append(draw(st.sampled_from(LAYERS)))
        if "maxpool" in lines[-1] or "avgpool" in lines[-1]:
            lines.append("upsample 2")  # keep the size up
    if draw(st.booleans()):
        lines += ["flatten", "linear 5"]
    frozen = draw(st.integers(0, len(lines) - 1))
    return "\n".join(lines), frozen


@given(trainable_networks())
@settings(max_examples=150)
def test_saved_activations_equal_autograd(case: tuple[str, int]) -> None:
    text, frozen = case
    net = convlens.api.load_network(text)
    layers = tuple(replace(spec, frozen=i < frozen) for i, spec in enumerate(net.layers))
    net = replace(net, layers=layers)
    report = analyze_network(net, Options(batch=2))
    assert report.totals.saved_activation_bytes == saved_activation_bytes(net, batch=2), text


def test_training_memory_parts_add_up() -> None:
    r = convlens.analyze(
        "input 3x32x32\nconv2d 8 k=3\nbatchnorm2d\nrelu\nflatten\nlinear 10", optimizer="adam"
    )
    t = r.totals
    params = 8 * 3 * 3 * 3 + 8 + 2 * 8 + 10 * (8 * 30 * 30) + 10
    assert t.params == params
    assert t.param_bytes == 4 * params and t.grad_bytes == 4 * params
    # Adam: two moments per parameter and a float32 step count per parameter tensor
    # (conv, batchnorm and linear: a weight and a bias each)
    assert t.optimizer_bytes == 2 * 4 * params + 4 * 6
    assert t.buffer_bytes == 4 * (2 * 8) + 8  # running mean/var in float32, int64 counter
    assert t.training_bytes == (
        t.param_bytes + t.buffer_bytes + t.grad_bytes + t.optimizer_bytes + t.saved_activation_bytes
    )


def test_frozen_prefix_saves_nothing_before_first_trainable_layer() -> None:
    text = "input 3x16x16\nconv2d 8 k=3\nrelu\nconv2d 8 k=3\nrelu\nflatten\nlinear 4"
    everything = convlens.analyze(text).totals
    head_only = convlens.analyze(text, frozen=["conv2d_*", "relu_*"]).totals
    # Only the linear layer trains: it keeps its (flattened) input, nothing else is kept.
    assert head_only.saved_activation_bytes == 8 * 12 * 12 * 4
    assert head_only.trainable_params == 4 * 8 * 12 * 12 + 4
    assert everything.saved_activation_bytes > head_only.saved_activation_bytes


def test_peak_inference_memory_of_a_chain() -> None:
    # input 3·8·8, conv → 4·8·8, relu → 4·8·8: the peak holds two tensors at a time.
    r = convlens.analyze("input 3x8x8\nconv2d 4 k=3 p=1\nrelu")
    assert r.totals.peak_activation_bytes == 4 * max(3 * 64 + 4 * 64, 4 * 64 + 4 * 64)


def test_peak_keeps_skip_connections_alive() -> None:
    text = "input 1x8x8\nconv2d 4 k=1 as a\nconv2d 4 k=1\nconv2d 4 k=1\nadd a"
    r = convlens.analyze(text)
    # While the third conv runs, 'a', the second conv's output and its own are alive.
    assert r.totals.peak_activation_bytes == 4 * (3 * 4 * 64)


def test_dtype_and_batch_scale_memory() -> None:
    a = convlens.analyze("input 3x8x8\nconv2d 4 k=3", dtype="float32")
    b = convlens.analyze("input 3x8x8\nconv2d 4 k=3", dtype="float16", batch=4)
    assert b.totals.peak_activation_bytes == a.totals.peak_activation_bytes * 4 // 2
