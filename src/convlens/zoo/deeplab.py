"""DeepLabv3 (Chen et al. 2017) with a dilated ResNet backbone, in torchvision's layout.

Keys match ``torchvision.models.segmentation.deeplabv3_resnet50/101``:
``backbone.conv1 … backbone.layer4`` (an IntermediateLayerGetter over the
ResNet, without ``avgpool`` and ``fc``), ``classifier.0`` (ASPP),
``classifier.1–3`` (3×3 conv, BN, ReLU) and ``classifier.4`` — the final 1×1
convolution to the classes, the one a fine-tuning lab trains — and, with
``aux_loss=True``, ``aux_classifier`` (an FCN head on layer3).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, register_model
from convlens.zoo.resnet import Bottleneck, ResNet

CHEN_2017 = Citation(
    authors="Liang-Chieh Chen, George Papandreou, Florian Schroff and Hartwig Adam",
    title="Rethinking Atrous Convolution for Semantic Image Segmentation",
    venue="arXiv:1706.05587",
    year=2017,
)


class IntermediateLayerGetter(nn.ModuleDict):
    """The model's children up to the last requested one; returns {new name: output}."""

    def __init__(self, model: nn.Module, return_layers: dict[str, str]) -> None:
        wanted = dict(return_layers)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        if wanted:
            raise ValueError(f"return_layers {sorted(wanted)} are not children of the model")
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class ASPPConv(nn.Sequential):
    """3×3 atrous convolution (padding = rate keeps the size) → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool → 1×1 conv → BN → ReLU → upsample back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1 | three 3×3 at ``atrous_rates`` | image pooling."""

    def __init__(
        self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256
    ) -> None:
        super().__init__()
        modules: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            )
        ]
        modules += [ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        modules.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], 1))  # (N, 256, H, W)


class DeepLabHead(nn.Sequential):
    """ASPP → 3×3 conv 256 → BN → ReLU → 1×1 conv to the classes (index 4)."""

    def __init__(
        self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36)
    ) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, num_classes, 1),
        )


class FCNHead(nn.Sequential):
    """torchvision's auxiliary head: 3×3 conv to C/4 → BN → ReLU → dropout 0.1 → 1×1 conv."""

    def __init__(self, in_channels: int, channels: int) -> None:
        inter = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inter, channels, 1),
        )


class DeepLabV3(nn.Module):
    """Returns ``{"out": (N, classes, H, W)}`` (+ ``"aux"``), logits upsampled to the input size."""

    def __init__(
        self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        input_shape = x.shape[-2:]
        features = self.backbone(x)  # {"out": (N, 2048, H/8, W/8)[, "aux": (N, 1024, H/8, W/8)]}
        result: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = self.classifier(features["out"])  # (N, classes, H/8, W/8)
        result["out"] = F.interpolate(out, size=input_shape, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(
                aux, size=input_shape, mode="bilinear", align_corners=False
            )
        return result


def _deeplabv3_resnet(
    layers: tuple[int, int, int, int], num_classes: int, aux_loss: bool, atrous_rates: Sequence[int]
) -> DeepLabV3:
    resnet = ResNet(Bottleneck, layers, replace_stride_with_dilation=(False, True, True))
    return_layers = {"layer4": "out"}
    if aux_loss:
        return_layers["layer3"] = "aux"
    backbone = IntermediateLayerGetter(resnet, return_layers)
    aux = FCNHead(1024, num_classes) if aux_loss else None
    return DeepLabV3(backbone, DeepLabHead(2048, num_classes, atrous_rates), aux)


_HELP = {
    "num_classes": "output classes (21 for PASCAL VOC)",
    "aux_loss": "add torchvision's auxiliary FCN head on layer3 (returned as 'aux')",
    "atrous_rates": "dilation rates of ASPP's three 3×3 branches",
}


def _notes(depth: int, without: int, with_aux: int) -> str:
    return (
        f"torchvision's deeplabv3_resnet{depth}: ResNet-{depth} with replace_stride_with_dilation="
        "[False, True, True] (output stride 8; layer3 dilation 2, layer4 dilation 4), ASPP with "
        "rates 12/24/36 plus image pooling (256 channels each, projected by a 1×1 conv, dropout "
        "0.5), then a 3×3 conv, BN, ReLU and the 1×1 classifier conv 'classifier.4'; logits are "
        "bilinearly upsampled to the input size and returned as {'out': …}. The paper reports no "
        f"parameter count; torchvision's {with_aux:,} includes its auxiliary FCN head, which is "
        f"off here by default ({without:,} without it). The paper's multi-grid rates (1, 2, 4) "
        "in the last block are not used, as in torchvision."
    )


@register_model(
    "deeplabv3_resnet50",
    description="deeplabv3_resnet50.cnn",
    citation=CHEN_2017,
    default_input=(3, 513, 513),
    exact_params=39_638_869,
    output_shapes=((21, 513, 513),),
    published={
        "params_with_aux": PublishedFigure(
            42_004_074, note="torchvision's count, aux head on", arguments={"aux_loss": True}
        ),
    },
    notes=_notes(50, 39_638_869, 42_004_074),
    argument_help=_HELP,
    small_input=(3, 64, 64),
)
def deeplabv3_resnet50(
    num_classes: int = 21, aux_loss: bool = False, atrous_rates: tuple[int, ...] = (12, 24, 36)
) -> DeepLabV3:
    """DeepLabv3 with a dilated ResNet-50."""
    return _deeplabv3_resnet((3, 4, 6, 3), num_classes, aux_loss, atrous_rates)


@register_model(
    "deeplabv3_resnet101",
    description="deeplabv3_resnet101.cnn",
    citation=CHEN_2017,
    default_input=(3, 513, 513),
    exact_params=58_630_997,
    output_shapes=((21, 513, 513),),
    published={
        "params_with_aux": PublishedFigure(
            60_996_202, note="torchvision's count, aux head on", arguments={"aux_loss": True}
        ),
    },
    notes=_notes(101, 58_630_997, 60_996_202),
    argument_help=_HELP,
    small_input=(3, 64, 64),
)
def deeplabv3_resnet101(
    num_classes: int = 21, aux_loss: bool = False, atrous_rates: tuple[int, ...] = (12, 24, 36)
) -> DeepLabV3:
    """DeepLabv3 with a dilated ResNet-101."""
    return _deeplabv3_resnet((3, 4, 23, 3), num_classes, aux_loss, atrous_rates)
