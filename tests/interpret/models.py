"""Tiny classifiers for the interpretation tests (importable as ``module:factory``)."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv → ReLU → conv → ReLU → global average → linear: piecewise linear after every conv,
    which Grad-CAM++'s closed form assumes; 4 classes, any input of at least 4×4."""

    def __init__(self, inplace: bool = False, classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.ReLU(inplace=inplace),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) → (N, classes)
        return self.head(self.pool(self.features(x)).flatten(1))


def tiny_cnn(seed: int = 0, inplace: bool = False) -> TinyCNN:
    """Seeded weights, biased so that ReLUs are neither all on nor all off."""
    torch.manual_seed(seed)
    model = TinyCNN(inplace=inplace)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(2.0)
                module.bias.uniform_(-0.1, 0.3)
    return model.eval()


def tiny_bn_cnn(seed: int = 0) -> nn.Module:
    """With BatchNorm, max pooling and a tanh: layers sanity must re-initialise."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.LazyLinear(3) if False else nn.Linear(6 * 4 * 4, 3),
    ).eval()


def not_a_classifier() -> nn.Module:
    return nn.Conv2d(3, 2, 1)


def tiny_cnn_10(seed: int = 0) -> TinyCNN:
    """Ten classes, like CIFAR-10 (so the data's class names apply)."""
    torch.manual_seed(seed)
    return TinyCNN(classes=10).eval()


class Branchy(nn.Module):
    """A parameter-free first layer (its output needs no gradient) and a layer never run."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.unused = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(self.pool(x))).mean(dim=(2, 3)))


def branchy(seed: int = 0) -> Branchy:
    torch.manual_seed(seed)
    return Branchy().eval()
