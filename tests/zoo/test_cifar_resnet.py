"""The CIFAR-10 ResNets and plain nets of He et al. 2016 §4.2, and ResNet-9."""

from __future__ import annotations

import pytest
import torch

from convlens.errors import ArgumentError
from convlens.zoo import create_model
from convlens.zoo.cifar_resnet import CIFAR10_MEAN, CIFAR10_STD, ShortcutA


def cifar_params(n: int) -> int:
    """6n + 2 layers, option A: the count written out layer by layer (BN: 2 per channel)."""
    stem = 3 * 3 * 3 * 16 + 2 * 16
    stage1 = 2 * n * (3 * 3 * 16 * 16 + 2 * 16)
    stage2 = (3 * 3 * 16 * 32 + 2 * 32) + (2 * n - 1) * (3 * 3 * 32 * 32 + 2 * 32)
    stage3 = (3 * 3 * 32 * 64 + 2 * 64) + (2 * n - 1) * (3 * 3 * 64 * 64 + 2 * 64)
    return stem + stage1 + stage2 + stage3 + 64 * 10 + 10


@pytest.mark.parametrize(
    ("depth", "published"),
    [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)],
)
def test_parameters_as_published(depth: int, published: float) -> None:
    """§4.2 / Table 6: 0.27 M, 0.46 M, 0.66 M, 0.85 M, 1.7 M; the plain twin has as many."""
    n = (depth - 2) // 6
    for kind in ("resnet", "plain"):
        model = create_model(f"cifar_{kind}{depth}")
        count = sum(p.numel() for p in model.parameters())
        assert count == cifar_params(n)
        digits = 1 if depth == 110 else 2
        assert round(count / 1e6, digits) == published / 1e6
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == depth  # 6n + 1 convolutions and one fully connected layer


def test_resnet20_count_is_269722() -> None:
    assert cifar_params(3) == 269_722
    assert sum(p.numel() for p in create_model("cifar_resnet9").parameters()) == 6_573_120


def test_option_a_shortcut_subsamples_and_pads_zeros() -> None:
    x = torch.randn(2, 16, 32, 32)
    y = ShortcutA()(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_plain_net_has_no_shortcut() -> None:
    """With equal weights the ResNet and its plain twin differ only by the additions."""
    torch.manual_seed(0)
    resnet = create_model("cifar_resnet20").eval()
    plain = create_model("cifar_plain20").eval()
    plain.load_state_dict(resnet.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(resnet(x), plain(x))
    for block in (*resnet.layer1, *resnet.layer2):
        block.residual = False
    for block in resnet.layer3:
        block.residual = False
    assert torch.equal(resnet(x), plain(x))


def test_normalisation_is_inside_the_model() -> None:
    torch.manual_seed(0)
    inside = create_model("cifar_resnet20").eval()
    outside = create_model("cifar_resnet20", normalize=False).eval()
    outside.load_state_dict({k: v for k, v in inside.state_dict().items() if "normalize" not in k})
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(inside(x), outside((x - mean) / std))


def test_depth_not_6n_plus_2_is_refused() -> None:
    from convlens.zoo.cifar_resnet import CifarResNet

    with pytest.raises(ValueError, match=r"6n \+ 2 \(e\.g\. 8, 14, 20"):
        CifarResNet(21)
    with pytest.raises(ArgumentError, match="width must be at least 1"):
        create_model("cifar_resnet9", width=0)
