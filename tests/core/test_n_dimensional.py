"""Signals (C, L) and volumes or clips (C, D, H, W): receptive fields against the
gradient method along every axis, textbook values, the whole input after global pooling,
and the errors for a layer given a map of the wrong rank."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.errors import SpecError
from tests.core.oracle import network
from tests.core.test_receptive_field import check_rf


def _window_layer(draw, axes: int, index: int, lines: list[str]) -> None:
    """One random layer of a 1-D or 3-D network, or a residual pair of them."""
    d = f"{axes}d"
    choice = draw(st.integers(0, 5))
    if choice == 0:
        k, s, dil = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
        lines.append(f"conv{d} 1 k={k} s={s} d={dil} p={draw(st.integers(0, k // 2))}")
    elif choice == 1:
        kind = draw(st.sampled_from([f"avgpool{d}", f"maxpool{d}"]))
        lines.append(f"{kind} {draw(st.integers(2, 3))} s={draw(st.integers(1, 2))}")
    elif choice == 2:
        mode = draw(st.sampled_from(["nearest", "linear" if axes == 1 else "trilinear"]))
        lines.append(f"upsample{d} 2 mode={mode}")
    elif choice == 3:
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        lines.append(f"conv_transpose{d} 1 k={k} s={s} d={draw(st.integers(1, 2))}")
    elif choice == 4:  # two branches joined exactly
        a, b = draw(st.integers(0, 1)), draw(st.integers(0, 2))
        lines += [
            f"identity as p{index}",
            f"conv{d} 1 k={2 * a + 1} p={a} as x{index}",
            f"from p{index}",
            f"conv{d} 1 k={2 * b + 1} p={b}",
            f"add x{index}",
        ]
    else:
        lines.append(f"batchnorm{d}")


@st.composite
def signal_networks(draw):
    lines = [f"input 1x{draw(st.integers(48, 72))}"]
    for i in range(draw(st.integers(1, 4))):
        _window_layer(draw, 1, i, lines)
    return "\n".join(lines)


@st.composite
def volume_networks(draw):
    sizes = "x".join(str(draw(st.integers(22, 28))) for _ in range(3))
    lines = [f"input 1x{sizes}"]
    for i in range(draw(st.integers(1, 2))):
        _window_layer(draw, 3, i, lines)
    return "\n".join(lines)


@given(signal_networks())
@settings(max_examples=60)
def test_signal_receptive_field_equals_gradient_extent(text: str) -> None:
    check_rf(text, margin=8)


@given(volume_networks())
@settings(max_examples=25)
def test_volume_receptive_field_equals_gradient_extent(text: str) -> None:
    check_rf(text, margin=5)


def test_textbook_values_on_a_signal_and_a_clip() -> None:
    r = convlens.analyze("input 1x100\nconv1d 4 k=3 s=2\nconv1d 4 k=3")
    assert r.totals.rf == (3 + (3 - 1) * 2,) and r.totals.jump == (2,)
    # C3D's first block: 3×3×3 convolution, 1×2×2 pooling, 3×3×3 convolution.
    r = convlens.analyze(
        "input 3x16x112x112\nconv3d 64 k=3 p=1\nmaxpool3d (1,2,2)\nconv3d 8 k=3 p=1"
    )
    assert r.totals.rf == (3 + 2, 3 + 1 + 2 * 2, 3 + 1 + 2 * 2)
    assert r.totals.jump == (1, 2, 2)
    assert r.layers[0].params == 64 * 3 * 3 * 3 * 3 + 64
    assert r.layers[0].macs == 64 * 16 * 112 * 112 * (3 * 3 * 3 * 3)


def test_global_pooling_sees_the_whole_signal_or_volume() -> None:
    r = convlens.analyze("input 2x50\nconv1d 4 k=3\nglobal_avgpool\nflatten\nlinear 2")
    assert r.totals.rf_status == "whole input" and r.totals.rf == (50,)
    assert r.layers[1].output_shape == (4, 1)
    r = convlens.analyze("input 2x4x6x8\nconv3d 4 k=1\nglobal_avgpool")
    assert r.totals.rf == (4, 6, 8) and r.layers[1].output_shape == (4, 1, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input 1x100\nconv2d 8 k=3",
            "conv2d expects a (C, H, W) input, got (1, 100) (a 1-D input (C, L): use conv1d)",
        ),
        (
            "input 3x16x32x32\nmaxpool2d 2",
            "maxpool2d expects a (C, H, W) input, got (3, 16, 32, 32) "
            "(a 3-D input (C, D, H, W): use maxpool3d)",
        ),
        (
            "input 3x32x32\nconv3d 8 k=3",
            "conv3d expects a (C, D, H, W) input, got (3, 32, 32) (a 2-D input (C, H, W): "
            "use conv2d)",
        ),
        ("input 3x32x32\nbatchnorm3d", "use batchnorm2d"),
        ("input 1x100\nupsample 2", "(a 1-D input (C, L): use upsample1d)"),
        ("input 3x8x8\nupsample3d 2", "(a 2-D input (C, H, W): use upsample)"),
        ("input 1x100\nupsample1d 2 mode=bilinear", "must be one of nearest, linear"),
        ("input 1x100\nconv1d 4 k=(3,3)", "'kernel_size' takes one value, got 2 values"),
        ("input 1x4x4x4\nconv3d 4 p=(1,1)", "'padding' takes 1, 3 or 6 values, got 2"),
        ("input 1x2x3x4x5\nrelu", "input must be channels x height x width"),
    ],
)
def test_a_layer_of_the_wrong_rank_is_named(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        convlens.analyze(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "input 2x20\nconv1d 3 k=4 p=(3,0)",  # causal: all the padding before
        "input 2x20\nconv1d 3 k=4 d=2 p=same",  # 'same' with an even extent: 3 before, 3 after
        "input 1x5x6x7\nconv3d 2 k=(2,3,2) p=(1,0,1,1,0,1)",
        "input 1x5x6x7\nconv3d 2 k=2 p=same",
    ],
)
def test_asymmetric_padding_matches_torch(text: str) -> None:
    """(before, after) per axis: the module built from it pads with F.pad first."""
    from tests.core.oracle import measure

    truth, report = measure(network(text)), convlens.analyze(text, batch=2)
    assert report.layers[-1].output_shape == truth["shape"]
    assert (report.totals.params, report.totals.macs) == (truth["params"], truth["macs"])


def test_causal_padding_shifts_the_receptive_field() -> None:
    # F.pad(x, (2, 0)) then a 3-tap conv: output 0 reads positions −2 … 0.
    r = convlens.analyze("input 1x16\npad (2,0)\nconv1d 1 k=3")
    assert r.totals.rf == (3,) and r.totals.start == (-1,)
    check_rf("input 1x40\npad (2,0)\nconv1d 1 k=3\npad (2,0)\nconv1d 1 k=3 d=2", margin=8)


def test_symbolic_signal_and_volume_match_numeric() -> None:
    from convlens.core.numbers import symbol

    signal = "input 1xL\nconv1d 4 k=k p=k//2\nmaxpool1d 2\nconv1d 4 k=k p=k//2"
    symbolic = convlens.analyze(signal)
    for k, length in ((1, 20), (3, 64), (5, 33)):
        numeric = convlens.analyze(signal, k=k, L=length)
        values = {symbol("k"): k, symbol("L"): length}
        assert symbolic.totals.rf[0].subs(values) == numeric.totals.rf[0]
        assert symbolic.totals.macs.subs(values) == numeric.totals.macs
    volume = "input 3xDxHxW\nconv3d 8 k=3 p=1\nmaxpool3d 2\nconv_transpose3d 2 k=2 s=2"
    symbolic = convlens.analyze(volume)
    numeric = convlens.analyze(volume.replace("DxHxW", "6x7x9"))
    values = {symbol("D"): 6, symbol("H"): 7, symbol("W"): 9}
    assert tuple(d.subs(values) for d in symbolic.layers[-1].output_shape[1:]) == (6, 6, 8)
    assert numeric.layers[-1].output_shape == (2, 6, 6, 8)
    assert symbolic.totals.flops.subs(values) == numeric.totals.flops


def test_a_convolution_spanning_the_signal_is_a_fully_connected_layer() -> None:
    """docs/language.md: examples/signal/'s two designs have the same numbers, and PyTorch
    computes the same function with the linear layer's weights in the convolution."""
    from pathlib import Path

    import torch

    examples = Path(__file__).resolve().parents[2] / "examples" / "signal"
    conv = convlens.analyze(examples / "conv_as_fc.cnn")
    fc = convlens.analyze(examples / "fully_connected.cnn")
    for field in ("params", "macs", "flops", "rf", "training_bytes"):
        assert getattr(conv.totals, field) == getattr(fc.totals, field), field
    assert conv.totals.params == 8 * 16 + 8 and conv.totals.macs == 8 * 16
    linear = torch.nn.Linear(16, 8).double()
    conv1d = torch.nn.Conv1d(1, 8, 16).double()
    with torch.no_grad():
        conv1d.weight.copy_(linear.weight.view(8, 1, 16))
        conv1d.bias.copy_(linear.bias)
    x = torch.randn(5, 1, 16, dtype=torch.float64)
    torch.testing.assert_close(conv1d(x).flatten(1), linear(x.flatten(1)))


@pytest.mark.parametrize(
    ("text", "rf", "status"),
    [
        # concatenating the channels of two signals keeps every position
        ("input 2x40\nconv1d 3 k=3 p=1 as a\nfrom input\nconv1d 3 k=5 p=2\nconcat a", (5,), "ok"),
        # ... along the length it puts them side by side: the whole input
        (
            "input 2x40\nconv1d 3 k=3 as a\nfrom input\nconv1d 3 k=3\nconcat a dim=2",
            (40,),
            "whole input",
        ),
        # the mean over a clip's frames reads every frame: the whole input
        ("input 3x8x16x16\nconv3d 4 k=3\nreduce mean 2", (8, 16, 16), "whole input"),
        # ... over its channels, every position stays put
        ("input 3x8x16x16\nconv3d 4 k=3\nreduce mean 1", (3, 3, 3), "ok"),
        ("input 2x40\nconv1d 3 k=3\nnarrow 2 5 10", (3,), "ok"),
        ("input 4x40\nview (2,80)", (40,), "whole input"),
        ("input 4x40\nconv1d 4 k=3\nview (2,2,38)", (40,), "whole input"),
        ("input 4x8x8x8\nconv3d 4 k=3\nview (4,6,6,6) copies=true", (3, 3, 3), "ok"),
        ("input 4x6x40\nconv2d 4 k=3\nview (2,2,4,38)", (6, 40), "whole input"),
        ("input 4x40\nconv1d 4 k=3\nroll 1 dims=1", (3,), "ok"),
        ("input 4x40\nconv1d 4 k=3\nroll 1 dims=2", (40,), "whole input"),
        ("input 2x5x6x7\nstack dim=1", (1, 1, 1), "ok"),
    ],
)
def test_layout_kinds_on_signals_and_volumes(text: str, rf: tuple, status: str) -> None:
    """concat, reduce, narrow, view, roll and stack read a (C, *spatial) map of any rank
    as they read an image: joining or reducing a spatial axis makes the field the whole
    input, the channels keep every position."""
    report = convlens.analyze(text)
    assert (report.totals.rf, report.totals.rf_status) == (rf, status), text


def test_narrowing_a_clip_shifts_the_field_along_its_axis() -> None:
    r = convlens.analyze("input 1x20x20x20\nnarrow 3 4 10\nconv3d 1 k=3")
    assert r.totals.rf == (3, 3, 3) and r.totals.start == (1, 5, 1)
    check_rf("input 1x24x24x24\nnarrow 3 4 16\nconv3d 1 k=3", margin=2)
