"""pixel_shuffle, pixel_unshuffle and channel_shuffle in traced models: every spelling
PyTorch has becomes a row of its kind (no ``opaque`` row, nothing partial), held to PyTorch
by ``check_against_pytorch`` (parameters, MACs against FlopCounterMode, the real output,
saved activations against autograd); ShuffleNet's hand-written channel shuffle traces
exactly too."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import convlens
from convlens.errors import ConvlensError
from tests.core.oracle import impulse_extents
from tests.torch.pytorch_truth import check_against_pytorch


class ESPCN(nn.Module):
    """Shi et al. 2016: feature maps at low resolution, then a sub-pixel convolution (a
    conv to r² maps per colour, rearranged by pixel_shuffle into an r-times larger image)."""

    def __init__(self, r: int = 3, colours: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(colours, 16, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(16, colours * r * r, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x))


def test_espcn_is_exact_and_matches_pytorch() -> None:
    x = torch.rand(2, 1, 12, 10)
    report = check_against_pytorch(ESPCN(r=3), x)
    shuffle = report.layers[-1]
    assert (shuffle.kind, shuffle.output_shape) == ("pixel_shuffle", (1, 36, 30))
    assert shuffle.macs == 0 and shuffle.flops == 0
    assert shuffle.activation_bytes == 2 * 1 * 36 * 30 * 4  # N · C · H · W · 4 bytes
    # receptive field: the two convolutions see 5 + 2 = 7 rows; output i reads row ⌊i/3⌋
    assert report.totals.rf == (7, 7) and report.totals.jump == (Fraction(1, 3),) * 2


def test_espcn_receptive_field_equals_the_gradient_method() -> None:
    model, shape = ESPCN(r=2), (1, 40, 40)
    report = convlens.analyze(model, input_size=(1, *shape))
    for axis in (0, 1):
        rows = impulse_extents(model, shape, axis)
        inner = [(o, lo, hi) for o, lo, hi in rows if lo >= 8 and hi <= shape[1 + axis] - 9]
        assert len(inner) > 10
        for o, lo, hi in inner:  # output o reads the 7 rows around ⌊o/2⌋
            assert (lo, hi) == (o // 2 - 3, o // 2 + 3)
        assert max(hi - lo + 1 for _, lo, hi in inner) == report.totals.rf[axis] == 7


class Functional(nn.Module):
    """Each kind as a function call: F.pixel_unshuffle, torch.channel_shuffle,
    torch.pixel_shuffle (F.pixel_shuffle and F.channel_shuffle are the same functions)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x, downscale_factor=2)  # (3, 8, 6) → (12, 4, 3)
        y = torch.channel_shuffle(self.conv(y), 4)
        return torch.pixel_shuffle(y, 2)  # → (3, 8, 6)


def test_functional_spellings_are_rows_of_their_kinds() -> None:
    report = check_against_pytorch(Functional(), torch.rand(2, 3, 8, 6))
    kinds = [row.kind for row in report.layers]
    assert kinds == ["pixel_unshuffle", "conv2d", "channel_shuffle", "pixel_shuffle"]
    assert [row.output_shape for row in report.layers] == [
        (12, 4, 3),
        (12, 4, 3),
        (12, 4, 3),
        (3, 8, 6),
    ]
    # unshuffle 2 (kernel 2, stride 2), conv 3 (2 + 2·2 = 6), shuffle reads ⌊i/2⌋
    assert report.totals.rf == (6, 6)


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        (nn.PixelShuffle(2), (2, 8, 3, 5)),
        (nn.PixelUnshuffle(2), (2, 2, 4, 6)),
        (nn.ChannelShuffle(3), (2, 6, 4, 4)),
        (nn.ChannelShuffle(2), (2, 4, 3, 5, 5)),  # a volume
    ],
    ids=lambda v: repr(v)[:20],
)
def test_each_result_is_a_copy_as_in_pytorch(module: nn.Module, shape: tuple[int, ...]) -> None:
    """Measured: PyTorch returns new storage (even for a factor or groups of 1), and
    autograd keeps nothing: the row counts its output once and saves nothing."""
    x = torch.rand(shape, requires_grad=True)
    y = module(x * 1)
    assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    report = check_against_pytorch(nn.Sequential(module), x.detach())
    (row,) = report.layers
    assert row.activation_bytes == y.numel() * 4 and row.saved_bytes == 0
    assert report.totals.peak_activation_bytes == (x.numel() + y.numel()) * 4


def test_a_shuffle_that_does_not_fit_names_the_module() -> None:
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.PixelShuffle(2))
    with pytest.raises(ConvlensError, match=r"'1' \(PixelShuffle\).*multiple of 2² = 4"):
        convlens.analyze(model, input_size=(1, 1, 8, 8))
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ChannelShuffle(4))
    with pytest.raises(ConvlensError, match=r"channels \(6\) to be a multiple of 4"):
        convlens.analyze(model, input_size=(1, 1, 8, 8))


def test_other_ranks_fall_back_to_an_opaque_row() -> None:
    """pixel_shuffle of a 5-D tensor (its leading axes folded like a batch) has no rule:
    shown, and said to be partial, as any unknown operation."""
    report = convlens.analyze(nn.PixelShuffle(2), input_size=(2, 3, 8, 4, 4))
    assert [row.kind for row in report.layers] == ["opaque"]
    assert report.totals.unsupported == ("pixel_shuffle",)


# -- torchvision/models/shufflenetv2.py (torchvision 0.21), line for line -----------------
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups

    # reshape
    x = x.view(batchsize, groups, channels_per_group, height, width)

    x = torch.transpose(x, 1, 2).contiguous()

    # flatten
    x = x.view(batchsize, num_channels, height, width)

    return x


class ShuffleUnit(nn.Module):
    """A grouped 1×1 conv, the shuffle, a depthwise 3×3 conv: ShuffleNet's pattern."""

    def __init__(self, hand_written: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(6, 6, 1, groups=3)
        self.shuffle = nn.ChannelShuffle(3)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.hand_written = hand_written

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = channel_shuffle(x, 3) if self.hand_written else self.shuffle(x)
        return self.conv2(x)


def test_shufflenets_hand_written_shuffle_traces_exactly() -> None:
    """view, transpose, contiguous, view: rows with rules (nothing partial), every count
    PyTorch's, and the same parameters, MACs, FLOPs, peak, saved and training bytes as
    nn.ChannelShuffle. Its receptive field is reported as the whole input: the view to
    (N, g, C/g, H, W) leaves the (C, H, W) grid, which convlens does not follow."""
    x = torch.rand(2, 6, 9, 7)
    hand = check_against_pytorch(ShuffleUnit(hand_written=True), x)
    assert {row.kind for row in hand.layers} == {"conv2d", "view", "identity"}
    stock = check_against_pytorch(ShuffleUnit(hand_written=False), x)
    assert [row.kind for row in stock.layers] == ["conv2d", "channel_shuffle", "conv2d"]
    for field in ("params", "macs", "flops", "peak_activation_bytes", "saved_activation_bytes"):
        assert getattr(hand.totals, field) == getattr(stock.totals, field), field
    assert hand.totals.training_bytes == stock.totals.training_bytes
    assert stock.totals.rf == (3, 3) and hand.totals.rf_status == "whole input"
    # the stock module's output equals the hand-written one's (the same permutation)
    torch.manual_seed(0)
    model = ShuffleUnit(hand_written=True)
    y = model(x)
    model.hand_written = False
    assert torch.equal(y, model(x))
