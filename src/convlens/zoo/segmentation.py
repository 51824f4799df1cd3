"""Segmentation networks for the segmentation lab: the paper's U-Net with a width option,
and a DeepLabv3-style network on the CIFAR ResNets of the classification lab.

``unet_valid`` is Figure 1 of Ronneberger et al. 2015 with its width (channels of the first
stage, 64 in the paper) and depth (poolings, 4) as arguments: unpadded 3×3 convolutions,
2×2 max-pooling, 2×2 up-convolutions, centre-cropped skips. At the defaults it is the
zoo's ``unet`` exactly (31,030,658 parameters); ``batch_norm=True`` puts BatchNorm after
each convolution (not in the paper; it lets a narrow net train in minutes on a CPU).

A valid-convolution net maps an input of size I to an output of size I − 2·margin, and only
some sizes work (every 2×2 pooling must see an even size): ``valid_input_sizes`` and
``output_size`` give them, so the lab can name the smallest size that works.

``deeplabv3_cifar`` is DeepLabv3's head (ASPP + 3×3 conv + BN + ReLU + the 1×1
``classifier.4``) on the backbone of a CIFAR ResNet (``resnet20`` of He et al. 2016 or
``resnet9`` of Page 2018) whose tensors are named exactly as in that classifier, under
``backbone.``: a ``lab classify`` run's weights load into it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.cifar_resnet import HE_2016, CifarResNet, ResNet9
from convlens.zoo.deeplab import DeepLabHead
from convlens.zoo.registry import register_model
from convlens.zoo.unet import RONNEBERGER_2015, center_crop, double_conv

# -----------------------------------------------------------------------------
# the paper's U-Net with a width and a depth


def output_size(size: int, depth: int) -> int | None:
    """Output side of a valid U-Net of ``depth`` poolings for an input side ``size``, or
    None when some pooling would see an odd size or a map would vanish.

    Down: s → s − 4 (two unpadded 3×3 convs), then s / 2 (pooling); bottom: s − 4;
    up: s → 2s − 4. E.g. depth 4: 572 → 388 (Figure 1)."""
    s = size
    for _ in range(depth):
        s -= 4
        if s < 2 or s % 2:
            return None
        s //= 2
    s -= 4
    if s < 1:
        return None
    for _ in range(depth):
        s = 2 * s - 4
        if s < 1:
            return None
    return s


def valid_input_sizes(depth: int, largest: int) -> list[int]:
    """Every input side ≤ ``largest`` that a valid U-Net of ``depth`` poolings accepts
    (they are spaced by 2**depth: 188, 204, … for depth 4)."""
    return [s for s in range(1, largest + 1) if output_size(s, depth) is not None]


def smallest_input_size(depth: int) -> int:
    size = 1
    while output_size(size, depth) is None:
        size += 1
    return size


class UNetValid(nn.Module):
    """Figure 1 with widths w·2^i (i = 0…depth); sizes for width 64, depth 4 at 572²."""

    def __init__(
        self,
        width: int = 64,
        depth: int = 4,
        in_channels: int = 1,
        num_classes: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be at least 1 (got {depth}, {width})")
        widths = [width * 2**i for i in range(depth + 1)]  # 64, 128, 256, 512, 1024
        self.depth = depth
        smallest = smallest_input_size(depth)
        self.margin = (smallest - output_size(smallest, depth)) // 2  # type: ignore[operator]
        self.pool = nn.MaxPool2d(2, 2)
        self.encoders = nn.ModuleList(
            double_conv(c_in, c_out, 0, batch_norm)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )  # 572 → 568, 284 → 280, 140 → 136, 68 → 64, 32 → 28
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2)
            for i in reversed(range(depth))
        )  # 28 → 56, 52 → 104, 100 → 200, 196 → 392
        self.decoders = nn.ModuleList(
            double_conv(2 * widths[i], widths[i], 0, batch_norm) for i in reversed(range(depth))
        )  # 56 → 52, 104 → 100, 200 → 196, 392 → 388
        self.head = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom stage feeds the decoder directly
        for up, decoder in zip(self.ups, self.decoders, strict=True):
            x = up(x)
            skip = center_crop(skips.pop(), x.shape[-2], x.shape[-1])  # copy and crop
            x = decoder(torch.cat([skip, x], 1))
        return self.head(x)  # (N, num_classes, H − 2·margin, W − 2·margin)


@register_model(
    "unet_valid",
    citation=RONNEBERGER_2015,
    default_input=(1, 572, 572),
    exact_params=31_030_658,
    output_shapes=((2, 388, 388),),
    notes="Figure 1 with its width (channels of the first stage) and depth (poolings) as "
    "arguments: unpadded 3×3 convolutions with ReLU, 2×2 max-pooling, 2×2 up-convolutions "
    "halving the channels, centre-cropped skips concatenated as [skip, upsampled], a 1×1 "
    "convolution to the classes. At the defaults it is the zoo's 'unet' (31,030,658 "
    "parameters, 572 → 388). batch_norm=True (not in the paper) adds BatchNorm after each "
    "convolution and drops its bias. Input sides must be valid: for depth 4, 188, 204, 220, "
    "… (steps of 16); the segmentation lab names the nearest ones.",
    argument_help={
        "width": "channels of the first stage (64 in the paper), doubled at every pooling",
        "depth": "number of 2×2 poolings (4 in the paper)",
        "in_channels": "channels of the input tile (1 in the paper)",
        "num_classes": "channels of the output map (2 in the paper)",
        "batch_norm": "BatchNorm after every convolution (not in the paper)",
    },
    small_input=(1, 188, 188),
)
def unet_valid(
    width: int = 64,
    depth: int = 4,
    in_channels: int = 1,
    num_classes: int = 2,
    batch_norm: bool = False,
) -> UNetValid:
    """The paper's U-Net (valid convolutions, cropped skips) with a width and a depth."""
    return UNetValid(width, depth, in_channels, num_classes, batch_norm)


# -----------------------------------------------------------------------------
# DeepLabv3 on a CIFAR ResNet backbone


class CifarResNet20Backbone(nn.Module):
    """ResNet-20 of He et al. §4.2 without pooling and fc: (N, 3, H, W) → (N, 64, H/4, W/4).
    Tensor names as in ``cifar_resnet20`` (``conv1``, ``bn1``, ``layer1``…``layer3``)."""

    def __init__(self) -> None:
        super().__init__()
        resnet = CifarResNet(20)
        self.normalize, self.conv1, self.bn1, self.relu = (
            resnet.normalize, resnet.conv1, resnet.bn1, resnet.relu,
        )  # fmt: skip
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        self.out_channels, self.stride = 64, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))  # (N, 16, H, W)
        return self.layer3(self.layer2(self.layer1(x)))  # (N, 64, H/4, W/4)


class ResNet9Backbone(nn.Module):
    """ResNet-9 of Page 2018 without the final pooling and fc: (N, 3, H, W) →
    (N, 8w, H/8, W/8). Tensor names as in ``cifar_resnet9``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        resnet = ResNet9(width)
        self.normalize, self.prep, self.layer1, self.res1 = (
            resnet.normalize, resnet.prep, resnet.layer1, resnet.res1,
        )  # fmt: skip
        self.layer2, self.layer3, self.res3 = resnet.layer2, resnet.layer3, resnet.res3
        self.out_channels, self.stride = 8 * width, 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.prep(self.normalize(x)))  # (N, 2w, H/2, W/2)
        x = x + self.res1(x)
        x = self.layer3(self.layer2(x))  # (N, 8w, H/8, W/8)
        return x + self.res3(x)


class DeepLabCifar(nn.Module):
    """DeepLabv3 head on a CIFAR ResNet: a grey image is fed as three equal channels;
    logits are upsampled bilinearly to the input size."""

    input_channels = 1  # what the segmentation lab feeds it

    def __init__(
        self, backbone: nn.Module, num_classes: int, atrous_rates: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = DeepLabHead(backbone.out_channels, num_classes, atrous_rates)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # greyscale: the backbone was trained on RGB
            x = torch.cat([x, x, x], 1)
        out = self.classifier(self.backbone(x))  # (N, K, H/s, W/s)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model(
    "deeplabv3_cifar",
    citation=HE_2016,
    default_input=(1, 128, 128),
    exact_params=1_665_810,
    output_shapes=((2, 128, 128),),
    notes="DeepLabv3's head (Chen et al. 2017: ASPP with three 3×3 atrous branches and image "
    "pooling, 256 channels each, a 1×1 projection with dropout 0.5, then a 3×3 conv, BN, ReLU "
    "and the 1×1 'classifier.4') on the backbone of a CIFAR ResNet — 'resnet20' (He et al. "
    "2016 §4.2, output stride 4) or 'resnet9' (Page 2018, output stride 8, width w) — with "
    "the classifier's tensor names under 'backbone.', so a 'lab classify' run's weights load "
    "into it. A one-channel input is repeated to RGB; the backbone normalises with CIFAR-10's "
    "statistics. Logits are upsampled bilinearly to the input size.",
    argument_help={
        "backbone": "resnet20 or resnet9",
        "width": "resnet9 only: channels of its prep layer (stages 2w, 4w, 8w)",
        "num_classes": "output classes",
        "atrous_rates": "dilation rates of ASPP's three 3×3 branches",
    },
    small_input=(1, 64, 64),
)
def deeplabv3_cifar(
    backbone: str = "resnet20",
    width: int = 32,
    num_classes: int = 2,
    atrous_rates: tuple[int, ...] = (6, 12, 18),
) -> DeepLabCifar:
    """DeepLabv3 with the backbone of a CIFAR ResNet (from a classification run)."""
    if backbone == "resnet20":
        net: nn.Module = CifarResNet20Backbone()
    elif backbone == "resnet9":
        net = ResNet9Backbone(width)
    else:
        raise ValueError(f"backbone must be resnet20 or resnet9 (got {backbone!r})")
    return DeepLabCifar(net, num_classes, tuple(atrous_rates))
