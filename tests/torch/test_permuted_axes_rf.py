"""Receptive fields across axis moves: a transpose of H and W no longer lines output
positions up with input ones, and convlens does not follow a field across it, so every
field after it is *unavailable*, with the reason, never a number for the wrong axes (a
square map once kept its shape and passed for unmoved). Moving the channels (NCHW → NHWC
and back) makes the tensor no map; its field is the whole input, as before."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from tests.core.oracle import impulse_extents


class Transposed(nn.Module):
    """An anisotropic conv, a transpose of the spatial axes, another anisotropic conv: the
    true field of the last is 3 rows × 5 columns, which no per-axis composition gives."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.before, self.after, self.how = nn.Conv2d(1, 2, (1, 5)), nn.Conv2d(2, 2, (1, 3)), how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.before(x)
        y = y.transpose(2, 3) if self.how == "transpose" else y.permute(0, 1, 3, 2)
        return self.after(y)


@pytest.mark.parametrize("how", ["transpose", "permute"])
@pytest.mark.parametrize("size", [(12, 16), (16, 12)])  # a square map after the first conv
def test_a_field_across_a_transpose_of_h_and_w_is_unavailable(
    how: str, size: tuple[int, int]
) -> None:
    model = Transposed(how)
    shape = (1, *size)
    truth = [
        sorted({hi - lo + 1 for _, lo, hi in impulse_extents(model, shape, axis)})
        for axis in (0, 1)
    ]
    assert truth == [[3], [5]]  # rows from the conv after it, columns from the one before
    report = convlens.analyze(model, input_size=(1, *shape))
    first, moved, last = report.layers
    assert first.rf == (1, 5) and first.rf_status == "ok"
    for row in (moved, last):
        assert row.rf is None and row.rf_status == "unavailable"
        assert "spatial axes are moved (axis order (0, 2, 1))" in row.rf_reason
    assert moved.args["order"] == (0, 2, 1)
    assert report.totals.rf is None


class ChannelsLast(nn.Module):
    """ConvNeXt's NCHW → NHWC for a LayerNorm, and back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_moving_the_channels_still_gives_the_whole_input() -> None:
    report = convlens.analyze(ChannelsLast(), input_size=(1, 3, 8, 8))
    moved = [row for row in report.layers if row.kind == "view"]
    assert [row.args["order"] for row in moved] == [(1, 2, 0), (2, 0, 1)]
    assert report.layers[-1].rf_status == "whole input"
