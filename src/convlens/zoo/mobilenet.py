"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

MobileNetV2 follows ``torchvision.models.mobilenet_v2`` key for key
(``features.N.conv.M…``, ``classifier.1``); torchvision has no MobileNetV1, so its
layout mirrors V2's (``features``, ``classifier``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model

HOWARD_2017 = Citation(
    authors="Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun Wang, "
    "Tobias Weyand, Marco Andreetto and Hartwig Adam",
    title="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    venue="arXiv:1704.04861",
    year=2017,
)
SANDLER_2018 = Citation(
    authors="Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov and Liang-Chieh Chen",
    title="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    venue="CVPR",
    year=2018,
)


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never below 90 % of ``v`` (torchvision)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv (no bias) → BatchNorm2d → activation (none for a linear projection); keys
    ``0``, ``1``, ``2`` as torchvision's. MobileNetV3 keeps TensorFlow's BatchNorm settings
    (``bn_eps``, ``bn_momentum``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU6,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


# ----------------------------------------------------------------------------- MobileNetV1

# (output channels, stride) of each depthwise-separable block (the paper's Table 1).
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise conv + BN + ReLU, then 1×1 pointwise conv + BN + ReLU (Fig. 3, right)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            Conv2dNormActivation(
                in_channels, in_channels, 3, stride, groups=in_channels, activation=nn.ReLU
            ),
            Conv2dNormActivation(in_channels, out_channels, 1, activation=nn.ReLU),
        )


class MobileNetV1(nn.Module):
    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive (got {width_mult})")
        # The paper's α: every layer's channels scaled by α and truncated (int(32 α) etc.).
        channels = int(32 * width_mult)
        layers: list[nn.Module] = [Conv2dNormActivation(3, channels, 3, 2, activation=nn.ReLU)]
        for out, stride in MOBILENET_V1_BLOCKS:
            out = int(out * width_mult)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)  # (N, 1024 α, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "mobilenet_v1",
    description="mobilenet_v1.cnn",
    citation=HOWARD_2017,
    default_input=(3, 224, 224),
    exact_params=4_231_976,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(
            4_200_000, rel_tolerance=0.012, note="Table 8: 4.2 M, rounded to 0.1 M"
        ),
        "macs": PublishedFigure(
            569_000_000,
            Quantity.MACS,
            rel_tolerance=0.002,
            note="Table 8: 569 M mult-adds at 224², rounded to 1 M",
        ),
    },
    notes="The paper's Table 1 body at width multiplier α = 1: a 3×3 stride-2 stem and 13 "
    "depthwise-separable blocks, each conv without bias followed by BatchNorm and ReLU, global "
    "average pooling and a 1000-way linear layer. Exact: 4,231,976 parameters (the paper: 4.2 M; "
    "with or without BatchNorm's scale and shift, 2 per channel, 21,888 in all, the count "
    "rounds to 4.2 M) and 568,740,352 conv + linear multiply-adds at 224² "
    "(the paper: 569 M). Channels at α ≠ 1 are int(c·α), without rounding to multiples of 8.",
    argument_help={
        "num_classes": "outputs of the classifier",
        "width_mult": "width multiplier α (0.25, 0.5, 0.75, 1.0 in the paper)",
        "dropout": "dropout p before the classifier (the paper gives none)",
    },
    small_input=(3, 64, 64),
)
def mobilenet_v1(
    num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.0
) -> MobileNetV1:
    """MobileNetV1 with width multiplier α."""
    return MobileNetV1(num_classes, width_mult, dropout)


# ----------------------------------------------------------------------------- MobileNetV2


class InvertedResidual(nn.Module):
    """1×1 expand (×t) → 3×3 depthwise → 1×1 linear projection; residual if shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),  # linear bottleneck: no activation
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expansion t, channels c, repeats n, first stride s): the paper's Table 2.
MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip


class MobileNetV2(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive (got {width_mult})")
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(
                    InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t)
                )
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)  # (N, 1280, H/32, W/32)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "mobilenet_v2",
    description="mobilenet_v2.cnn",
    citation=SANDLER_2018,
    default_input=(3, 224, 224),
    exact_params=3_504_872,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(3_504_872, note="torchvision's count"),
        "paper_params": PublishedFigure(3_400_000, rel_tolerance=0.031, note="Table 4: 3.4 M"),
        "paper_macs": PublishedFigure(
            300_000_000, Quantity.MACS, rel_tolerance=0.005, note="Table 4: 300 M multiply-adds"
        ),
    },
    notes="torchvision's layout, width 1.0, channels rounded to multiples of 8 "
    "(_make_divisible). The paper's Table 4 gives 3.4 M parameters and 300 M multiply-adds; the "
    "rebuild has 3,504,872 (BatchNorm included) and about 300.8 M conv + linear multiply-adds.",
    argument_help={
        "num_classes": "outputs of the classifier",
        "width_mult": "width multiplier",
        "round_nearest": "round every channel count to a multiple of this",
        "dropout": "dropout p before the classifier",
    },
    small_input=(3, 64, 64),
)
def mobilenet_v2(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    round_nearest: int = 8,
    dropout: float = 0.2,
) -> MobileNetV2:
    """MobileNetV2, torchvision's layout."""
    return MobileNetV2(num_classes, width_mult, round_nearest, dropout)
