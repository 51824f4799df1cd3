"""The CIFAR-10 networks of He et al. 2016 §4.2 (ResNet-20/32/44/56/110, their plain twins),
and ResNet-9 of the DAWNBench entry (Page 2018), the classification lab's default.

§4.2: a 3×3 convolution with 16 filters on the 32 × 32 input, then three stages of 2n
3×3 convolutions with 16, 32 and 64 filters on 32 × 32, 16 × 16 and 8 × 8 maps
(the first convolution of stages 2 and 3 has stride 2), global average pooling and a
10-way fully connected layer: 6n + 2 weighted layers. Every convolution is followed by
BatchNorm. The residual nets add the block's input after each pair of convolutions;
where the width doubles the shortcut is **option A**: the input sub-sampled by 2 and
padded with zero channels, parameter-free, as the paper uses on CIFAR-10. So a ResNet and
its plain twin have the same parameters:

=====  ===  ==========  =========
depth   n   parameters  published
=====  ===  ==========  =========
20      3      269,722     0.27 M
32      5      464,154     0.46 M
44      7      658,586     0.66 M
56      9      853,018     0.85 M
110    18    1,727,962      1.7 M
=====  ===  ==========  =========

Two options serve the gradient-flow lab and leave the defaults as the paper has them:
``norm`` — ``batch`` (BatchNorm, the paper), ``group`` (GroupNorm with 8 groups, Wu & He
2018) or ``none`` (the convolutions then get a bias, zero at the start) — and ``init`` —
``kaiming`` (He et al. 2015, fan-out, the paper), ``xavier`` (Glorot & Bengio 2010) or
``normal`` (N(0, ``init_std``²)) — which sets the convolutions' weights; the classifier
keeps PyTorch's default. Whatever the normalisation, its modules keep the names ``bn1``,
``bn2`` (an ``nn.Identity`` for ``none``), so state dicts line up across options.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convlens.zoo.registry import Citation, PublishedFigure, register_model

HE_2016 = Citation(
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun",
    title="Deep Residual Learning for Image Recognition",
    venue="CVPR",
    year=2016,
)
PAGE_2018 = Citation(
    authors="David Page",
    title="How to Train Your ResNet (DAWNBench CIFAR-10 entry, myrtle.ai)",
    venue="myrtle.ai blog",
    year=2018,
)

# ImageNet-style per-channel statistics of CIFAR-10's 50,000 training images (RGB in [0, 1]):
# the models take plain images and normalise inside, so every tool feeds them pixels.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

ARGUMENT_HELP = {
    "num_classes": "outputs of the final fully connected layer",
    "normalize": "subtract CIFAR-10's channel means and divide by its standard deviations "
    "first, so the model takes images in [0, 1]",
}
NORMS = ("batch", "group", "none")
INITS = ("kaiming", "xavier", "normal")
GROUPS = 8  # GroupNorm groups: divides 16, 32 and 64; Wu & He 2018 Table 3 find 8–32 alike
NET_HELP = {
    **ARGUMENT_HELP,
    "norm": "normalisation after each convolution: batch (the paper), group (GroupNorm, "
    f"{GROUPS} groups) or none (convolutions with bias)",
    "init": "initialisation of the convolutions: kaiming (fan-out, the paper), xavier or "
    "normal (N(0, init_std²))",
    "init_std": "standard deviation of init=normal",
}


class Normalize(nn.Module):
    """(x − mean) / std per channel; buffers, so they travel with the ``state_dict``."""

    mean: torch.Tensor  # buffers (register_buffer), typed for the checker
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def normalization(norm: str, channels: int) -> nn.Module:
    """The layer after a convolution: BatchNorm, GroupNorm or nothing."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(GROUPS, channels)
    return nn.Identity()


def _conv_bn(
    in_channels: int, out_channels: int, stride: int = 1, norm: str = "batch"
) -> list[nn.Module]:
    # a bias only without normalisation: BN and GN subtract the mean, which would cancel it
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=norm == "none"),
        normalization(norm, out_channels),
    ]


def init_convolutions(model: nn.Module, init: str, std: float) -> None:
    """Set every convolution's weights (biases to zero), in module order."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if init == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def check_depth(depth: int) -> int:
    """n of a depth 6n + 2 (n ≥ 1); otherwise a ValueError that names the nearest valid ones."""
    if depth >= 8 and (depth - 2) % 6 == 0:
        return (depth - 2) // 6
    valid = ", ".join(str(6 * n + 2) for n in (1, 2, 3, 5, 7, 9, 18))
    below = 6 * max(1, (depth - 2) // 6) + 2
    nearest = f"{below} and {below + 6}" if below < depth else str(below)
    raise ValueError(
        f"depth must be 6n + 2 (e.g. {valid}), got {depth}; the nearest valid depths are {nearest}"
    )


def check_options(norm: str, init: str, init_std: float) -> None:
    for name, value, allowed in (("norm", norm, NORMS), ("init", init, INITS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if not init_std > 0:
        raise ValueError(f"init_std must be positive, got {init_std}")


class ShortcutA(nn.Module):
    """Option A where the width doubles: keep every other pixel, append as many zero channels.

    (N, C, H, W) → (N, 2C, ⌈H/2⌉, ⌈W/2⌉); the input channels first, then C zeros (the
    paper does not say where the zeros go; either way nothing is learned). Written as a
    1×1 pooling of stride 2 and ``x · 0`` so convlens's tracer counts it exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=1, stride=2)  # x[:, :, ::2, ::2]
        return torch.cat((x, x * 0), dim=1)


class CifarBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN (+ shortcut) → ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, residual: bool, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, out_channels, stride, norm)
        self.conv2, self.bn2 = _conv_bn(out_channels, out_channels, norm=norm)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.shortcut: nn.Module = (
            ShortcutA()
            if residual and (stride != 1 or in_channels != out_channels)
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)


class CifarResNet(nn.Module):
    """6n + 2 layers; ``residual=False`` gives the plain net of the same depth."""

    def __init__(
        self,
        depth: int,
        residual: bool = True,
        num_classes: int = 10,
        normalize: bool = True,
        norm: str = "batch",
        init: str = "kaiming",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        n = check_depth(depth)
        check_options(norm, init, init_std)
        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD) if normalize else nn.Identity()
        self.conv1, self.bn1 = _conv_bn(3, 16, norm=norm)
        self.relu = nn.ReLU(inplace=True)
        stages, channels = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [
                CifarBlock(
                    channels if i == 0 else width, width, stride if i == 0 else 1, residual, norm
                )
                for i in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        init_convolutions(self, init, init_std)  # kaiming: He et al. 2015, as the paper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))  # (N, 16, 32, 32)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 64, 8, 8)
        return self.fc(torch.flatten(self.pool(x), 1))  # (N, num_classes)


def _register_depth(depth: int, params: int, published: float, residual: bool) -> None:
    kind = "ResNet" if residual else "plain net"
    name = f"cifar_{'resnet' if residual else 'plain'}{depth}"

    def factory(
        num_classes: int = 10,
        normalize: bool = True,
        norm: str = "batch",
        init: str = "kaiming",
        init_std: float = 0.01,
    ) -> nn.Module:
        return CifarResNet(depth, residual, num_classes, normalize, norm, init, init_std)

    factory.__doc__ = f"The {depth}-layer CIFAR-10 {kind} of He et al. 2016 §4.2."
    factory.__name__ = name
    figure = PublishedFigure(
        published * 1e6,
        rel_tolerance=0.05 / published,  # rounded to the 0.01 M (1.7 M: 0.1 M) shown
        note="§4.2 and Table 6 round to two digits",
        arguments={"normalize": False},
    )
    register_model(
        name,
        citation=HE_2016,
        default_input=(3, 32, 32),
        exact_params=params,
        output_shapes=((10,),),
        published={"params": figure} if residual else {},
        notes=f"{depth} = 6·{(depth - 2) // 6} + 2 weighted layers, widths 16/32/64 on "
        f"32/16/8-pixel maps; "
        + (
            "option-A shortcuts (stride-2 subsampling, zero-padded channels, no parameters)"
            if residual
            else "no shortcuts: the plain twin of the ResNet of the same depth, same parameters"
        )
        + "; takes RGB in [0, 1] and normalises with CIFAR-10's channel statistics inside.",
        argument_help=NET_HELP,
    )(factory)


# depth → (exact parameters, figure published in §4.2 / Table 6 in millions)
DEPTHS = {20: (269_722, 0.27), 32: (464_154, 0.46), 44: (658_586, 0.66), 56: (853_018, 0.85)}
DEPTHS[110] = (1_727_962, 1.7)
for _depth, (_params, _published) in DEPTHS.items():
    _register_depth(_depth, _params, _published, residual=True)
    _register_depth(_depth, _params, _published, residual=False)


class ResNet9(nn.Module):
    """DAWNBench ResNet-9: prep → (conv-BN-ReLU, max-pool, residual) ×3 stages, widths
    w, 2w, 4w, 8w; the logits scaled by 1/8 as Page does (a fixed temperature)."""

    def __init__(self, width: int = 64, num_classes: int = 10, normalize: bool = True) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")

        def conv(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(*_conv_bn(c_in, c_out), nn.ReLU(inplace=True))

        def residual(c: int) -> nn.Sequential:
            return nn.Sequential(conv(c, c), conv(c, c))

        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD) if normalize else nn.Identity()
        self.prep = conv(3, width)  # (N, w, 32, 32)
        self.layer1 = nn.Sequential(conv(width, 2 * width), nn.MaxPool2d(2))  # 16 × 16
        self.res1 = residual(2 * width)
        self.layer2 = nn.Sequential(conv(2 * width, 4 * width), nn.MaxPool2d(2))  # 8 × 8
        self.layer3 = nn.Sequential(conv(4 * width, 8 * width), nn.MaxPool2d(2))  # 4 × 4
        self.res3 = residual(8 * width)
        self.pool = nn.MaxPool2d(4)  # 4 × 4 → 1 × 1, as Page (32 × 32 inputs)
        self.fc = nn.Linear(8 * width, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.prep(self.normalize(x)))
        x = x + self.res1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = x + self.res3(x)
        return self.fc(torch.flatten(self.pool(x), 1)) * 0.125  # (N, num_classes)


@register_model(
    "cifar_resnet9",
    citation=PAGE_2018,
    default_input=(3, 32, 32),
    exact_params=6_573_120,
    output_shapes=((10,),),
    notes="DAWNBench CIFAR-10 ResNet-9 (94 % in 79 s on a V100); the classification lab "
    "trains it at width 32 (a quarter of the multiply-adds) by default. Takes RGB in [0, 1].",
    argument_help={
        **ARGUMENT_HELP,
        "width": "channels of the prep layer (w); stages have 2w, 4w and 8w",
    },
)
def cifar_resnet9(width: int = 64, num_classes: int = 10, normalize: bool = True) -> nn.Module:
    """ResNet-9 as in Page's "How to Train Your ResNet" (DAWNBench)."""
    return ResNet9(width, num_classes, normalize)
