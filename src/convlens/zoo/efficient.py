"""MobileNetV3 (Howard et al. 2019) and EfficientNet-B0 (Tan & Le 2019).

Both follow torchvision's layouts key for key (``features.N.block.M…``, ``classifier``),
so their parameter counts are torchvision's and their weights would load. They are the
small, many-layered networks on which an analysis tool's time per layer shows: the
benchmark against the other tools (``benchmarks/vs_anchors.py``) runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convlens.zoo.mobilenet import Conv2dNormActivation, _make_divisible
from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model

HOWARD_2019 = Citation(
    authors="Andrew Howard, Mark Sandler, Grace Chu, Liang-Chieh Chen, Bo Chen, Mingxing Tan, "
    "Weijun Wang, Yukun Zhu, Ruoming Pang, Vijay Vasudevan, Quoc V. Le and Hartwig Adam",
    title="Searching for MobileNetV3",
    venue="ICCV",
    year=2019,
)
TAN_2019 = Citation(
    authors="Mingxing Tan and Quoc V. Le",
    title="EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
    venue="ICML",
    year=2019,
)


class SqueezeExcitation(nn.Module):
    """Global average pool → 1×1 conv → activation → 1×1 conv → gate (torchvision's)."""

    def __init__(
        self,
        channels: int,
        squeeze: int,
        activation: type[nn.Module] = nn.ReLU,
        gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


# -- MobileNetV3 ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bneck:
    """One row of the paper's Tables 1 and 2: input, kernel, expansion, output channels,
    squeeze-and-excitation, hard-swish (else ReLU), stride."""

    inp: int
    kernel: int
    expanded: int
    out: int
    se: bool
    hswish: bool
    stride: int


V3_SMALL = (
    Bneck(16, 3, 16, 16, True, False, 2),
    Bneck(16, 3, 72, 24, False, False, 2),
    Bneck(24, 3, 88, 24, False, False, 1),
    Bneck(24, 5, 96, 40, True, True, 2),
    Bneck(40, 5, 240, 40, True, True, 1),
    Bneck(40, 5, 240, 40, True, True, 1),
    Bneck(40, 5, 120, 48, True, True, 1),
    Bneck(48, 5, 144, 48, True, True, 1),
    Bneck(48, 5, 288, 96, True, True, 2),
    Bneck(96, 5, 576, 96, True, True, 1),
    Bneck(96, 5, 576, 96, True, True, 1),
)
V3_LARGE = (
    Bneck(16, 3, 16, 16, False, False, 1),
    Bneck(16, 3, 64, 24, False, False, 2),
    Bneck(24, 3, 72, 24, False, False, 1),
    Bneck(24, 5, 72, 40, True, False, 2),
    Bneck(40, 5, 120, 40, True, False, 1),
    Bneck(40, 5, 120, 40, True, False, 1),
    Bneck(40, 3, 240, 80, False, True, 2),
    Bneck(80, 3, 200, 80, False, True, 1),
    Bneck(80, 3, 184, 80, False, True, 1),
    Bneck(80, 3, 184, 80, False, True, 1),
    Bneck(80, 3, 480, 112, True, True, 1),
    Bneck(112, 3, 672, 112, True, True, 1),
    Bneck(112, 5, 672, 160, True, True, 2),
    Bneck(160, 5, 960, 160, True, True, 1),
    Bneck(160, 5, 960, 160, True, True, 1),
)
# MobileNetV3's BatchNorm (TensorFlow's defaults, as torchvision keeps them)
V3_EPS, V3_MOMENTUM = 0.001, 0.01


class InvertedResidualV3(nn.Module):
    """Expand (1×1, skipped when it would not widen) → depthwise → SE → project (1×1,
    linear); a residual when the shape is kept."""

    def __init__(self, row: Bneck, width_mult: float) -> None:
        super().__init__()
        inp, expanded, out = (
            _make_divisible(c * width_mult, 8) for c in (row.inp, row.expanded, row.out)
        )
        act: type[nn.Module] = nn.Hardswish if row.hswish else nn.ReLU
        self.use_res_connect = row.stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(
                Conv2dNormActivation(
                    inp, expanded, 1, activation=act, bn_eps=V3_EPS, bn_momentum=V3_MOMENTUM
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded,
                expanded,
                row.kernel,
                row.stride,
                expanded,
                act,
                bn_eps=V3_EPS,
                bn_momentum=V3_MOMENTUM,
            )
        )
        if row.se:
            squeeze = _make_divisible(expanded // 4, 8)
            layers.append(SqueezeExcitation(expanded, squeeze, nn.ReLU, nn.Hardsigmoid))
        layers.append(
            Conv2dNormActivation(
                expanded, out, 1, activation=None, bn_eps=V3_EPS, bn_momentum=V3_MOMENTUM
            )
        )
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res_connect else y


class MobileNetV3(nn.Module):
    def __init__(
        self,
        rows: tuple[Bneck, ...],
        last_channel: int,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        first = _make_divisible(rows[0].inp * width_mult, 8)
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, first, 3, 2, activation=nn.Hardswish, bn_eps=V3_EPS, bn_momentum=V3_MOMENTUM
            )
        ]
        layers += [InvertedResidualV3(row, width_mult) for row in rows]
        last_in = _make_divisible(rows[-1].out * width_mult, 8)
        layers.append(
            Conv2dNormActivation(
                last_in,
                6 * last_in,
                1,
                activation=nn.Hardswish,
                bn_eps=V3_EPS,
                bn_momentum=V3_MOMENTUM,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = _make_divisible(last_channel * width_mult, 8)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, last),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


_V3_HELP = {
    "num_classes": "outputs of the classifier",
    "width_mult": "width multiplier (channels rounded to multiples of 8)",
    "dropout": "dropout p in the classifier",
}


@register_model(
    "mobilenet_v3_small",
    citation=HOWARD_2019,
    default_input=(3, 224, 224),
    exact_params=2_542_856,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(2_542_856, note="torchvision's count"),
        "paper_params": PublishedFigure(2_500_000, rel_tolerance=0.02, note="Table 3: 2.5 M"),
        "paper_macs": PublishedFigure(
            56_000_000, Quantity.MACS, rel_tolerance=0.02, note="Table 3: 56 M multiply-adds"
        ),
    },
    notes="torchvision's layout (Table 2 of the paper), width 1.0; BatchNorm with ε = 0.001. "
    "The paper's 56 M multiply-adds count convolutions and the classifier, as convlens's MACs do.",
    argument_help=_V3_HELP,
    small_input=(3, 64, 64),
)
def mobilenet_v3_small(
    num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNetV3:
    """MobileNetV3-Small, torchvision's layout."""
    return MobileNetV3(V3_SMALL, 1024, num_classes, width_mult, dropout)


@register_model(
    "mobilenet_v3_large",
    citation=HOWARD_2019,
    default_input=(3, 224, 224),
    exact_params=5_483_032,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(5_483_032, note="torchvision's count"),
        "paper_params": PublishedFigure(5_400_000, rel_tolerance=0.02, note="Table 3: 5.4 M"),
        "paper_macs": PublishedFigure(
            219_000_000, Quantity.MACS, rel_tolerance=0.02, note="Table 3: 219 M multiply-adds"
        ),
    },
    notes="torchvision's layout (Table 1 of the paper), width 1.0; BatchNorm with ε = 0.001.",
    argument_help=_V3_HELP,
    small_input=(3, 64, 64),
)
def mobilenet_v3_large(
    num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNetV3:
    """MobileNetV3-Large, torchvision's layout."""
    return MobileNetV3(V3_LARGE, 1280, num_classes, width_mult, dropout)


# -- EfficientNet-B0 ----------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One row of the paper's Table 1: expansion, kernel, first stride, channels in and
    out, layers."""

    expand: int
    kernel: int
    stride: int
    inp: int
    out: int
    layers: int


B0 = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)


class StochasticDepth(nn.Module):
    """Drop the whole residual branch of a sample with probability ``p`` while training
    (one N×1×1×1 mask, scaled by 1 / (1 − p)); the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)


class MBConv(nn.Module):
    """Expand (1×1) → depthwise → SE (a quarter of the block's input channels) → project;
    a residual with stochastic depth when the shape is kept."""

    def __init__(self, expand: int, kernel: int, stride: int, inp: int, out: int, drop: float):
        super().__init__()
        expanded = _make_divisible(inp * expand, 8)
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(Conv2dNormActivation(inp, expanded, 1, activation=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel, stride, expanded, nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, inp // 4), nn.SiLU, nn.Sigmoid))
        layers.append(Conv2dNormActivation(expanded, out, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + self.stochastic_depth(y) if self.use_res_connect else y


class EfficientNet(nn.Module):
    def __init__(
        self,
        stages: tuple[Stage, ...],
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(3, stages[0].inp, 3, 2, activation=nn.SiLU)]
        total = sum(stage.layers for stage in stages)
        block = 0
        for stage in stages:
            blocks: list[nn.Module] = []
            for i in range(stage.layers):
                drop = stochastic_depth * block / total  # deeper blocks are dropped more
                inp, stride = (stage.inp, stage.stride) if i == 0 else (stage.out, 1)
                blocks.append(MBConv(stage.expand, stage.kernel, stride, inp, stage.out, drop))
                block += 1
            layers.append(nn.Sequential(*blocks))
        last_in = stages[-1].out
        layers.append(Conv2dNormActivation(last_in, 4 * last_in, 1, activation=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(4 * last_in, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model(
    "efficientnet_b0",
    citation=TAN_2019,
    default_input=(3, 224, 224),
    exact_params=5_288_548,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(5_288_548, note="torchvision's count"),
        "paper_params": PublishedFigure(5_300_000, rel_tolerance=0.01, note="Table 2: 5.3 M"),
        "paper_macs": PublishedFigure(
            390_000_000, Quantity.MACS, rel_tolerance=0.02, note="Table 2: 0.39 B FLOPs"
        ),
    },
    notes="torchvision's layout (Table 1 of the paper); SiLU, squeeze-and-excitation to a "
    "quarter of each block's input channels, stochastic depth 0.2 rising linearly with depth. "
    "The paper's '0.39 B FLOPs' are multiply-adds, as convlens's MACs count them.",
    argument_help={
        "num_classes": "outputs of the classifier",
        "dropout": "dropout p before the classifier",
        "stochastic_depth": "drop probability of the last block's residual branch",
    },
    small_input=(3, 64, 64),
)
def efficientnet_b0(
    num_classes: int = 1000, dropout: float = 0.2, stochastic_depth: float = 0.2
) -> EfficientNet:
    """EfficientNet-B0, torchvision's layout."""
    return EfficientNet(B0, num_classes, dropout, stochastic_depth)
