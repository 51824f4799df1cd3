"""The colourization networks of the course (CSC321 "Colourization" lab).

Input: a grayscale image (N, in_channels, H, W) with H, W divisible by 4.
Output: per-pixel logits over ``num_colours`` colour bins, (N, num_colours, H, W).

Five blocks, each ``Conv2d(padding=kernel // 2)`` [→ MaxPool2d(2) | Upsample(×2)]
→ BatchNorm2d → ReLU, then a final Conv2d to ``num_colours``:

====  ==================  =====================  ========================
block  conv out channels   resampling             spatial size (H = 32)
====  ==================  =====================  ========================
1      NF                  max-pool 2             16
2      2 NF                max-pool 2             8
3      2 NF                —                      8
4      NF                  upsample ×2            16
5      NC                  upsample ×2            32
final  NC                  —                      32
====  ==================  =====================  ========================

The U-Net variant concatenates along channels: block 4 reads
``cat([out3, out2])``, block 5 ``cat([out4, out1])`` and the final conv
``cat([out5, x])``. Module names follow the course's starter code
(``downconv1``, ``downconv2``, ``rfconv``, ``upconv1``, ``upconv2``, ``finalconv``).
"""

from __future__ import annotations

import torch
from torch import nn

from convlens.zoo.registry import Citation, PublishedFigure, register_model

COURSE = Citation(
    authors="CSC321 course staff, University of Toronto",
    title="Programming Assignment: Image Colourization (PoolUpsampleNet and UNet)",
    venue="CSC321 Introduction to Neural Networks and Machine Learning",
    year=2018,
    label="course (CSC321)",
)

ARGUMENT_HELP = {
    "kernel": "side of every square convolution kernel (odd; padding is kernel // 2)",
    "num_filters": "NF: channels of blocks 1 and 4; blocks 2 and 3 have 2 NF",
    "num_colours": "NC: number of colour bins, the channels of the output logits",
    "in_channels": "channels of the input image (1 for grayscale)",
}


def _block(
    in_channels: int, out_channels: int, kernel: int, resample: nn.Module | None
) -> nn.Sequential:
    """Conv2d ('same' padding) → [MaxPool2d | Upsample] → BatchNorm2d → ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, padding=kernel // 2)
    ]
    if resample is not None:
        layers.append(resample)
    layers += [nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers)


def _check(kernel: int, num_filters: int, num_colours: int, in_channels: int) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(
            f"kernel must be a positive odd integer (got {kernel}) so that "
            "padding kernel // 2 keeps the spatial size"
        )
    for arg, value in (
        ("num_filters", num_filters),
        ("num_colours", num_colours),
        ("in_channels", in_channels),
    ):
        if value < 1:
            raise ValueError(f"{arg} must be at least 1 (got {value})")


class ColourCNN(nn.Module):
    """The plain pool/upsample network (the course's ``PoolUpsampleNet``)."""

    def __init__(
        self, kernel: int = 3, num_filters: int = 32, num_colours: int = 24, in_channels: int = 1
    ) -> None:
        super().__init__()
        _check(kernel, num_filters, num_colours, in_channels)
        nf, nc = num_filters, num_colours
        self.downconv1 = _block(in_channels, nf, kernel, nn.MaxPool2d(2))
        self.downconv2 = _block(nf, 2 * nf, kernel, nn.MaxPool2d(2))
        self.rfconv = _block(2 * nf, 2 * nf, kernel, None)
        self.upconv1 = _block(2 * nf, nf, kernel, nn.Upsample(scale_factor=2))
        self.upconv2 = _block(nf, nc, kernel, nn.Upsample(scale_factor=2))
        self.finalconv = nn.Conv2d(nc, nc, kernel_size=kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.downconv1(x)  # (N, NF, H/2, W/2)
        out2 = self.downconv2(out1)  # (N, 2NF, H/4, W/4)
        out3 = self.rfconv(out2)  # (N, 2NF, H/4, W/4)
        out4 = self.upconv1(out3)  # (N, NF, H/2, W/2)
        out5 = self.upconv2(out4)  # (N, NC, H, W)
        return self.finalconv(out5)  # (N, NC, H, W) logits


class ColourUNet(nn.Module):
    """The U-Net variant: the same blocks, with channel concatenations as skips."""

    def __init__(
        self, kernel: int = 3, num_filters: int = 32, num_colours: int = 24, in_channels: int = 1
    ) -> None:
        super().__init__()
        _check(kernel, num_filters, num_colours, in_channels)
        nf, nc = num_filters, num_colours
        self.downconv1 = _block(in_channels, nf, kernel, nn.MaxPool2d(2))
        self.downconv2 = _block(nf, 2 * nf, kernel, nn.MaxPool2d(2))
        self.rfconv = _block(2 * nf, 2 * nf, kernel, None)
        self.upconv1 = _block(2 * nf + 2 * nf, nf, kernel, nn.Upsample(scale_factor=2))
        self.upconv2 = _block(nf + nf, nc, kernel, nn.Upsample(scale_factor=2))
        self.finalconv = nn.Conv2d(nc + in_channels, nc, kernel_size=kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.downconv1(x)  # (N, NF, H/2, W/2)
        out2 = self.downconv2(out1)  # (N, 2NF, H/4, W/4)
        out3 = self.rfconv(out2)  # (N, 2NF, H/4, W/4)
        out4 = self.upconv1(torch.cat([out3, out2], 1))  # (N, NF, H/2, W/2)
        out5 = self.upconv2(torch.cat([out4, out1], 1))  # (N, NC, H, W)
        return self.finalconv(torch.cat([out5, x], 1))  # (N, NC, H, W) logits


_NOTES = (
    "Course figure checked exactly at kernel 3, 32 filters, 24 colours, 1 input channel. "
    "Parameters: convolutions with bias plus BatchNorm weight and bias (running statistics are "
    "buffers, not parameters). Upsampling is nearest-neighbour, as nn.Upsample's default."
)


@register_model(
    "colour_cnn",
    description="colour_cnn.cnn",
    citation=COURSE,
    default_input=(1, 32, 32),
    exact_params=86_784,
    output_shapes=((24, 32, 32),),
    published={"params": PublishedFigure(86_784, note="the course's figure (issue 3)")},
    notes=_NOTES,
    argument_help=ARGUMENT_HELP,
)
def colour_cnn(
    kernel: int = 3, num_filters: int = 32, num_colours: int = 24, in_channels: int = 1
) -> ColourCNN:
    """Pool/upsample colourization CNN."""
    return ColourCNN(kernel, num_filters, num_colours, in_channels)


@register_model(
    "colour_unet",
    description="colour_unet.cnn",
    citation=COURSE,
    default_input=(1, 32, 32),
    exact_params=112_344,
    output_shapes=((24, 32, 32),),
    published={"params": PublishedFigure(112_344, note="the course's figure (issue 3)")},
    notes=_NOTES + " Skips concatenate along channels: block 4 reads cat([out3, out2]), block 5 "
    "cat([out4, out1]), the final conv cat([out5, input]).",
    argument_help=ARGUMENT_HELP,
)
def colour_unet(
    kernel: int = 3, num_filters: int = 32, num_colours: int = 24, in_channels: int = 1
) -> ColourUNet:
    """U-Net colourization CNN."""
    return ColourUNet(kernel, num_filters, num_colours, in_channels)
