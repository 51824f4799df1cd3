"""YOLOv1 (Redmon et al. 2016), Darknet-53 and YOLOv3 (Redmon & Farhadi 2018).

Layouts follow the authors' Darknet configuration files (``yolov1.cfg``,
``darknet53.cfg``, ``yolov3.cfg``) layer for layer; torchvision has none of them.
``convlens.detection.decode`` turns their outputs into boxes (``decode_yolov1``,
``decode_yolov3``, with yolov3.cfg's anchors).
"""

from __future__ import annotations

import torch
from torch import nn

from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model

REDMON_2016 = Citation(
    authors="Joseph Redmon, Santosh Divvala, Ross Girshick and Ali Farhadi",
    title="You Only Look Once: Unified, Real-Time Object Detection",
    venue="CVPR",
    year=2016,
)
REDMON_2018 = Citation(
    authors="Joseph Redmon and Ali Farhadi",
    title="YOLOv3: An Incremental Improvement",
    venue="arXiv:1804.02767",
    year=2018,
)

# ----------------------------------------------------------------------------- YOLOv1

# The paper's Figure 3: (kernel, out channels, stride) or "M" (2×2 max-pool, stride 2).
YOLOV1_LAYERS: tuple[tuple[int, int, int] | str, ...] = (
    (7, 64, 2), "M",
    (3, 192, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)  # fmt: skip


class YOLOv1(nn.Module):
    """24 convolutional layers and 2 fully connected layers; output (N, S, S, B·5 + C)."""

    def __init__(
        self,
        grid_size: int = 7,
        num_boxes: int = 2,
        num_classes: int = 20,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.grid_size, self.num_boxes, self.num_classes = grid_size, num_boxes, num_classes
        layers: list[nn.Module] = []
        channels = in_channels
        for spec in YOLOV1_LAYERS:
            if isinstance(spec, str):  # "M"
                layers.append(nn.MaxPool2d(2, 2))
                continue
            kernel, out, stride = spec
            layers += [
                nn.Conv2d(channels, out, kernel, stride, padding=kernel // 2),
                nn.LeakyReLU(0.1, inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)  # (N, 1024, 7, 7) at 448²
        per_cell = num_boxes * 5 + num_classes
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(1024 * 7 * 7, 4096),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, grid_size * grid_size * per_cell),  # linear activation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(self.features(x))  # (N, S·S·(B·5 + C))
        s = self.grid_size
        # Cell-major, channels last: out[n, i, j] = B × (x, y, w, h, confidence), then C classes.
        return out.view(-1, s, s, self.num_boxes * 5 + self.num_classes)


@register_model(
    "yolov1",
    description="yolov1.cnn",
    citation=REDMON_2016,
    default_input=(3, 448, 448),
    exact_params=271_703_550,
    output_shapes=((7, 7, 30),),
    published={
        "output_cells": PublishedFigure(
            7 * 7 * 30, Quantity.OUTPUT_SIZE, note="S × S × (B·5 + C) = 7 × 7 × 30"
        ),
    },
    notes="Figure 3: 24 convolutional layers (bias, leaky ReLU 0.1, 'same' padding) and two "
    "fully connected layers (4096, then S·S·(B·5+C) with a linear activation), dropout 0.5 "
    "after the first. The input must be 448×448: the first linear layer reads a 7×7×1024 map. "
    "The output is reshaped to (N, S, S, B·5 + C), cell-major and channels-last — each cell "
    "holds B boxes (x, y, w, h, confidence) then C class probabilities. This is a layout "
    "convention (Darknet's own detection layer orders the flat vector differently); it does "
    "not change any count. The paper gives no parameter count; the rebuild has 271,703,550, "
    "most of them (205.5 M) in the first linear layer.",
    argument_help={
        "grid_size": "S: cells per side of the output grid",
        "num_boxes": "B: boxes predicted per cell",
        "num_classes": "C: class probabilities per cell",
        "in_channels": "channels of the input image",
        "dropout": "dropout p after the first linear layer",
    },
    small_input=(3, 448, 448),  # the only input the first linear layer accepts
)
def yolov1(
    grid_size: int = 7,
    num_boxes: int = 2,
    num_classes: int = 20,
    in_channels: int = 3,
    dropout: float = 0.5,
) -> YOLOv1:
    """YOLOv1 (the full model, not Fast YOLO)."""
    return YOLOv1(grid_size, num_boxes, num_classes, in_channels, dropout)


# ----------------------------------------------------------------------------- Darknet-53


class ConvBNLeaky(nn.Sequential):
    """Darknet's conv layer: conv (no bias, 'same' padding) → BatchNorm → leaky ReLU 0.1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.1, inplace=True)


class DarknetResidual(nn.Module):
    """1×1 conv to C/2 → 3×3 conv to C, plus the input (Table 1's 'Residual')."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(channels, channels // 2, 1)
        self.conv2 = ConvBNLeaky(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _darknet_stage(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
    """A stride-2 3×3 conv, then ``blocks`` residual blocks."""
    layers: list[nn.Module] = [ConvBNLeaky(in_channels, out_channels, 3, 2)]
    layers += [DarknetResidual(out_channels) for _ in range(blocks)]
    return nn.Sequential(*layers)


class Darknet53(nn.Module):
    """Table 1 of the YOLOv3 paper: 52 convolutions (1, 2, 8, 8, 4 residual blocks) + a classifier.

    ``forward_features`` returns the maps at strides 8, 16 and 32 (256, 512, 1024
    channels) that YOLOv3 reads.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(in_channels, 32, 3)
        self.layer1 = _darknet_stage(32, 64, 1)  # stride 2
        self.layer2 = _darknet_stage(64, 128, 2)  # stride 4
        self.layer3 = _darknet_stage(128, 256, 8)  # stride 8
        self.layer4 = _darknet_stage(256, 512, 8)  # stride 16
        self.layer5 = _darknet_stage(512, 1024, 4)  # stride 32
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(1024, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.layer2(self.layer1(self.conv1(x)))  # (N, 128, H/4, W/4)
        c3 = self.layer3(x)  # (N, 256, H/8, W/8)
        c4 = self.layer4(c3)  # (N, 512, H/16, W/16)
        c5 = self.layer5(c4)  # (N, 1024, H/32, W/32)
        return c3, c4, c5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5 = self.forward_features(x)[2]
        return self.fc(torch.flatten(self.avgpool(c5), 1))  # (N, num_classes)


@register_model(
    "darknet53",
    description="darknet53.cnn",
    citation=REDMON_2018,
    default_input=(3, 256, 256),
    exact_params=41_609_928,
    output_shapes=((1000,),),
    published={
        "flops": PublishedFigure(
            18_700_000_000,
            Quantity.FLOPS,
            rel_tolerance=0.01,
            note="Table 2: 18.7 'Bn Ops' at 256×256; Darknet counts 2 operations per "
            "multiply-add, so this is compared with 2 × the conv + linear MACs",
        ),
    },
    notes="Table 1 as darknet53.cfg builds it: every convolution without bias, followed by "
    "BatchNorm and leaky ReLU 0.1; global average pooling; a 1000-way fully connected layer "
    "(a 1×1 convolution in the cfg: the same parameters). The paper gives no parameter count; "
    "the rebuild has 41,609,928. Its conv + linear multiply-adds at 256² are "
    "9,285,115,904, i.e. 18.57 G operations, 0.7 % below Table 2's 18.7 Bn (the paper does not say "
    "exactly which operations it counts; the test allows 1 %). Table 2's figures are "
    "at 256×256, the default input here.",
    argument_help={"num_classes": "outputs of the classifier", "in_channels": "input channels"},
    small_input=(3, 64, 64),
)
def darknet53(num_classes: int = 1000, in_channels: int = 3) -> Darknet53:
    """Darknet-53, the classification backbone."""
    return Darknet53(num_classes, in_channels)


# ----------------------------------------------------------------------------- YOLOv3


def _head_convs(in_channels: int, channels: int) -> nn.Sequential:
    """Five alternating 1×1 (channels) / 3×3 (2·channels) convolutions."""
    return nn.Sequential(
        ConvBNLeaky(in_channels, channels, 1),
        ConvBNLeaky(channels, channels * 2, 3),
        ConvBNLeaky(channels * 2, channels, 1),
        ConvBNLeaky(channels, channels * 2, 3),
        ConvBNLeaky(channels * 2, channels, 1),
    )


def _head_out(channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv to 2·channels, then a 1×1 conv with bias and no activation to A·(5 + C)."""
    return nn.Sequential(
        ConvBNLeaky(channels, channels * 2, 3),
        nn.Conv2d(channels * 2, out_channels, kernel_size=1, bias=True),
    )


class YOLOv3(nn.Module):
    """Darknet-53 features and three detection heads (strides 32, 16, 8), as yolov3.cfg."""

    def __init__(self, num_classes: int = 80, num_anchors: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        out = num_anchors * (5 + num_classes)
        self.num_classes, self.num_anchors = num_classes, num_anchors
        backbone = Darknet53(in_channels=in_channels)
        del backbone.avgpool, backbone.fc  # the detector uses the convolutional part only
        self.backbone = backbone
        self.head1 = _head_convs(1024, 512)
        self.out1 = _head_out(512, out)
        self.lateral1 = ConvBNLeaky(512, 256, 1)
        self.head2 = _head_convs(256 + 512, 256)
        self.out2 = _head_out(256, out)
        self.lateral2 = ConvBNLeaky(256, 128, 1)
        self.head3 = _head_convs(128 + 256, 128)
        self.out3 = _head_out(128, out)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3, c4, c5 = self.backbone.forward_features(x)
        p5 = self.head1(c5)  # (N, 512, H/32, W/32)
        y1 = self.out1(p5)  # (N, A·(5+C), H/32, W/32)
        p4 = self.head2(torch.cat([self.upsample(self.lateral1(p5)), c4], 1))  # (N, 256, H/16)
        y2 = self.out2(p4)  # (N, A·(5+C), H/16, W/16)
        p3 = self.head3(torch.cat([self.upsample(self.lateral2(p4)), c3], 1))  # (N, 128, H/8)
        y3 = self.out3(p3)  # (N, A·(5+C), H/8, W/8)
        return y1, y2, y3


@register_model(
    "yolov3",
    citation=REDMON_2018,
    default_input=(3, 416, 416),
    exact_params=61_949_149,
    output_shapes=((255, 13, 13), (255, 26, 26), (255, 52, 52)),
    published={
        "head_channels": PublishedFigure(
            255, Quantity.OUTPUT_DIM, dim=0, note="3 × (4 + 1 + 80), Section 2.3"
        ),
        "flops": PublishedFigure(
            65_860_000_000,
            Quantity.FLOPS,
            rel_tolerance=0.001,
            note="65.86 Bn operations for YOLOv3-416 in the authors' comparison table on the "
            "Darknet web page; Darknet counts 2 operations per multiply-add",
        ),
    },
    notes="Darknet-53's 52 convolutions plus yolov3.cfg's heads: at each scale five alternating "
    "1×1/3×3 convolutions, a 3×3 and a final 1×1 convolution (with bias, no activation) to "
    "3 × (5 + C) channels; the coarser head's features pass through a 1×1 convolution and a "
    "nearest ×2 upsampling and are concatenated [upsampled, backbone] with the backbone's "
    "stride-16 and stride-8 maps. Returns a tuple of the three maps (strides 32, 16, 8). The "
    "paper gives no parameter count; the rebuild has 61,949,149 at C = 80. "
    "convlens.detection.decode_yolov3 turns the maps into boxes.",
    argument_help={
        "num_classes": "C: classes per box (80 for COCO)",
        "num_anchors": "anchors per scale (3 in the paper)",
        "in_channels": "input channels",
    },
    small_input=(3, 64, 64),
)
def yolov3(num_classes: int = 80, num_anchors: int = 3, in_channels: int = 3) -> YOLOv3:
    """YOLOv3 with the Darknet-53 backbone."""
    return YOLOv3(num_classes, num_anchors, in_channels)
