"""Each attribution method equals captum's implementation on the same model and input.

captum is the oracle (a test-only dependency); the maps come from convlens's own code.
Models are tiny, inputs 6×6 to 16×16, over Hypothesis-drawn sizes, seeds and targets.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import (
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.errors import ArgumentError
from convlens.interpret import methods as m
from convlens.interpret.maps import compute_maps
from tests.interpret.models import branchy, tiny_cnn


def close(mine: torch.Tensor, oracle: torch.Tensor) -> None:
    """Float tolerance relative to the map's scale (attributions here are ~1e-2)."""
    oracle = oracle.detach()
    scale = float(oracle.abs().max()) or 1.0
    assert mine.shape == oracle.shape
    torch.testing.assert_close(mine, oracle, rtol=1e-4, atol=1e-5 * scale)


@st.composite
def problems(draw: st.DrawFn) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    seed = draw(st.integers(0, 10_000))
    n = draw(st.integers(1, 3))
    height, width = draw(st.integers(6, 16)), draw(st.integers(6, 16))
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, height, width, generator=generator)
    target = torch.randint(0, 4, (n,), generator=generator)
    return tiny_cnn(seed % 7), x, target


@settings(max_examples=25)
@given(problems())
def test_saliency(problem: tuple) -> None:
    model, x, target = problem
    close(
        m.saliency(model, x, target), Saliency(model).attribute(x.requires_grad_(), target=target)
    )


@settings(max_examples=15)
@given(problems(), st.integers(1, 9), st.sampled_from([0.05, 0.15, 0.3]), st.integers(0, 99))
def test_smoothgrad(problem: tuple, samples: int, sigma: float, seed: int) -> None:
    model, x, target = problem
    torch.manual_seed(seed)  # captum draws from the global generator
    oracle = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=samples, stdevs=sigma, target=target
    )
    mine = m.smoothgrad(model, x, target, samples, sigma, seed, batch_size=5)
    close(mine, oracle)


@settings(max_examples=15)
@given(problems(), st.integers(2, 40), st.sampled_from([0.0, 0.5]))
def test_integrated_gradients(problem: tuple, steps: int, baseline: float) -> None:
    model, x, target = problem
    oracle = IntegratedGradients(model).attribute(
        x, baselines=baseline, target=target, n_steps=steps
    )
    mine = m.integrated_gradients(model, x, target, baseline, steps, batch_size=7)
    close(mine, oracle)


@settings(max_examples=10)
@given(problems(), st.integers(2, 5), st.integers(1, 5), st.sampled_from([0.0, 0.5]))
def test_occlusion(problem: tuple, window: int, stride: int, baseline: float) -> None:
    model, x, target = problem
    stride = min(stride, window)  # captum refuses a stride above the window; so does convlens
    oracle = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=baseline,
        target=target,
    )
    # The patch covers all channels, so captum's three channels are equal: one map per image.
    close(oracle[:, 1], oracle[:, 0])
    mine = m.occlusion(model, x, target, window, stride, baseline, batch_size=9)
    close(mine, oracle[:, 0])


@settings(max_examples=20)
@given(problems(), st.sampled_from([0, 2]))
def test_gradcam_upsampled(problem: tuple, layer_index: int) -> None:
    model, x, target = problem
    layer = model.features[layer_index]
    size = tuple(x.shape[-2:])
    oracle = LayerAttribution.interpolate(
        LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True),
        size,
        interpolate_mode="bilinear",
    )[:, 0]
    close(m.upsample(m.gradcam(model, x, target, layer), size), oracle)
    name = f"features.{layer_index}"
    registered = compute_maps(model, x, target, "gradcam", m.MethodOptions(layer=name))
    close(registered, oracle)


def test_registered_maps_reduce_channels_as_documented() -> None:
    model = tiny_cnn(1)
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([1, 3])
    options = m.MethodOptions(samples=4, steps=8, window=3, stride=2)
    saliency = Saliency(model).attribute(x.clone().requires_grad_(), target=target)
    close(compute_maps(model, x, target, "saliency", options), saliency.amax(dim=1))
    ig = IntegratedGradients(model).attribute(x, target=target, n_steps=8)
    close(compute_maps(model, x, target, "integrated-gradients", options), ig.sum(dim=1))
    torch.manual_seed(options.seed)
    smooth = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=4, stdevs=0.15, target=target
    )
    close(compute_maps(model, x, target, "smoothgrad", options), smooth.amax(dim=1))


def test_gradcam_is_unchanged_by_an_inplace_relu_after_the_layer() -> None:
    """The captured activations are the layer's output, not what ReLU(inplace) makes of it."""
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2])
    plain, inplace = tiny_cnn(3), tiny_cnn(3, inplace=True)
    for method in (m.gradcam, m.gradcam_plus_plus):
        expected = method(plain, x, target, plain.features[0])
        close(method(inplace, x, target, inplace.features[0]), expected)


def test_integrated_gradients_completeness() -> None:
    """Σ attributions = score(x) − score(baseline) (Sundararajan et al.'s axiom), to quadrature
    error; independent of captum."""
    model = tiny_cnn(5)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    target = torch.tensor([0, 1, 2])
    attributions = m.integrated_gradients(model, x, target, steps=256, batch_size=256)
    with torch.no_grad():
        gap = m.class_scores(model, x, target) - m.class_scores(model, torch.zeros_like(x), target)
    torch.testing.assert_close(attributions.sum(dim=(1, 2, 3)), gap, rtol=2e-3, atol=1e-5)


def test_gradcam_on_a_layer_before_any_parameter() -> None:
    """The pooled input needs no gradient by itself; the map is still Grad-CAM's, checked
    here by feeding the pooled tensor (as a leaf) through the rest of the network."""
    model = branchy()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 2])
    a = model.pool(x).requires_grad_(True)
    scores = model.head(torch.relu(model.conv(a)).mean(dim=(2, 3))).gather(1, target[:, None])
    (g,) = torch.autograd.grad(scores.sum(), a)
    expected = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a.detach()).sum(dim=1))
    close(m.gradcam(model, x, target, model.pool), expected)


def test_a_layer_the_forward_never_runs() -> None:
    model = branchy()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ArgumentError, match="--layer unused is never run"):
        compute_maps(model, x, torch.tensor([0]), "gradcam", m.MethodOptions(layer="unused"))
