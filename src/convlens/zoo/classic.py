"""LeNet-5 (LeCun et al. 1998), AlexNet (Krizhevsky et al. 2012), VGG (Simonyan & Zisserman 2015).

AlexNet and VGG follow ``torchvision.models`` attribute for attribute
(``features``, ``avgpool``, ``classifier``) so their ``state_dict`` keys match.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convlens.zoo.registry import Citation, PublishedFigure, Quantity, register_model

LECUN_1998 = Citation(
    authors="Yann LeCun, Léon Bottou, Yoshua Bengio and Patrick Haffner",
    title="Gradient-Based Learning Applied to Document Recognition",
    venue="Proceedings of the IEEE 86(11)",
    year=1998,
)
KRIZHEVSKY_2012 = Citation(
    authors="Alex Krizhevsky, Ilya Sutskever and Geoffrey E. Hinton",
    title="ImageNet Classification with Deep Convolutional Neural Networks",
    venue="NeurIPS",
    year=2012,
)
SIMONYAN_2015 = Citation(
    authors="Karen Simonyan and Andrew Zisserman",
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    venue="ICLR",
    year=2015,
)

# ----------------------------------------------------------------------------- LeNet-5

# Table I of the paper: which S2 maps (rows 0–5) feed each C3 map (columns 0–15).
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A·tanh(S·a), A = 1.7159, S = 2/3 (Appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2 / S4: the sum of each 2×2 block times a trainable coefficient plus a trainable bias.

    Two parameters per map: 6 maps → 12 (S2), 16 maps → 32 (S4).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(x, 2) * 4  # (N, C, H/2, W/2): sum of each 2×2 block
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution in which output map j reads only the input maps ``table[j]``.

    Only the connected kernels are parameters — Σ_j |table[j]|·k² weights plus one
    bias per output map (C3: 60·25 + 16 = 1,516) — scattered into a dense
    (C_out, C_in, k, k) kernel with zeros elsewhere, so the forward is one conv.
    """

    out_index: torch.Tensor  # buffers (register_buffer), typed for the checker
    in_index: torch.Tensor

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = kernel_size
        pairs = [(j, i) for j, inputs in enumerate(table) for i in inputs]
        self.register_buffer("out_index", torch.tensor([j for j, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)
        bound = 1.0 / (kernel_size * kernel_size * 4) ** 0.5
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """The output layer: y_i = Σ_j (x_j − w_ij)², with fixed ±1 prototypes (not trained).

    The paper drew the 84 = 7×12 prototype components from stylised bitmaps of
    the characters; those bitmaps are not published in usable form, so the
    rebuild uses a fixed ±1 Walsh code (a buffer, not a parameter).
    Lower output = more likely class; use ``-output`` as logits.
    """

    prototypes: torch.Tensor  # a buffer (register_buffer), typed for the checker

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        # Walsh functions: w_ij = (−1)^popcount((i + 1) AND j), rows 1…classes of the
        # 128-point Walsh–Hadamard basis cut to the first 84 components (about half differ).
        codes = [
            [-1.0 if bin((i + 1) & j).count("1") % 2 else 1.0 for j in range(in_features)]
            for i in range(num_classes)
        ]
        self.register_buffer("prototypes", torch.tensor(codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.prototypes.unsqueeze(0)  # (N, classes, 84)
        return (diff * diff).sum(-1)  # (N, classes)


class LeNet5(nn.Module):
    """LeNet-5: 32×32 input, C1–S2–C3–S4–C5–F6–output (the paper's Fig. 2)."""

    def __init__(
        self, num_classes: int = 10, connection_table: bool = True, rbf_output: bool = True
    ) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 6·(25 + 1) = 156
        self.s2 = Subsampling(6)  # 12
        if connection_table:
            self.c3: nn.Module = PartialConv2d(6, LENET5_C3_TABLE, 5)  # 1,516
        else:
            self.c3 = nn.Conv2d(6, 16, kernel_size=5)  # 16·(6·25 + 1) = 2,416
        self.s4 = Subsampling(16)  # 32
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # 120·(16·25 + 1) = 48,120
        self.f6 = nn.Linear(120, 84)  # 84·(120 + 1) = 10,164
        self.act = ScaledTanh()
        self.output: nn.Module = (
            EuclideanRBF(84, num_classes) if rbf_output else nn.Linear(84, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.c1(x))  # (N, 6, 28, 28)
        x = self.act(self.s2(x))  # (N, 6, 14, 14)
        x = self.act(self.c3(x))  # (N, 16, 10, 10)
        x = self.act(self.s4(x))  # (N, 16, 5, 5)
        x = self.act(self.c5(x))  # (N, 120, 1, 1)
        x = self.act(self.f6(torch.flatten(x, 1)))  # (N, 84)
        return self.output(x)  # (N, num_classes)


@register_model(
    "lenet5",
    citation=LECUN_1998,
    default_input=(1, 32, 32),
    exact_params=60_000,
    output_shapes=((10,),),
    published={
        "params": PublishedFigure(
            60_000, note="the paper's total of about 60,000 trainable parameters"
        ),
        "c1_params": PublishedFigure(156, Quantity.MODULE_PARAMS, module="c1"),
        "c3_params": PublishedFigure(1_516, Quantity.MODULE_PARAMS, module="c3"),
        "c5_params": PublishedFigure(48_120, Quantity.MODULE_PARAMS, module="c5"),
        "f6_params": PublishedFigure(10_164, Quantity.MODULE_PARAMS, module="f6"),
    },
    notes="Faithful to the paper: trainable 2×2 subsampling (a coefficient and a bias per map), "
    "C3 with Table I's partial connections (1,516 parameters; connection_table=False gives a "
    "full 6→16 convolution with 2,416), scaled tanh 1.7159·tanh(2a/3), and a Euclidean RBF "
    "output with fixed ±1 prototypes (a buffer, so the 60,000 trainable parameters are "
    "156 + 12 + 1,516 + 32 + 48,120 + 10,164). The prototypes are a ±1 Walsh code, not the "
    "paper's character bitmaps; rbf_output=False uses a learned Linear(84, classes) (+850).",
    argument_help={
        "num_classes": "output units (10 digits in the paper)",
        "connection_table": "C3 reads the S2 maps listed in the paper's Table I (else all six)",
        "rbf_output": "Euclidean RBF output with fixed prototypes (else a learned linear layer)",
    },
    small_input=(1, 32, 32),
)
def lenet5(num_classes: int = 10, connection_table: bool = True, rbf_output: bool = True) -> LeNet5:
    """LeNet-5 as in the paper."""
    return LeNet5(num_classes, connection_table, rbf_output)


# ----------------------------------------------------------------------------- AlexNet


class AlexNet(nn.Module):
    """torchvision's AlexNet: the single-GPU variant of "One weird trick" (64-192-384-256-256)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )  # (N, 256, 6, 6) at 224²
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "alexnet",
    description="alexnet.cnn",
    citation=KRIZHEVSKY_2012,
    default_input=(3, 224, 224),
    exact_params=61_100_840,
    output_shapes=((1000,),),
    published={
        "params": PublishedFigure(61_100_840, note="torchvision's count"),
        "paper_params": PublishedFigure(
            60_000_000, rel_tolerance=0.02, note="the paper: '60 million parameters'"
        ),
    },
    notes="torchvision's single-tower AlexNet (Krizhevsky 2014, 'One weird trick'): 64/192/384/"
    "256/256 filters, no local response normalisation, no grouped convolutions. The 2012 paper's "
    "two-GPU network (96/256/384/384/256, grouped layers 2, 4, 5) has about 60 M parameters; "
    "this rebuild has 61,100,840, within 2 % of the paper's round figure.",
    argument_help={"num_classes": "outputs of the last linear layer", "dropout": "dropout p"},
    small_input=(3, 64, 64),
)
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet, torchvision's layout."""
    return AlexNet(num_classes, dropout)


# ----------------------------------------------------------------------------- VGG

VGG_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip


class VGG(nn.Module):
    def __init__(
        self,
        config: list[int | str],
        num_classes: int = 1000,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(v, int)
                layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                in_channels = v
        self.features = nn.Sequential(*layers)  # (N, 512, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _vgg_entry(name: str, config: str, params: int, paper_millions: int, depth: int) -> None:
    @register_model(
        name,
        description=f"{name}.cnn",
        citation=SIMONYAN_2015,
        default_input=(3, 224, 224),
        exact_params=params,
        output_shapes=((1000,),),
        published={
            "params": PublishedFigure(params, note="torchvision's count"),
            "paper_params": PublishedFigure(
                paper_millions * 1_000_000,
                rel_tolerance=0.005,
                note=f"Table 2: {paper_millions} M, rounded to the million",
            ),
        },
        notes=f"Configuration {config} of the paper's Table 1 in torchvision's layout (an "
        "AdaptiveAvgPool2d(7×7) before the classifier, a no-op at 224²). batch_norm=True adds "
        "BatchNorm2d after every convolution (torchvision's *_bn variants, not in the paper).",
        argument_help={
            "num_classes": "outputs of the last linear layer",
            "batch_norm": "BatchNorm2d after every convolution (torchvision's _bn variants)",
            "dropout": "dropout p in the classifier",
        },
        small_input=(3, 32, 32),
    )
    def factory(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5) -> VGG:
        return VGG(VGG_CONFIGS[config], num_classes, batch_norm, dropout)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"VGG-{depth} (configuration {config})."
    globals()[name] = factory


_vgg_entry("vgg11", "A", 132_863_336, 133, 11)
_vgg_entry("vgg16", "D", 138_357_544, 138, 16)
_vgg_entry("vgg19", "E", 143_667_240, 144, 19)
