"""The CIFAR nets of the gradient-flow lab: their blocks against He et al. 2016 §4.2 written
out independently, and their options (normalisation, initialisation, depths)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.gradflow import build_net
from convlens.zoo import create_model
from convlens.zoo.cifar_resnet import CifarResNet, check_depth


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_group_norm_has_the_batch_norm_parameters_under_the_same_names() -> None:
    batch = create_model("cifar_resnet20")
    group = create_model("cifar_resnet20", norm="group")
    assert [(k, p.shape) for k, p in batch.named_parameters()] == [
        (k, p.shape) for k, p in group.named_parameters()
    ]
    norms = [m for m in group.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 19 and all(m.num_groups == 8 for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in group.modules())


def test_no_normalisation_gives_convolutions_a_bias() -> None:
    """Parameters: the BatchNorm net's minus 2 per normalised channel plus 1 bias per
    convolution output channel (written out for n = 1: 7 convolutions)."""
    none = create_model("cifar_plain20", norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in none.modules())
    assert all(c.bias is not None and torch.count_nonzero(c.bias) == 0 for c in convs(none))
    model = CifarResNet(8, norm="none", normalize=False)
    weights = 3 * 9 * 16 + 2 * 9 * 16 * 16 + 9 * 16 * 32 + 9 * 32 * 32 + 9 * 32 * 64 + 9 * 64 * 64
    biases = 16 * 3 + 32 * 2 + 64 * 2
    assert sum(p.numel() for p in model.parameters()) == weights + biases + 64 * 10 + 10


@pytest.mark.parametrize(
    ("init", "std_of"),
    [
        ("kaiming", lambda c: math.sqrt(2 / (c.out_channels * 9))),  # fan-out, ReLU gain √2
        ("xavier", lambda c: math.sqrt(2 / ((c.in_channels + c.out_channels) * 9))),
        ("normal", lambda c: 0.05),
    ],
)
def test_initialisations_have_their_standard_deviation(init: str, std_of: object) -> None:
    torch.manual_seed(0)
    model = CifarResNet(20, init=init, init_std=0.05)
    for conv in convs(model):
        if conv.weight.numel() >= 4000:  # enough draws for a 10 % check
            measured = float(conv.weight.detach().std())
            assert measured == pytest.approx(std_of(conv), rel=0.1), (init, conv)  # type: ignore[operator]


def test_the_default_is_the_papers_kaiming_batchnorm_net() -> None:
    torch.manual_seed(5)
    default = CifarResNet(20)
    torch.manual_seed(5)
    explicit = CifarResNet(20, norm="batch", init="kaiming")
    pairs = zip(default.state_dict().values(), explicit.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_plain_net_and_its_residual_twin_start_from_the_same_weights() -> None:
    plain, residual = build_net("plain", 14, "batch", 7), build_net("residual", 14, "batch", 7)
    for (name, p), q in zip(
        plain.state_dict().items(), residual.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    ("depth", "nearest"),
    [(21, "20 and 26"), (5, "8"), (0, "8"), (57, "56 and 62"), (9, "8 and 14")],
)
def test_bad_depths_name_the_nearest_valid_ones(depth: int, nearest: str) -> None:
    with pytest.raises(ValueError, match=r"6n \+ 2 \(e\.g\. 8, 14, 20, 32, 44, 56, 110\)") as err:
        check_depth(depth)
    assert f"got {depth}; the nearest valid depths are {nearest}" in str(err.value)


def test_valid_depths_give_n() -> None:
    assert [check_depth(d) for d in (8, 14, 20, 56, 110)] == [1, 2, 3, 9, 18]


def test_bad_options_through_the_zoo() -> None:
    with pytest.raises(ArgumentError, match="norm must be one of batch, group, none, got 'layer'"):
        create_model("cifar_resnet20", norm="layer")
    with pytest.raises(ArgumentError, match="init must be one of kaiming, xavier, normal"):
        create_model("cifar_plain56", init="orthogonal")
    with pytest.raises(ArgumentError, match="init_std must be positive"):
        create_model("cifar_plain56", init="normal", init_std=0.0)


# -----------------------------------------------------------------------------
# the nets against He et al. 2016 §4.2 written out as functions, independently of the zoo


def reference_logits(model: CifarResNet, x: torch.Tensor, residual: bool) -> torch.Tensor:
    """§4.2 from the paper's text: conv–BN–ReLU stem; per block conv–BN–ReLU–conv–BN, the
    block's input added (option A where the width doubles: every other pixel, zero
    channels appended) *before* the last ReLU; the first block of stages 2 and 3 strides
    by 2; global average pooling, fc. Reads the model's tensors by name only, so a wrong
    order, a missing BN, a misplaced stride or a wrong shortcut in the zoo shows."""
    p = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    def conv_bn(h: torch.Tensor, name: str, bn: str, stride: int = 1) -> torch.Tensor:
        h = F.conv2d(h, p[f"{name}.weight"], stride=stride, padding=1)
        mean, var = buffers[f"{bn}.running_mean"].clone(), buffers[f"{bn}.running_var"].clone()
        return F.batch_norm(h, mean, var, p[f"{bn}.weight"], p[f"{bn}.bias"], model.training)

    h = (x - buffers["normalize.mean"]) / buffers["normalize.std"]
    h = F.relu(conv_bn(h, "conv1", "bn1"))
    for stage, blocks in enumerate((model.layer1, model.layer2, model.layer3), start=1):
        for i in range(len(blocks)):
            name = f"layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            out = F.relu(conv_bn(h, f"{name}.conv1", f"{name}.bn1", stride))
            out = conv_bn(out, f"{name}.conv2", f"{name}.bn2")
            if residual:
                shortcut = h[:, :, ::stride, ::stride]
                zeros = out.shape[1] - shortcut.shape[1]
                out = out + F.pad(shortcut, (0, 0, 0, 0, 0, zeros))  # zero channels after
            h = F.relu(out)
    return F.linear(h.mean(dim=(2, 3)), p["fc.weight"], p["fc.bias"])


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_the_nets_compute_he_et_al_s_blocks(residual: bool, training: bool) -> None:
    """Logits and every parameter's gradient equal the paper's net written out above, in
    training mode (batch statistics) and in evaluation mode (running statistics, made
    non-trivial first), for the 14-layer nets (two blocks per stage, both kinds of
    shortcut)."""
    torch.manual_seed(3)
    model = CifarResNet(14, residual).double()
    with torch.no_grad():  # running statistics and BN affine parameters away from 0 and 1
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    model.train(training)
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    labels = torch.arange(6) % 10
    params = list(model.parameters())
    expected = reference_logits(model, x, residual)
    got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(F.cross_entropy(got, labels), params)
    reference_grads = torch.autograd.grad(F.cross_entropy(expected, labels), params)
    for (name, _), g, r in zip(model.named_parameters(), grads, reference_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-12, msg=name)
