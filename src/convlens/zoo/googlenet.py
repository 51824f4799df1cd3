"""GoogLeNet / Inception v1 (Szegedy et al. 2015) in torchvision's form.

Attribute names match ``torchvision.models.googlenet`` (``conv1``…``inception5b``,
``aux1``, ``aux2``, ``avgpool``, ``dropout``, ``fc``; ``BasicConv2d`` = conv
without bias + BatchNorm(eps=0.001) + ReLU).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, register_model

SZEGEDY_2015 = Citation(
    authors="Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed, "
    "Dragomir Anguelov, Dumitru Erhan, Vincent Vanhoucke and Andrew Rabinovich",
    title="Going Deeper with Convolutions",
    venue="CVPR",
    year=2015,
)


class GoogLeNetOutputs(NamedTuple):
    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


class BasicConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four branches concatenated along channels: 1×1 | 1×1→3×3 | 1×1→"5×5" | pool→1×1."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            # torchvision uses 3×3 here (a known, kept bug: its weights were trained so);
            # the paper's branch is 5×5. The published 6,624,904 relies on the 3×3.
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avg-pool to 4×4 → 1×1 conv 128 → FC 1024 → dropout → FC classes."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # (N, C, 4, 4)
        x = torch.flatten(self.conv(x), 1)  # (N, 2048)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))
        return self.fc2(x)


class GoogLeNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's: re-normalise from ImageNet statistics to [-1, 1]; no parameters.
        if not self.transform_input:
            return x
        mean = (0.485, 0.456, 0.406)
        std = (0.229, 0.224, 0.225)
        channels = [x[:, i : i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)]
        return torch.cat(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))  # (N, 64, 56, 56) at 224²
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (N, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (N, 480, 14, 14)
        x = self.inception4a(x)  # (N, 512, 14, 14)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, 7, 7)
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        logits = self.fc(x)  # (N, num_classes)
        if self.aux_logits and self.training:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


@register_model(
    "googlenet",
    description="googlenet.cnn",
    citation=SZEGEDY_2015,
    default_input=(3, 224, 224),
    exact_params=6_624_904,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(6_624_904, note="torchvision's count without the aux heads"),
        "params_with_aux": PublishedFigure(
            13_004_888, note="torchvision, aux_logits=True", arguments={"aux_logits": True}
        ),
    },
    notes="torchvision's form: BasicConv2d = conv (no bias) + BatchNorm2d(eps=0.001) + ReLU "
    "(the paper has no batch normalisation), and the '5×5' branch of every Inception module is "
    "a 3×3 convolution (torchvision's known bug, kept so its weights load). Auxiliary heads are "
    "off by default (aux_logits=True adds 6,379,984 parameters, total 13,004,888; in training "
    "mode the forward then returns (logits, aux_logits2, aux_logits1)). transform_input has no "
    "parameters.",
    argument_help={
        "num_classes": "outputs of the final linear layer",
        "aux_logits": "build the two auxiliary classifiers (used in training mode only)",
        "transform_input": "re-normalise ImageNet-normalised input to [-1, 1] (torchvision)",
        "dropout": "dropout p before the final linear layer",
        "dropout_aux": "dropout p in the auxiliary classifiers",
    },
    small_input=(3, 64, 64),
)
def googlenet(
    num_classes: int = 1000,
    aux_logits: bool = False,
    transform_input: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet (Inception v1), torchvision's layout."""
    return GoogLeNet(num_classes, aux_logits, transform_input, dropout, dropout_aux)
