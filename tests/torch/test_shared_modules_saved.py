"""A module called twice: its parameters count once, but autograd keeps what each call
needs for its weight gradient, so saved activations count at every call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from tests.torch.saved import saved_bytes


class CalledTwice(nn.Module):
    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.which == "conv":
            return self.conv(self.conv(x))
        if self.which == "linear":
            return self.fc(self.fc(x.flatten(1)[:, :8]))
        return self.fc(self.fc(torch.relu(self.conv(self.conv(x))).flatten(1)[:, :8]))


@pytest.mark.parametrize("which", ["conv", "linear", "both"])
@pytest.mark.parametrize("frozen_input_side", [False, True])
def test_a_reused_module_saves_its_input_at_every_call(which: str, frozen_input_side: bool) -> None:
    model = CalledTwice(which)
    if frozen_input_side:  # nothing before the shared module needs a gradient
        model.conv.requires_grad_(which != "both")
    report = convlens.analyze(model, input_size=(2, 3, 4, 4))
    expected = saved_bytes(model.train(), torch.randn(2, 3, 4, 4))
    assert report.totals.saved_activation_bytes == expected
    assert report.totals.params == sum(p.numel() for p in model.parameters())
