"""Squeeze-and-excitation in PyTorch: se (rule: core/rules/excitation.py).

PyTorch has no SE operation: a traced SE block is the rows of its parts, so this lowering
has no handler of its own."""

from __future__ import annotations

import torch
from torch import nn

from convlens.torch.lowering.common import described, feature_map, whole
from convlens.torch.registry import lowering


class SqueezeExcitation(nn.Module):
    """torchvision's SqueezeExcitation: pool → 1×1 conv → ReLU → 1×1 conv → sigmoid → scale."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


lowering(
    "se",
    traced_as=["global_avgpool", "conv2d", "relu", "sigmoid", "mul"],
    build=lambda a, s: SqueezeExcitation(whole(s[0]), whole(s[0]) // whole(a["r"])),
    examples=lambda pick: described(feature_map(pick), f"se {pick.integer(1, 2)}"),
)
