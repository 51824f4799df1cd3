"""DenseNet-BC (Huang et al. 2017), laid out as ``torchvision.models.densenet``.

Keys: ``features.conv0``, ``features.norm0``, ``features.denseblock1.denselayer1.norm1``
…, ``features.transition1.conv``, ``features.norm5``, ``classifier``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, register_model

HUANG_2017 = Citation(
    authors="Gao Huang, Zhuang Liu, Laurens van der Maaten and Kilian Q. Weinberger",
    title="Densely Connected Convolutional Networks",
    venue="CVPR",
    year=2017,
)


class _DenseLayer(nn.Module):
    """BN → ReLU → 1×1 conv (bn_size·k) → BN → ReLU → 3×3 conv (k), on the concatenated inputs."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(
            num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False
        )
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False
        )
        self.drop_rate = float(drop_rate)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)  # (N, C_in + i·k, H, W)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))  # (N, k, H, W)
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class _DenseBlock(nn.ModuleDict):
    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN → ReLU → 1×1 conv (compression 0.5) → 2×2 average pool."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv0",
                        nn.Conv2d(
                            3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False
                        ),
                    ),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(
                    f"transition{i + 1}", _Transition(num_features, num_features // 2)
                )
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)  # (N, C, H/32, W/32)
        out = F.adaptive_avg_pool2d(F.relu(features, inplace=True), (1, 1))
        return self.classifier(torch.flatten(out, 1))


_HELP = {
    "growth_rate": "k: channels each dense layer adds",
    "num_init_features": "channels of the stem convolution",
    "bn_size": "bottleneck width multiplier (the 1×1 conv has bn_size·k channels)",
    "drop_rate": "dropout after each dense layer",
    "num_classes": "outputs of the classifier",
}


def _densenet_entry(name: str, blocks: tuple[int, int, int, int], params: int) -> None:
    depth = name.removeprefix("densenet")

    @register_model(
        name,
        description=f"{name}.cnn",
        citation=HUANG_2017,
        default_input=(3, 224, 224),
        exact_params=params,
        output_shapes=((1000,),),
        published={"params": PublishedFigure(params, note="torchvision's count")},
        notes=f"DenseNet-BC-{depth} for ImageNet (Table 1): growth rate 32, blocks {blocks}, "
        "bottleneck 4k, compression 0.5, torchvision's layout. The paper reports parameters for "
        "its CIFAR models only; the published ImageNet count is torchvision's.",
        argument_help=_HELP,
        small_input=(3, 64, 64),
    )
    def factory(
        growth_rate: int = 32,
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
    ) -> DenseNet:
        return DenseNet(growth_rate, blocks, num_init_features, bn_size, drop_rate, num_classes)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"DenseNet-{depth}."
    globals()[name] = factory


_densenet_entry("densenet121", (6, 12, 24, 16), 7_978_856)
_densenet_entry("densenet169", (6, 12, 32, 32), 14_149_480)
_densenet_entry("densenet201", (6, 12, 48, 32), 20_013_928)
