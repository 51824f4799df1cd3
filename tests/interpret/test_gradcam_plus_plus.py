"""Grad-CAM++ equals Chattopadhay et al. 2018, eq. 19, written out here independently.

The paper weights the activation maps Aᵏ of a layer for the class score Y = exp(S):

    αᵢⱼ = ∂²Y/∂Aᵢⱼ² / (2 ∂²Y/∂Aᵢⱼ² + Σₐᵦ Aₐᵦ ∂³Y/∂Aᵢⱼ³),   wₖ = Σᵢⱼ αᵢⱼ ReLU(∂Y/∂Aᵢⱼ),
    L = ReLU(Σₖ wₖ Aᵏ).

Here the three derivatives of Y are taken by autograd, element by element (no closed form),
on the network cut at the layer. convlens drops the common factor exp(S), so
L_paper = exp(S) · L_convlens.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convlens.interpret.methods import gradcam_plus_plus
from tests.interpret.models import tiny_cnn


def paper_gradcam_plus_plus(
    head: nn.Module, a: torch.Tensor, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, S) for one image: ``a`` (K, h, w) is the layer's output, ``head`` the rest."""
    a = a.detach().clone().requires_grad_(True)
    score = head(a[None])[0, target]
    y = torch.exp(score)
    (d1,) = torch.autograd.grad(y, a, create_graph=True)
    d2 = torch.zeros_like(a)
    d3 = torch.zeros_like(a)
    for index in range(a.numel()):  # the diagonal of the second and third derivative tensors
        e = torch.zeros(a.numel())
        e[index] = 1.0
        e = e.view_as(a)
        (second,) = torch.autograd.grad((d1 * e).sum(), a, create_graph=True)
        (third,) = torch.autograd.grad((second * e).sum(), a, retain_graph=True, allow_unused=True)
        d2.view(-1)[index] = second.view(-1)[index].detach()
        d3.view(-1)[index] = 0.0 if third is None else third.view(-1)[index].detach()
    total = a.detach().sum(dim=(1, 2), keepdim=True)  # Σₐᵦ Aₐᵦ per channel
    denominator = 2 * d2 + total * d3
    alpha = torch.where(denominator != 0, d2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * torch.relu(d1.detach())).sum(dim=(1, 2))  # (K,)
    cam = torch.relu((weights[:, None, None] * a.detach()).sum(dim=0))
    return cam, score.detach()


def head_after_features(model: nn.Module, index: int) -> nn.Module:
    """The part of ``TinyCNN`` after ``features[index]``."""
    rest = list(model.features)[index + 1 :]
    return nn.Sequential(*rest, model.pool, nn.Flatten(), model.head)


@settings(max_examples=6)
@given(st.integers(0, 500), st.integers(4, 6), st.sampled_from([0, 2]), st.integers(0, 3))
def test_gradcam_plus_plus_matches_the_paper(seed: int, size: int, index: int, target: int) -> None:
    model = tiny_cnn(seed % 5)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    layer = model.features[index]
    with torch.no_grad():
        a = layer(x) if index == 0 else model.features[: index + 1](x)
    paper, score = paper_gradcam_plus_plus(head_after_features(model, index), a[0], target)
    mine = gradcam_plus_plus(model, x, torch.tensor([target]), layer)[0]
    torch.testing.assert_close(mine * torch.exp(score), paper, rtol=1e-4, atol=1e-6)
    assert mine.shape == a.shape[-2:]
