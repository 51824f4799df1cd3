"""Every description under ``examples/`` parses, analyses and matches PyTorch; the
worked examples match their papers and parameter counts written out as arithmetic."""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from convlens.api import analyze, load_network
from convlens.cli.main import app
from convlens.core.analyze import Report
from convlens.core.numbers import is_numeric
from convlens.core.records import Network
from convlens.spec import parse_text
from convlens.torch.build import build_module

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ALL = sorted(EXAMPLES.rglob("*.cnn"))
# Values for examples written with symbols, so they can also be built and run.
SYMBOLS = {"colour_cnn.cnn": {"k": 3, "NF": 32, "NC": 24}}


def example_id(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def network(name: str, input_shape: tuple[int, int, int] | None = None) -> Network:
    path = EXAMPLES / name
    net = load_network(path, SYMBOLS.get(path.name, {}))
    return dataclasses.replace(net, input_shape=input_shape) if input_shape else net


def shapes_from_torch(net: Network, device: str) -> tuple[dict[str, tuple[int, ...]], int, int]:
    """Run the built module on ``device``: per-layer output shapes (batch 1 dropped),
    parameter count and buffer count."""
    torch.manual_seed(0)
    with torch.device(device):
        module = build_module(net).eval()
        seen: dict[str, tuple[int, ...]] = {}
        for spec in net.layers:
            layer = module.layers[spec.name.replace(".", "__")]
            layer.register_forward_hook(
                lambda _m, _i, out, name=spec.name: seen.__setitem__(name, tuple(out.shape[1:]))
            )
        with torch.no_grad():
            module(torch.zeros(1, *net.input_shape))
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    return seen, params, buffers


def assert_matches_torch(report: Report, device: str) -> None:
    seen, params, buffers = shapes_from_torch(report.network, device)
    for record in report.layers:
        assert seen[record.name] == tuple(record.output_shape), record.name
    assert params == report.totals.params
    assert buffers == report.totals.buffers


def test_examples_are_found() -> None:
    names = {example_id(p) for p in ALL}
    assert {
        "three_conv.cnn",
        "colour_cnn.cnn",
        "unet.cnn",
        "resnet_block.cnn",
        "dense_block.cnn",
        "mobilenet_block.cnn",
        "separable_vs_standard/standard.cnn",
        "separable_vs_standard/separable.cnn",
        "flatten_vs_gap/flatten.cnn",
        "flatten_vs_gap/gap.cnn",
    } <= names


@pytest.mark.parametrize("path", ALL, ids=example_id)
def test_example_analyses(path: Path) -> None:
    report = analyze(path)  # symbols stay symbols
    assert report.layers
    assert report.totals.params == sum((r.params for r in report.layers), 0)


@pytest.mark.parametrize("path", ALL, ids=example_id)
def test_example_through_the_cli(path: Path) -> None:
    args = ["analyze", str(path), "-f", "json"]
    if path.name in SYMBOLS:
        args += ["--set", ",".join(f"{k}={v}" for k, v in SYMBOLS[path.name].items())]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("path", ALL, ids=example_id)
def test_example_matches_pytorch_on_meta(path: Path) -> None:
    """Every layer's shape from a meta-device forward, parameters and buffers by numel."""
    report = analyze(path, **SYMBOLS.get(path.name, {}))
    assert all(is_numeric(d) for d in report.layers[-1].output_shape)
    assert_matches_torch(report, "meta")


@pytest.mark.parametrize("path", ALL, ids=example_id)
def test_example_macs_match_flop_counter(path: Path) -> None:
    """torch.utils.flop_counter counts 2 FLOPs per multiply-accumulate of convolutions
    and matrix products: exactly convlens's '2mac' convention."""
    from torch.utils.flop_counter import FlopCounterMode

    report = analyze(path, convention="2mac", **SYMBOLS.get(path.name, {}))
    with torch.device("meta"):
        module = build_module(report.network)
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, *report.network.input_shape))
    assert counter.get_total_flops() == 2 * report.totals.macs == report.totals.flops


# -- U-Net (Ronneberger et al. 2015, Fig. 1) ----------------------------------------------


def unet_sides(report: Report) -> list[int]:
    """The side length after every convolution, pooling and up-convolution, in order."""
    return [
        r.output_shape[1]
        for r in report.layers
        if r.kind in ("conv2d", "maxpool2d", "avgpool2d", "conv_transpose2d")
    ]


def test_unet_sizes_are_the_papers() -> None:
    report = analyze(EXAMPLES / "unet.cnn")
    down = [570, 568, 284, 282, 280, 140, 138, 136, 68, 66, 64, 32, 30, 28]
    up = [56, 54, 52, 104, 102, 100, 200, 198, 196, 392, 390, 388]
    assert unet_sides(report) == [*down, *up, 388]
    # the sizes Figure 1 names
    sides = set(unet_sides(report))
    assert {568, 284, 280, 140, 136, 68, 64, 32, 28, 56, 52, 104, 100, 200, 196, 392, 388} <= sides
    by_name = {r.name: r for r in report.layers}
    assert by_name["classes"].output_shape == (2, 388, 388)
    for skip, up_conv, side, channels in (
        ("skip4", "up4", 56, 512),
        ("skip3", "up3", 104, 256),
        ("skip2", "up2", 200, 128),
        ("skip1", "up1", 392, 64),
    ):
        assert by_name[skip].output_shape == (channels, side, side)
        assert by_name[up_conv].output_shape == (channels, side, side)
    channels = [r.output_shape[0] for r in report.layers if r.kind == "concat"]
    assert channels == [1024, 512, 256, 128]


def test_unet_parameters_as_arithmetic() -> None:
    def conv(c_in: int, c_out: int, k: int = 3) -> int:
        return c_out * (c_in * k * k) + c_out

    def up(c_in: int, c_out: int) -> int:
        return c_in * c_out * 2 * 2 + c_out  # ConvTranspose2d weight (C_in, C_out, 2, 2)

    expected = (
        conv(1, 64)
        + conv(64, 64)
        + conv(64, 128)
        + conv(128, 128)
        + conv(128, 256)
        + conv(256, 256)
        + conv(256, 512)
        + conv(512, 512)
        + conv(512, 1024)
        + conv(1024, 1024)
        + up(1024, 512)
        + conv(1024, 512)
        + conv(512, 512)
        + up(512, 256)
        + conv(512, 256)
        + conv(256, 256)
        + up(256, 128)
        + conv(256, 128)
        + conv(128, 128)
        + up(128, 64)
        + conv(128, 64)
        + conv(64, 64)
        + conv(64, 2, k=1)
    )
    assert expected == 31_030_658
    report = analyze(EXAMPLES / "unet.cnn")
    assert report.totals.params == expected
    assert report.layers[0].params == 64 * (3 * 3 * 1) + 64
    assert report.layers[-1].params == 2 * 64 + 2


def test_unet_on_meta_at_full_size() -> None:
    report = analyze(EXAMPLES / "unet.cnn")
    seen, params, _ = shapes_from_torch(report.network, "meta")
    assert seen["classes"] == (2, 388, 388)
    assert params == report.totals.params


def test_unet_smallest_input() -> None:
    """572 − 388 = 184 pixels are lost; 188 is the smallest valid side (output 4×4)
    whose every pooled size is even. (A real CPU forward there takes seconds, mostly
    initialising 31 M weights; the meta device checks the same shapes for free.)"""
    report = analyze(EXAMPLES / "unet.cnn", input=(1, 188, 188))
    assert report.layers[-1].output_shape == (2, 4, 4)
    assert unet_sides(report)[:14] == [186, 184, 92, 90, 88, 44, 42, 40, 20, 18, 16, 8, 6, 4]
    assert_matches_torch(report, "meta")


def test_unet_valid_sides_step_by_16() -> None:
    """Four 2×2 pools: the side must be 188 + 16·n for every pooled size to be even."""
    report = analyze(EXAMPLES / "unet.cnn", input=(1, 204, 204))
    assert report.layers[-1].output_shape == (2, 20, 20)
    assert not report.warnings


def test_unet_odd_pooled_size_warns() -> None:
    # 190 → 188 → 186 → pool 93 → 91 → 89: the second pool never reads the last row
    report = analyze(EXAMPLES / "unet.cnn", input=(1, 190, 190))
    assert report.layers[-1].output_shape == (2, 4, 4)
    assert report.warnings == (
        "maxpool2d_2: stride 2 does not divide evenly along the height and width: the last 1 "
        "input rows and columns are never read",
    )


def test_unet_too_small_input_is_an_error() -> None:
    from convlens.errors import SpecError

    with pytest.raises(
        SpecError,
        match=r"in layer 'dec3\.conv2d_2': kernel height 3 is "
        r"larger than the padded input height 2",
    ):
        analyze(EXAMPLES / "unet.cnn", input=(1, 187, 187))


# -- ResNet basic blocks -------------------------------------------------------------------


def test_resnet_parameters_as_arithmetic() -> None:
    bn = lambda c: 2 * c  # noqa: E731  (γ and β per channel)
    stem = 64 * (3 * 7 * 7) + bn(64)
    basic64 = 2 * (64 * (64 * 3 * 3) + bn(64))
    down128 = (
        128 * (64 * 3 * 3) + bn(128) + 128 * (128 * 3 * 3) + bn(128) + 128 * (64 * 1 * 1) + bn(128)
    )  # projection shortcut: 1×1, stride 2
    basic128 = 2 * (128 * (128 * 3 * 3) + bn(128))
    head = 10 * 128 + 10
    report = analyze(EXAMPLES / "resnet_block.cnn")
    assert report.totals.params == stem + 2 * basic64 + down128 + basic128 + head
    # buffers: running mean and variance and a batch counter per batch norm
    norms = [64] + [64] * 4 + [128] * 3 + [128] * 2
    assert report.totals.buffers == sum(2 * c + 1 for c in norms)


def test_resnet_shapes_and_shortcuts() -> None:
    report = analyze(EXAMPLES / "resnet_block.cnn")
    by_name = {r.name: r for r in report.layers}
    assert by_name["maxpool2d_1"].output_shape == (64, 56, 56)
    assert by_name["basic_1.add_1"].inputs == ("basic_1.batchnorm2d_2", "maxpool2d_1")
    # the projection: the shortcut branch starts from the block's input and is added
    assert by_name["stage3.conv2d_3"].inputs == ("basic_2.relu_2",)
    assert by_name["stage3.add_1"].inputs == ("stage3.batchnorm2d_3", "stage3.main")
    assert by_name["stage3.add_1"].output_shape == (128, 28, 28)
    assert report.layers[-1].output_shape == (10,)


def test_resnet_real_forward_on_a_small_input() -> None:
    report = analyze(EXAMPLES / "resnet_block.cnn", input=(3, 64, 64))
    assert report.layers[-1].output_shape == (10,)
    assert_matches_torch(report, "cpu")


# -- DenseNet dense block ------------------------------------------------------------------


def test_dense_block_parameters_as_arithmetic() -> None:
    growth, layers, c0 = 32, 6, 64
    expected = 0
    for i in range(layers):
        c = c0 + i * growth
        expected += 2 * c + (4 * growth) * c + 2 * (4 * growth) + growth * (4 * growth * 3 * 3)
    expected += 2 * 256 + 128 * 256  # transition: BN and the 1×1 convolution
    report = analyze(EXAMPLES / "dense_block.cnn")
    assert report.totals.params == expected == 368_320
    concat = [r for r in report.layers if r.kind == "concat"]
    assert [r.output_shape[0] for r in concat] == [96, 128, 160, 192, 224, 256]
    # 'concat in new': the block's input first, then the new features, as torch.cat([x, new])
    assert concat[0].inputs == ("input", "dense_layer_1.new")
    assert concat[1].inputs == ("dense_layer_1.concat_1", "dense_layer_2.new")
    assert report.layers[-1].output_shape == (128, 28, 28)


def test_dense_block_real_forward_on_a_small_input() -> None:
    report = analyze(EXAMPLES / "dense_block.cnn", input=(64, 8, 8))
    assert_matches_torch(report, "cpu")


# -- MobileNet blocks ----------------------------------------------------------------------


def test_mobilenet_parameters_as_arithmetic() -> None:
    def block(c_in: int, c_out: int) -> int:  # depthwise 3×3 + BN + pointwise 1×1 + BN
        return c_in * 3 * 3 + 2 * c_in + c_out * c_in + 2 * c_out

    def separable(c_in: int, c_out: int) -> int:  # the shorthand has no BN in between
        return c_in * 3 * 3 + c_out * c_in + 2 * c_out

    expected = (
        32 * (3 * 3 * 3)
        + 2 * 32
        + block(32, 64)
        + block(64, 128)
        + block(128, 128)
        + separable(128, 256)
        + separable(256, 256)
        + 1000 * 256
        + 1000
    )
    report = analyze(EXAMPLES / "mobilenet_block.cnn")
    assert report.totals.params == expected
    kinds = [r.kind for r in report.layers]
    assert kinds.count("depthwise") == 5
    sides = [r.output_shape[1] for r in report.layers if r.kind == "depthwise"]
    assert sides == [112, 56, 56, 28, 28]


def test_mobilenet_real_forward_on_a_small_input() -> None:
    report = analyze(EXAMPLES / "mobilenet_block.cnn", input=(3, 32, 32))
    assert_matches_torch(report, "cpu")


# -- the two comparisons -------------------------------------------------------------------


def test_separable_vs_standard() -> None:
    standard = analyze(EXAMPLES / "separable_vs_standard" / "standard.cnn")
    separable = analyze(EXAMPLES / "separable_vs_standard" / "separable.cnn")
    assert standard.totals.params == 256 * (128 * 3 * 3)
    assert separable.totals.params == 128 * 3 * 3 + 256 * 128
    assert standard.totals.macs == 56 * 56 * 256 * 128 * 3 * 3
    assert separable.totals.macs == 56 * 56 * (128 * 3 * 3 + 256 * 128)
    # Howard et al.: the cost ratio is 1/N + 1/K² (N output channels, K the kernel side)
    from fractions import Fraction

    assert Fraction(separable.totals.macs, standard.totals.macs) == Fraction(1, 256) + Fraction(
        1, 9
    )
    assert standard.layers[-1].output_shape == separable.layers[-1].output_shape
    for report in (standard, separable):
        assert_matches_torch(report, "cpu")


def test_flatten_vs_gap() -> None:
    flat = analyze(EXAMPLES / "flatten_vs_gap" / "flatten.cnn")
    gap = analyze(EXAMPLES / "flatten_vs_gap" / "gap.cnn")
    assert flat.totals.params == 1000 * (512 * 7 * 7) + 1000
    assert gap.totals.params == 1000 * 512 + 1000
    assert flat.totals.macs == 1000 * 512 * 49
    assert gap.totals.macs == 1000 * 512
    for report in (flat, gap):
        assert_matches_torch(report, "cpu")


@pytest.mark.parametrize("folder", ["separable_vs_standard", "flatten_vs_gap"])
@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_compare_pairs_through_the_cli(folder: str, fmt: str) -> None:
    first, second = sorted((EXAMPLES / folder).glob("*.cnn"))
    result = CliRunner().invoke(app, ["compare", str(first), str(second), "-f", fmt])
    assert result.exit_code == 0, result.output
    assert "params" in result.output


# -- receptive fields against gradients ------------------------------------------------------


def gradient_rows(report: Report, rows: int) -> list[tuple[int, int]]:
    """For output rows 0 … rows−1, the first and last input row with a nonzero gradient
    (only meaningful without padding: a real input is bounded, the RF's is not).

    Weights are set to 1 and biases to 0, so no dependence cancels; the networks passed
    here use average pooling and no activations, so every input a window covers gets
    gradient (max pooling would route it to one element only). Sample b of a batch
    asks about output row b, so one backward pass answers every row."""
    module = build_module(report.network).double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(1.0 if p.dim() > 1 else 0.0)
    x = torch.zeros(rows, *report.network.input_shape, dtype=torch.double, requires_grad=True)
    y = module(x)
    torch.stack([y[b, :, b, :].sum() for b in range(rows)]).sum().backward()
    assert x.grad is not None
    found = []
    for b in range(rows):
        used = (x.grad[b].abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
        found.append((int(used.min()), int(used.max())))
    return found


def assert_rf_matches_gradients(report: Report, rows: int) -> None:
    spans = gradient_rows(report, rows)
    lo, hi = spans[0]
    assert report.totals.start[0] == Fraction(lo + hi, 2)
    assert report.totals.rf[0] == max(h - lo_ + 1 for lo_, h in spans)


def test_rf_of_a_strided_chain_matches_gradients() -> None:
    # unpadded, so the bounded input of a real forward is the unbounded one of the RF
    report = analyze("input 1x32x32\nconv2d 1 k=3 s=2\navgpool2d 2\nconv2d 1 k=3\n")
    # RF = 3 + (2 − 1)·2 + (3 − 1)·4 = 13 with jump 2·2 = 4
    assert gradient_rows(report, 2) == [(0, 12), (4, 16)]
    assert (report.totals.rf, report.totals.start) == ((13, 13), (6, 6))
    assert_rf_matches_gradients(report, rows=4)


def test_rf_after_down_then_up_sampling_matches_gradients() -> None:
    # conv s=2 then transposed conv s=2: output rows 0 and 1 both come from conv row 0
    # (input rows 0 … 1); a 2-tap conv after it reads rows 0 … 3 at odd outputs.
    report = analyze("input 1x32x32\nconv2d 1 k=2 s=2\nconv_transpose2d 1 k=2 s=2\nconv2d 1 k=2\n")
    assert gradient_rows(report, 4) == [(0, 1), (0, 3), (2, 3), (2, 5)]
    assert report.totals.rf == (4, 4)
    assert report.totals.start == (Fraction(1, 2), Fraction(1, 2))


def unet_one_channel(side: int = 572) -> Network:
    """The U-Net's geometry with one channel, no activations and average pooling: the
    same receptive field, cheap enough to differentiate row by row."""
    text = (EXAMPLES / "unet.cnn").read_text(encoding="utf-8")
    text = re.sub(r"double_conv \d+", "double_conv 1", text)
    text = re.sub(r"conv_transpose2d \d+", "conv_transpose2d 1", text)
    text = text.replace("    relu\n", "    identity\n").replace("maxpool2d 2", "avgpool2d 2")
    text = text.replace("conv2d 2 k=1", "conv2d 1 k=1")
    text = text.replace("input 1x572x572", f"input 1x{side}x{side}")
    return parse_text(text, "unet_one_channel.cnn", "unet_one_channel")


def test_one_channel_unet_has_the_unets_geometry() -> None:
    original = analyze(EXAMPLES / "unet.cnn")
    variant = analyze(unet_one_channel())
    assert unet_sides(variant) == unet_sides(original)
    assert (variant.totals.rf, variant.totals.jump, variant.totals.start) == (
        original.totals.rf,
        original.totals.jump,
        original.totals.start,
    )


def test_unet_rf_matches_gradients() -> None:
    # 204 = 188 + 16: a valid side whose 20 output rows cover every phase of the
    # 16-row pattern the four poolings make
    report = analyze(unet_one_channel(204))
    assert report.layers[-1].output_shape[1] == 20
    assert_rf_matches_gradients(report, rows=16)


def test_buffer_bytes_match_pytorch() -> None:
    report = analyze(EXAMPLES / "resnet_block.cnn")
    with torch.device("meta"):
        module = build_module(report.network)
    assert report.totals.buffers == sum(b.numel() for b in module.buffers())  # counts agree
    assert report.totals.buffer_bytes == sum(b.numel() * b.element_size() for b in module.buffers())
