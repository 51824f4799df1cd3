"""Darknet-19 and YOLOv2 (Redmon & Farhadi 2017, "YOLO9000: Better, Faster, Stronger").

Layouts follow the authors' Darknet configuration files: ``darknet19.cfg`` for the
classifier (the paper's Table 6) and ``yolo-voc.2.0.cfg`` for the detector as the paper
describes it (Section 3: the passthrough layer turns the 26 × 26 × 512 map into
13 × 13 × 2048). The later ``yolov2.cfg`` / ``yolov2-voc.cfg`` first reduce that map to 64
channels with a 1 × 1 convolution: ``passthrough_channels=64`` builds that variant.
"""

from __future__ import annotations

import torch
from torch import nn

from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model
from convlens.zoo.yolo import ConvBNLeaky

REDMON_2017 = Citation(
    authors="Joseph Redmon and Ali Farhadi",
    title="YOLO9000: Better, Faster, Stronger",
    venue="CVPR",
    year=2017,
)

# Table 6 up to the classifier: (out channels, kernel) or "M" (2×2 max-pool, stride 2).
# The first 13 convolutions run to stride 16 (26×26 at 416²), where YOLOv2's passthrough
# layer reads; the last 5 run at stride 32.
DARKNET19_TO_STRIDE16: tuple[tuple[int, int] | str, ...] = (
    (32, 3), "M",
    (64, 3), "M",
    (128, 3), (64, 1), (128, 3), "M",
    (256, 3), (128, 1), (256, 3), "M",
    (512, 3), (256, 1), (512, 3), (256, 1), (512, 3),
)  # fmt: skip
DARKNET19_TO_STRIDE32: tuple[tuple[int, int] | str, ...] = (
    "M",
    (1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3),
)  # fmt: skip


def _darknet_layers(spec: tuple[tuple[int, int] | str, ...], in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for item in spec:
        if isinstance(item, str):  # "M"
            layers.append(nn.MaxPool2d(2, 2))
            continue
        out, kernel = item
        layers.append(ConvBNLeaky(channels, out, kernel))
        channels = out
    return nn.Sequential(*layers)


class Darknet19(nn.Module):
    """18 conv + BN + leaky layers and 5 max-pools, then a 1×1 conv classifier and global pool.

    ``stride16`` and ``stride32`` are the two parts of the trunk that YOLOv2 reads.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.stride16 = _darknet_layers(DARKNET19_TO_STRIDE16, in_channels)  # (N, 512, H/16)
        self.stride32 = _darknet_layers(DARKNET19_TO_STRIDE32, 512)  # (N, 1024, H/32)
        # The 19th convolution: 1×1 to the classes, with bias, no BatchNorm, linear.
        self.classifier = nn.Conv2d(1024, num_classes, kernel_size=1)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.stride32(self.stride16(x)))  # (N, classes, H/32, W/32)
        return torch.flatten(self.avgpool(x), 1)  # (N, classes): softmax is in the loss


@register_model(
    "darknet19",
    description="darknet19.cnn",
    citation=REDMON_2017,
    default_input=(3, 224, 224),
    exact_params=20_842_376,
    output_shapes=((1000,),),
    published={
        "flops": PublishedFigure(
            5_580_000_000,
            Quantity.FLOPS,
            rel_tolerance=0.001,
            note="Section 3 ('Darknet-19'): '5.58 billion operations to process an image' at "
            "224×224; Darknet counts 2 operations per multiply-add, so this is 2 × the conv "
            "MACs (5,581,979,648), rounded to three digits",
        ),
    },
    notes="Table 6 as darknet19.cfg builds it: 19 convolutions and 5 max-pools — 18 "
    "convolutions without bias, each followed by BatchNorm and leaky ReLU 0.1 ('same' "
    "padding), channels doubling after each pool with 1×1 convolutions halving them "
    "in between; then a 1×1 convolution to the 1000 classes (with bias, linear) and global "
    "average pooling (the softmax belongs to the loss). The paper gives no parameter count; "
    "the rebuild has 20,842,376. 2,790,989,824 conv MACs at 224² are 5.582 billion "
    "operations (the paper: 5.58); at 256², the input of darknet19.cfg, they are "
    "3,645,374,464 MACs = 7.29 billion operations, the Darknet web page's figure for "
    "Darknet19 (tests/zoo/test_yolov2.py checks both).",
    argument_help={"num_classes": "outputs of the classifier", "in_channels": "input channels"},
    small_input=(3, 64, 64),
)
def darknet19(num_classes: int = 1000, in_channels: int = 3) -> Darknet19:
    """Darknet-19, YOLOv2's classification backbone."""
    return Darknet19(num_classes, in_channels)


def space_to_depth(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """(N, C, H, W) → (N, C·b², H/b, W/b): each b×b patch becomes b² channels.

    YOLOv2's passthrough ('reorg') layer. The channel order is that of
    ``F.pixel_unshuffle`` (channel c·b² + i·b + j holds pixel (i, j) of each patch);
    Darknet's reorg orders them differently, which changes no count.
    """
    n, c, h, w = x.shape
    x = x.view(n, c, h // block, block, w // block, block)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(n, c * block * block, h // block, w // block)


class YOLOv2(nn.Module):
    """Darknet-19's trunk, three 3×3 convolutions with a passthrough from stride 16, a 1×1 head.

    Output (N, A·(5 + C), H/32, W/32): for each anchor t_x, t_y, t_w, t_h, t_o and C
    class logits (``convlens.detection.decode_yolov2`` turns them into boxes).
    """

    def __init__(
        self,
        num_classes: int = 20,
        num_anchors: int = 5,
        passthrough_channels: int = 0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes, self.num_anchors = num_classes, num_anchors
        backbone = Darknet19(in_channels=in_channels)
        del backbone.classifier, backbone.avgpool  # the detector uses the trunk only
        self.backbone = backbone
        self.head = nn.Sequential(ConvBNLeaky(1024, 1024, 3), ConvBNLeaky(1024, 1024, 3))
        fine = passthrough_channels or 512
        self.passthrough = (
            ConvBNLeaky(512, passthrough_channels, 1) if passthrough_channels else nn.Identity()
        )
        self.fuse = ConvBNLeaky(4 * fine + 1024, 1024, 3)
        self.out = nn.Conv2d(1024, num_anchors * (5 + num_classes), kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c4 = self.backbone.stride16(x)  # (N, 512, H/16, W/16)
        p5 = self.head(self.backbone.stride32(c4))  # (N, 1024, H/32, W/32)
        fine = space_to_depth(self.passthrough(c4))  # (N, 4·512 or 4·64, H/32, W/32)
        return self.out(self.fuse(torch.cat([fine, p5], 1)))  # (N, A·(5 + C), H/32, W/32)


@register_model(
    "yolov2",
    description="yolov2.cnn",
    citation=REDMON_2017,
    default_input=(3, 416, 416),
    exact_params=67_137_565,
    output_shapes=((125, 13, 13),),
    published={
        "head_channels": PublishedFigure(
            125,
            Quantity.OUTPUT_DIM,
            dim=0,
            note="Section 3: 'for VOC we predict 5 boxes with 5 coordinates each and 20 "
            "classes per box so 125 filters'",
        ),
        "flops": PublishedFigure(
            34_900_000_000,
            Quantity.FLOPS,
            rel_tolerance=0.0002,
            note="34.90 Bn operations for YOLOv2 416×416 (VOC 2007+2012) in the authors' table "
            "on the Darknet YOLOv2 web page; 2 × the conv MACs, rounded to 0.01 Bn",
        ),
    },
    notes="Section 3 and yolo-voc.2.0.cfg: Darknet-19 without its classifier, two 3×3 "
    "convolutions to 1024 channels, the passthrough layer (the stride-16 26×26×512 map "
    "rearranged space-to-depth into 13×13×2048 and concatenated [passthrough, features]), "
    "a 3×3 convolution to 1024 and a 1×1 convolution (with bias, linear) to "
    "A·(5 + C) = 5·25 = 125 channels at 416×416. Every other convolution has no bias and is "
    "followed by BatchNorm and leaky ReLU 0.1. The paper gives no parameter count; the "
    "rebuild has 67,137,565. Its 17,449,063,424 conv MACs at 416² are 34.898 billion "
    "operations (the Darknet page: 34.90 Bn), and at 544² 29,838,930,944 MACs = 59.68 Bn (the "
    "page: 59.68 Bn for YOLOv2 544×544). With passthrough_channels=64 and num_classes=80 it "
    "is yolov2.cfg, the COCO model (50,962,889 parameters): 31,469,126,656 MACs = 62.94 Bn "
    "at 608² (the page: 62.94 Bn for YOLOv2 608×608); tests/zoo/test_yolov2.py checks all "
    "three. The layout of the paper's passthrough (no 1×1 reduction) is what reproduces "
    "the 416 and 544 figures: with the reduction, 416² gives 29.36 Bn. The output's "
    "receptive field is 566×566 (the stride-32 path's 502 plus the fusing 3×3 convolution's "
    "2·32; the input gradient of one output cell covers exactly 566×566). The receptive-field "
    "column above shows 502, that of the last layer before the passthrough's reshape, past "
    "which convlens's analysis does not follow receptive fields.",
    argument_help={
        "num_classes": "C: classes per box (20 for VOC, 80 for COCO)",
        "num_anchors": "A: anchor boxes per cell (5 in the paper)",
        "passthrough_channels": "0: reorganise the 512-channel stride-16 map as the paper "
        "does; 64: reduce it with a 1×1 convolution first, as yolov2.cfg does",
        "in_channels": "input channels",
    },
    small_input=(3, 64, 64),
)
def yolov2(
    num_classes: int = 20, num_anchors: int = 5, passthrough_channels: int = 0, in_channels: int = 3
) -> YOLOv2:
    """YOLOv2 (the VOC detector of the paper)."""
    return YOLOv2(num_classes, num_anchors, passthrough_channels, in_channels)
