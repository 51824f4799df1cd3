"""Small versions of the segmentation models for ``lab memory``'s tests, built from the
zoo's own parts so that they keep the structure the exactness is about: DeepLabv3 (the
zoo's ``DeepLabV3``, ``IntermediateLayerGetter``, ASPP head with ``classifier.4``, dilated
Bottleneck blocks) and the paper's valid U-Net (the zoo's ``UNet.forward``: unpadded
convolutions, cropped skips), both narrow enough to train a step in a blink."""

from __future__ import annotations

from torch import nn

from convlens.zoo.deeplab import DeepLabHead, DeepLabV3, IntermediateLayerGetter
from convlens.zoo.resnet import Bottleneck
from convlens.zoo.unet import UNet, double_conv


def _stage(inplanes: int, planes: int, stride: int, dilation: int) -> nn.Sequential:
    out = planes * Bottleneck.expansion
    downsample = nn.Sequential(
        nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
    )
    return nn.Sequential(Bottleneck(inplanes, planes, stride, downsample, dilation))


class _Backbone(nn.Module):
    """A ResNet's children in torchvision's names, output stride 8 (layer3, layer4 dilated)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(width, width, 1, 1)
        self.layer2 = _stage(4 * width, 2 * width, 2, 1)
        self.layer3 = _stage(8 * width, 2 * width, 1, 1)  # dilation 2 from its second block
        self.layer4 = _stage(8 * width, 4 * width, 1, 2)


def small_deeplabv3(width: int = 4, num_classes: int = 3) -> DeepLabV3:
    backbone = IntermediateLayerGetter(_Backbone(width), {"layer4": "out"})
    return DeepLabV3(backbone, DeepLabHead(16 * width, num_classes, (2, 4, 6)))


class NarrowUNet(UNet):
    """The paper's U-Net (its forward) with ``width`` channels in the first stage."""

    def __init__(self, width: int = 4, in_channels: int = 1, num_classes: int = 2) -> None:
        nn.Module.__init__(self)
        w = [width * 2**i for i in range(5)]
        self.enc1 = double_conv(in_channels, w[0], 0, False)
        self.enc2 = double_conv(w[0], w[1], 0, False)
        self.enc3 = double_conv(w[1], w[2], 0, False)
        self.enc4 = double_conv(w[2], w[3], 0, False)
        self.bottleneck = double_conv(w[3], w[4], 0, False)
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(0.0)
        for i in (4, 3, 2, 1):
            setattr(self, f"up{i}", nn.ConvTranspose2d(w[i], w[i - 1], 2, stride=2))
            setattr(self, f"dec{i}", double_conv(w[i], w[i - 1], 0, False))
        self.head = nn.Conv2d(w[0], num_classes, 1)


def narrow_unet(width: int = 4) -> NarrowUNet:
    return NarrowUNet(width)
