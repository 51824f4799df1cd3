"""ResNet (He et al. 2016) and SE-ResNet (Hu et al. 2018), laid out as torchvision does.

Attribute names match ``torchvision.models.resnet`` exactly (``conv1, bn1, relu,
maxpool, layer1..layer4, avgpool, fc``; blocks ``conv1, bn1, conv2, bn2[, conv3,
bn3], relu, downsample``), so a torchvision ``state_dict`` saved to a local file
loads with ``strict=True``. Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convlens.zoo.registry import Citation, PublishedFigure, register_model

HE_2016 = Citation(
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun",
    title="Deep Residual Learning for Image Recognition",
    venue="CVPR",
    year=2016,
)

HU_2018 = Citation(
    authors="Jie Hu, Li Shen and Gang Sun",
    title="Squeeze-and-Excitation Networks",
    venue="CVPR",
    year=2018,
)


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """3×3 convolution, padding = dilation so that O = ⌈I / stride⌉."""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class SqueezeExcitation(nn.Module):
    """SE block: global average pool → FC C→C/r → ReLU → FC C/r→C → sigmoid → rescale.

    The two FCs are 1×1 convolutions with bias (timm's ``SEModule`` names:
    ``fc1``, ``fc2``); parameters 2·C²/r + C/r + C.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1) squeeze
        scale = self.gate(self.fc2(self.relu(self.fc1(scale))))  # excitation
        return x * scale


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        se_reduction: int | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcitation(planes, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride, as torchvision's "ResNet v1.5") → 1×1 expand ×4."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        se_reduction: int | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(planes * self.expansion, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)  # SE on the residual branch, before the addition
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        se_reduction: int | None = None,
    ) -> None:
        super().__init__()
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs three booleans (layer2..layer4)")
        if block is BasicBlock and any(replace_stride_with_dilation):
            raise ValueError("dilation is supported only with Bottleneck blocks, as in torchvision")
        self.inplanes = 64
        self.dilation = 1
        self._se_reduction = se_reduction
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:  # keep the resolution, grow the dilation instead (DeepLab)
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [
            block(self.inplanes, planes, stride, downsample, previous_dilation, self._se_reduction)
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes, planes, dilation=self.dilation, se_reduction=self._se_reduction
                )
            )
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer1(x)  # (N, 64·e, H/4, W/4)
        x = self.layer2(x)  # (N, 128·e, H/8, W/8)
        x = self.layer3(x)  # (N, 256·e, H/16, W/16)
        return self.layer4(x)  # (N, 512·e, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))  # (N, num_classes)


_HELP = {
    "num_classes": "outputs of the final fully connected layer",
    "in_channels": "channels of the input image",
}

_RESNET_NOTES = (
    "torchvision's layout (ResNet v1.5: the stride of a downsampling bottleneck sits on its 3×3 "
    "convolution, not its first 1×1 as in the paper; the parameter count is the same). "
    "Projection shortcuts (option B) where the shape changes. The paper's Table 1 gives "
    "FLOPs, not parameters; the published parameter count is torchvision's."
)


def _resnet_entry(name: str, layers: tuple[int, int, int, int], params: int, depth: int) -> None:
    block = BasicBlock if depth < 50 else Bottleneck
    feature = 512 * block.expansion

    @register_model(
        name,
        description=f"{name}.cnn",
        citation=HE_2016,
        default_input=(3, 224, 224),
        exact_params=params,
        output_shapes=((1000,),),
        published={"params": PublishedFigure(params, note="torchvision's count")},
        notes=_RESNET_NOTES + f" Final features: {feature} channels at 7×7.",
        argument_help=_HELP,
        small_input=(3, 64, 64),
    )
    def factory(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
        return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"ResNet-{depth} ({'basic' if depth < 50 else 'bottleneck'} blocks {layers})."
    globals()[name] = factory


_resnet_entry("resnet18", (2, 2, 2, 2), 11_689_512, 18)
_resnet_entry("resnet34", (3, 4, 6, 3), 21_797_672, 34)
_resnet_entry("resnet50", (3, 4, 6, 3), 25_557_032, 50)
_resnet_entry("resnet101", (3, 4, 23, 3), 44_549_160, 101)
_resnet_entry("resnet152", (3, 8, 36, 3), 60_192_808, 152)


@register_model(
    "se_resnet50",
    description="se_resnet50.cnn",
    citation=HU_2018,
    default_input=(3, 224, 224),
    exact_params=28_088_024,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(
            28_100_000, rel_tolerance=0.002, note="the paper: 28.1 M, rounded to 0.1 M"
        )
    },
    notes="ResNet-50 (torchvision layout) with a squeeze-and-excitation block on every "
    "bottleneck's residual branch after bn3, before the addition (the paper's standard SE-ResNet "
    "module), reduction r = 16, FCs with bias. Exact count 25,557,032 + Σ(2·C²/r + C/r + C) = "
    "28,088,024; the paper rounds to 28.1 M.",
    argument_help={**_HELP, "reduction": "SE reduction ratio r (hidden width C / r)"},
    small_input=(3, 64, 64),
)
def se_resnet50(num_classes: int = 1000, in_channels: int = 3, reduction: int = 16) -> ResNet:
    """SE-ResNet-50."""
    if reduction < 1:
        raise ValueError(f"reduction must be at least 1 (got {reduction})")
    return ResNet(
        Bottleneck,
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        se_reduction=reduction,
    )
