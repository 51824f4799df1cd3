"""Stock activation modules between two convolutions, in and out of place, held to
PyTorch: parameters, MACs, output, and what autograd keeps (an in-place activation that
needs its input makes autograd keep a copy; one that needs its result shares it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.torch.pytorch_truth import check_against_pytorch

ACTIVATIONS = [
    nn.Mish(),
    nn.Mish(inplace=True),
    nn.SELU(),
    nn.SELU(inplace=True),
    nn.CELU(0.5),
    nn.CELU(2.0, inplace=True),
    nn.Hardtanh(-2.0, 0.5),
    nn.Hardtanh(inplace=True),
    nn.Softplus(),
    nn.Softplus(2.0, 3.0),
    nn.PReLU(),
    nn.PReLU(4),
    nn.LogSoftmax(dim=1),
    nn.ELU(inplace=True),
    nn.ReLU6(inplace=True),
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=repr)
def test_an_activation_between_convolutions_is_exact(activation: nn.Module) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), activation, nn.Conv2d(4, 2, 1))
    report = check_against_pytorch(model, torch.randn(2, 3, 7, 7))
    kinds = [row.kind for row in report.layers]
    assert kinds[0] == "conv2d" and kinds[2] == "conv2d" and len(kinds) == 3
    assert kinds[1] != "opaque"
