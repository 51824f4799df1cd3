"""The course's colourization networks: exact counts and shapes."""

from __future__ import annotations

import pytest
import torch

from convlens.errors import ArgumentError
from convlens.zoo import create_model


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_colour_cnn_count_written_as_arithmetic() -> None:
    k, nf, nc, c = 3, 32, 24, 1
    conv = lambda i, o: o * i * k * k + o  # noqa: E731
    bn = lambda o: 2 * o  # noqa: E731
    expected = (
        conv(c, nf)
        + bn(nf)
        + conv(nf, 2 * nf)
        + bn(2 * nf)
        + conv(2 * nf, 2 * nf)
        + bn(2 * nf)
        + conv(2 * nf, nf)
        + bn(nf)
        + conv(nf, nc)
        + bn(nc)
        + conv(nc, nc)
    )
    assert expected == 86_784
    model = create_model("colour_cnn", kernel=3, num_filters=32, num_colours=24, in_channels=1)
    assert _params(model) == 86_784


def test_colour_unet_count_written_as_arithmetic() -> None:
    k, nf, nc, c = 3, 32, 24, 1
    conv = lambda i, o: o * i * k * k + o  # noqa: E731
    bn = lambda o: 2 * o  # noqa: E731
    expected = (
        conv(c, nf)
        + bn(nf)
        + conv(nf, 2 * nf)
        + bn(2 * nf)
        + conv(2 * nf, 2 * nf)
        + bn(2 * nf)
        + conv(2 * nf + 2 * nf, nf)
        + bn(nf)  # cat([out3, out2])
        + conv(nf + nf, nc)
        + bn(nc)  # cat([out4, out1])
        + conv(nc + c, nc)  # cat([out5, x])
    )
    assert expected == 112_344
    model = create_model("colour_unet", kernel=3, num_filters=32, num_colours=24, in_channels=1)
    assert _params(model) == 112_344


@pytest.mark.parametrize("name", ["colour_cnn", "colour_unet"])
def test_colour_forward_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, kernel=3, num_filters=32, num_colours=24, in_channels=1)
    x = torch.randn(2, 1, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 24, 32, 32)
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 24, (2, 32, 32)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["colour_cnn", "colour_unet"])
def test_colour_other_arguments(name: str) -> None:
    model = create_model(name, kernel=5, num_filters=8, num_colours=10, in_channels=3)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10, 16, 16)


def test_colour_block_order_is_conv_resample_bn_relu() -> None:
    model = create_model("colour_unet")
    kinds = [type(m).__name__ for m in model.downconv1]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    kinds = [type(m).__name__ for m in model.upconv1]
    assert kinds == ["Conv2d", "Upsample", "BatchNorm2d", "ReLU"]
    assert model.upconv1[0].in_channels == 128
    assert model.upconv2[0].in_channels == 64
    assert model.finalconv.in_channels == 25


def test_even_kernel_is_refused() -> None:
    with pytest.raises(ArgumentError, match="odd"):
        create_model("colour_cnn", kernel=4)
