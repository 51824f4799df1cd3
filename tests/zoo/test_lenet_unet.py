"""LeNet-5's connection table and the paper U-Net's sizes (Figure 1)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.zoo import create_model
from convlens.zoo.classic import LENET5_C3_TABLE
from convlens.zoo.measure import build, count_params


def test_lenet5_c3_follows_table_one() -> None:
    model = create_model("lenet5")
    dense = model.c3.dense_weight()
    for out_map, inputs in enumerate(LENET5_C3_TABLE):
        for in_map in range(6):
            connected = bool(dense[out_map, in_map].abs().sum() > 0)
            assert connected == (in_map in inputs)
    assert sum(len(t) for t in LENET5_C3_TABLE) * 25 + 16 == 1_516


def test_lenet5_variants() -> None:
    assert count_params(create_model("lenet5", connection_table=False)) == 60_000 - 1_516 + 2_416
    assert count_params(create_model("lenet5", rbf_output=False)) == 60_000 + 84 * 10 + 10
    model = create_model("lenet5")
    assert "output.prototypes" in dict(model.named_buffers())  # fixed, not trained
    assert not any(name.startswith("output.") for name, _ in model.named_parameters())


def test_lenet5_trains() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    out = model(torch.randn(4, 1, 32, 32))
    out.sum().backward()
    assert model.c3.weight.grad is not None and model.s2.weight.grad is not None


# Figure 1: output size of every convolution, in forward order, at 572×572.
UNET_CONV_SIZES = [
    570, 568, 282, 280, 138, 136, 66, 64, 30, 28,  # contracting path
    54, 52, 102, 100, 198, 196, 390, 388,  # expanding path
    388,  # final 1×1
]  # fmt: skip
UNET_UP_SIZES = [56, 104, 200, 392]


def test_unet_every_intermediate_size_as_in_figure_1() -> None:
    model = build("unet")
    conv_sizes: list[tuple[int, int, int]] = []
    up_sizes: list[tuple[int, int, int]] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, o: conv_sizes.append(tuple(o.shape[1:])))
        elif isinstance(module, torch.nn.ConvTranspose2d):
            module.register_forward_hook(lambda m, i, o: up_sizes.append(tuple(o.shape[1:])))
    out = model(torch.empty(1, 1, 572, 572, device="meta"))
    assert tuple(out.shape) == (1, 2, 388, 388)
    assert [h for _, h, _ in conv_sizes] == UNET_CONV_SIZES
    assert [h for _, h, _ in up_sizes] == UNET_UP_SIZES
    channels = [c for c, _, _ in conv_sizes]
    assert channels[:10] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    assert channels[10:] == [512, 512, 256, 256, 128, 128, 64, 64, 2]
    assert [c for c, _, _ in up_sizes] == [512, 256, 128, 64]  # up-convs halve the channels


def test_unet_skip_is_center_cropped() -> None:
    from convlens.zoo.unet import center_crop

    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert center_crop(x, 2, 2).flatten().tolist() == [14.0, 15.0, 20.0, 21.0]


@settings(max_examples=25)  # each example builds and runs a network
@given(
    depth=st.integers(1, 4),
    base=st.sampled_from([2, 4]),
    size=st.integers(16, 40),
    bilinear=st.booleans(),
)
def test_unet_same_keeps_the_input_size(depth: int, base: int, size: int, bilinear: bool) -> None:
    model = create_model(
        "unet_same",
        base_channels=base,
        depth=depth,
        in_channels=1,
        num_classes=3,
        bilinear=bilinear,
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, size, size))
    assert out.shape == (1, 3, size, size)


@pytest.mark.parametrize("bilinear", [False, True])
def test_unet_same_count_as_arithmetic(bilinear: bool) -> None:
    base, depth, c_in, classes = 64, 4, 3, 2
    widths = [base * 2**i for i in range(depth + 1)]

    def double(i: int, o: int) -> int:  # two 3×3 convs without bias, each with BN
        return o * i * 9 + 2 * o + o * o * 9 + 2 * o

    total = sum(double(i, o) for i, o in zip([c_in, *widths[:-1]], widths, strict=True))
    for i in range(depth):
        if bilinear:
            total += widths[i] * widths[i + 1] + widths[i]  # 1×1 conv with bias
        else:
            total += widths[i + 1] * widths[i] * 4 + widths[i]  # 2×2 up-conv with bias
        total += double(2 * widths[i], widths[i])
    total += base * classes + classes
    assert count_params(build("unet_same", bilinear=bilinear)) == total
