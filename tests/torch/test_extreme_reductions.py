"""Largest and smallest values over axes: CBAM's spatial attention pools the channels by
mean and max (``torch.max(x, dim=1, keepdim=True)[0]``), and ``x.amax(dim)`` reduces any
axes. Held to PyTorch: FLOPs, the output, and what autograd keeps (the int64 indices for
``torch.max``, input and result for ``amax``), traced on meta tensors and for real."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from tests.torch.pytorch_truth import check_against_pytorch


class SpatialAttention(nn.Module):
    """CBAM (Woo et al., 2018): a 7×7 conv over the channel mean and channel max."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.features, self.gate, self.op = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Conv2d(2, 1, 7, padding=3),
            op,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        if self.op == "max":
            pooled = torch.max(y, dim=1, keepdim=True)[0]
        elif self.op == "min_values":
            pooled = y.min(1, keepdim=True).values
        else:
            pooled = y.amax(dim=1, keepdim=True)
        attention = torch.cat([y.mean(dim=1, keepdim=True), pooled], dim=1)
        return y * torch.sigmoid(self.gate(attention))


@pytest.mark.parametrize("op", ["max", "min_values", "amax"])
def test_cbam_spatial_attention_is_exact(op: str) -> None:
    torch.manual_seed(0)
    model = SpatialAttention(op)
    report = check_against_pytorch(model, torch.randn(2, 3, 8, 8))
    (row,) = [r for r in report.layers if r.kind == "reduce" and r.args["op"] != "mean"]
    assert row.args["op"] == {"max": "max", "min_values": "min", "amax": "amax"}[op]
    assert row.other_flops == 2 * (8 - 1) * 8 * 8  # K − 1 comparisons per output


def test_the_indices_trace_on_the_cpu_as_on_meta() -> None:
    model = SpatialAttention("max")
    meta = convlens.analyze(model, input_size=(2, 3, 8, 8))
    real = convlens.analyze(model, input_size=(2, 3, 8, 8), device="cpu")
    assert meta.layers == real.layers and meta.totals == real.totals


class IndexUser(nn.Module):
    """torch.max's indices used later: ``gather`` takes only an int64 index, as PyTorch
    gives it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, indices = x.max(dim=1)
        return x.gather(1, indices.unsqueeze(1)) - values.unsqueeze(1)


def test_the_indices_are_int64() -> None:
    x = torch.randn(2, 3, 4, 4)
    report = convlens.analyze(IndexUser(), input=x)
    assert report.layers[0].kind == "reduce" and report.layers[0].output_shape == (4, 4)
    last = [r for r in report.layers if r.kind != "params_only"][-1]
    assert last.output_shape == tuple(IndexUser()(x).shape[1:])
