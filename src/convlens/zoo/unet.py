"""U-Net (Ronneberger et al. 2015): the paper's network and a "same"-padded variant.

``unet`` is Figure 1 of the paper: unpadded 3×3 convolutions, so a 572×572
tile gives a 388×388 map, 2×2 max-pooling, 2×2 up-convolutions
(``ConvTranspose2d(k=2, s=2)``) that halve the channels, and skip connections
centre-cropped to the decoder's size before concatenation.

``unet_same`` is the common modern variant: padding 1 keeps sizes, each conv is
followed by BatchNorm, and the depth and width are arguments.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model

RONNEBERGER_2015 = Citation(
    authors="Olaf Ronneberger, Philipp Fischer and Thomas Brox",
    title="U-Net: Convolutional Networks for Biomedical Image Segmentation",
    venue="MICCAI",
    year=2015,
)


def double_conv(
    in_channels: int, out_channels: int, padding: int, batch_norm: bool
) -> nn.Sequential:
    """Two 3×3 convolutions, each followed by [BatchNorm and] ReLU."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(c_in, out_channels, 3, padding=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height × width`` window of (N, C, H, W) — the paper's skip cropping."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class UNet(nn.Module):
    """The paper's U-Net, Figure 1 (sizes in comments at the 572×572 input)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.enc1 = double_conv(in_channels, 64, 0, False)  # 572 → 570 → 568
        self.enc2 = double_conv(64, 128, 0, False)  # 284 → 282 → 280
        self.enc3 = double_conv(128, 256, 0, False)  # 140 → 138 → 136
        self.enc4 = double_conv(256, 512, 0, False)  # 68 → 66 → 64
        self.bottleneck = double_conv(512, 1024, 0, False)  # 32 → 30 → 28
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(p=dropout)
        self.up4 = nn.ConvTranspose2d(1024, 512, kernel_size=2, stride=2)  # 28 → 56
        self.dec4 = double_conv(1024, 512, 0, False)  # 56 → 54 → 52
        self.up3 = nn.ConvTranspose2d(512, 256, kernel_size=2, stride=2)  # 52 → 104
        self.dec3 = double_conv(512, 256, 0, False)  # 104 → 102 → 100
        self.up2 = nn.ConvTranspose2d(256, 128, kernel_size=2, stride=2)  # 100 → 200
        self.dec2 = double_conv(256, 128, 0, False)  # 200 → 198 → 196
        self.up1 = nn.ConvTranspose2d(128, 64, kernel_size=2, stride=2)  # 196 → 392
        self.dec1 = double_conv(128, 64, 0, False)  # 392 → 390 → 388
        self.head = nn.Conv2d(64, num_classes, kernel_size=1)  # 388 × 388 × classes

    @staticmethod
    def _merge(skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        # Figure 1's grey arrows: copy and crop, then concatenate [skip, upsampled].
        return torch.cat([center_crop(skip, up.shape[-2], up.shape[-1]), up], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # (N, 64, 568, 568)
        e2 = self.enc2(self.pool(e1))  # (N, 128, 280, 280)
        e3 = self.enc3(self.pool(e2))  # (N, 256, 136, 136)
        e4 = self.dropout(self.enc4(self.pool(e3)))  # (N, 512, 64, 64)
        b = self.dropout(self.bottleneck(self.pool(e4)))  # (N, 1024, 28, 28)
        d4 = self.dec4(self._merge(e4, self.up4(b)))  # (N, 512, 52, 52)
        d3 = self.dec3(self._merge(e3, self.up3(d4)))  # (N, 256, 100, 100)
        d2 = self.dec2(self._merge(e2, self.up2(d3)))  # (N, 128, 196, 196)
        d1 = self.dec1(self._merge(e1, self.up1(d2)))  # (N, 64, 388, 388)
        return self.head(d1)  # (N, num_classes, 388, 388)


@register_model(
    "unet",
    description="unet.cnn",
    citation=RONNEBERGER_2015,
    default_input=(1, 572, 572),
    exact_params=31_030_658,
    output_shapes=((2, 388, 388),),
    published={
        "output_height": PublishedFigure(
            388, Quantity.OUTPUT_DIM, dim=1, note="Figure 1: 572×572 tile → 388×388 map"
        ),
        "output_width": PublishedFigure(388, Quantity.OUTPUT_DIM, dim=2),
        "output_channels": PublishedFigure(2, Quantity.OUTPUT_DIM, dim=0),
    },
    notes="Figure 1 exactly: 23 convolutional layers, unpadded 3×3 convolutions with bias and "
    "ReLU, 2×2 max-pooling, 2×2 up-convolutions halving the channels, centre-cropped skips "
    "concatenated as [skip, upsampled], a final 1×1 convolution to 2 classes. The paper gives "
    "no parameter count; the rebuild has 31,030,658. Input sizes must satisfy the paper's "
    "tiling rule (e.g. 572, 188 …: every 2×2 pooling sees an even size). The paper mentions "
    "drop-out at the end of the contracting path without its rate; dropout=p puts Dropout(p) "
    "after the fourth stage and after the bottom stage (off by default, no parameters).",
    argument_help={
        "in_channels": "channels of the input tile (1 in the paper)",
        "num_classes": "channels of the output map (2 in the paper)",
        "dropout": "drop-out rate at the end of the contracting path",
    },
    small_input=(1, 188, 188),  # the smallest valid tile: 188 → 4×4
)
def unet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> UNet:
    """The paper's U-Net (unpadded convolutions, cropped skips)."""
    return UNet(in_channels, num_classes, dropout)


class UNetSame(nn.Module):
    """Padded U-Net: output size = input size (divisible by 2**depth)."""

    def __init__(
        self,
        base_channels: int = 64,
        depth: int = 4,
        in_channels: int = 3,
        num_classes: int = 2,
        bilinear: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1 (got {depth})")
        if base_channels < 1:
            raise ValueError(f"base_channels must be at least 1 (got {base_channels})")
        widths = [base_channels * 2**i for i in range(depth + 1)]  # 64, 128, …, 1024
        self.depth = depth
        self.pool = nn.MaxPool2d(2, 2)
        self.encoders = nn.ModuleList(
            double_conv(c_in, c_out, 1, True)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            if bilinear:
                # Upsample, then a 1×1 conv to halve the channels like the up-convolution does.
                up: nn.Module = nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(widths[i + 1], widths[i], kernel_size=1),
                )
            else:
                up = nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2)
            self.ups.append(up)
            self.decoders.append(double_conv(2 * widths[i], widths[i], 1, True))
        self.head = nn.Conv2d(base_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom stage feeds the decoder directly
        for up, decoder in zip(self.ups, self.decoders, strict=True):
            x = up(x)
            skip = skips.pop()
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:  # odd sizes: pad the upsampled map to the skip's size
                x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
            x = decoder(torch.cat([skip, x], 1))
        return self.head(x)  # (N, num_classes, H, W)


@register_model(
    "unet_same",
    description="unet_same.cnn",
    citation=RONNEBERGER_2015,
    default_input=(3, 256, 256),
    exact_params=31_037_698,
    output_shapes=((2, 256, 256),),
    published={},
    notes="Not the paper's network: the common 'same' variant. 3×3 convolutions with padding 1 "
    "(no bias) each followed by BatchNorm2d and ReLU, so the output has the input's size; "
    "widths base_channels·2^i for i = 0…depth; 2×2 up-convolutions, or with bilinear=True a "
    "bilinear ×2 upsampling followed by a 1×1 convolution that halves the channels. Skips are "
    "concatenated as [skip, upsampled]; an upsampled map smaller than its skip (odd sizes) is "
    "zero-padded. No published figure: the exact count at the defaults is recorded instead.",
    argument_help={
        "base_channels": "channels of the first stage (doubled at every stage)",
        "depth": "number of poolings (stages below the first)",
        "in_channels": "channels of the input image",
        "num_classes": "channels of the output map",
        "bilinear": "bilinear upsampling + 1×1 conv instead of 2×2 up-convolutions",
    },
    small_input=(3, 64, 64),
)
def unet_same(
    base_channels: int = 64,
    depth: int = 4,
    in_channels: int = 3,
    num_classes: int = 2,
    bilinear: bool = False,
) -> UNetSame:
    """U-Net with padded convolutions and BatchNorm."""
    return UNetSame(base_channels, depth, in_channels, num_classes, bilinear)
