"""Attribution methods, written from their papers; captum is the oracle in the tests.

Shapes: ``x`` is (N, C, H, W) in [0, 1]; ``target`` is (N,) class numbers; the score of a
class is the model's output for it (the logit, before any softmax), as in captum. Each
method is registered once with how its per-channel attribution becomes one H×W map.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError


@dataclass(frozen=True)
class MethodOptions:
    """Settings of every method; each reads only its own."""

    layer: str | None = None  # Grad-CAM(++): the layer whose activations are weighted
    samples: int = 50  # SmoothGrad: noisy copies averaged
    sigma: float = 0.15  # SmoothGrad: noise std, 15 % of the [0, 1] input range (Smilkov 2017)
    steps: int = 50  # Integrated Gradients: Gauss–Legendre nodes on the path
    window: int | None = None  # Occlusion: square patch side (default: an eighth of H, ≥ 2)
    stride: int | None = None  # Occlusion: patch step (default: half the window)
    baseline: float = 0.0  # Integrated Gradients and Occlusion: the "absent" pixel (black)
    seed: int = 0  # SmoothGrad noise
    batch_size: int = 64  # images per forward pass


def class_scores(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) the score of each image's target class."""
    return model(x).gather(1, target[:, None])[:, 0]


def input_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) ∂score/∂x; images are independent in eval mode, so one sum serves all."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(class_scores(model, x, target).sum(), x)
    return grad


def in_batches(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    return torch.cat(
        [
            fn(x[i : i + batch_size], target[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
    )


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|∂score/∂x| (Simonyan et al. 2014), (N, C, H, W)."""
    return input_gradients(model, x, target).abs()


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    samples: int = 50,
    sigma: float = 0.15,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Mean saliency over ``samples`` copies of x + N(0, σ²) (Smilkov et al. 2017).

    The noise is drawn in one call, image-major ((N·samples, C, H, W), copies of one image
    adjacent), the layout captum's NoiseTunnel uses, so equal seeds give equal maps.
    """
    n = len(x)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.normal(0.0, sigma, (n * samples, *x.shape[1:]), generator=generator)
    noisy = x.repeat_interleave(samples, dim=0) + noise
    targets = target.repeat_interleave(samples)
    grads = in_batches(lambda a, t: saliency(model, a, t), noisy, targets, batch_size)
    return grads.view(n, samples, *x.shape[1:]).mean(dim=1)


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes α ∈ (0, 1) and weights of the Gauss–Legendre rule for ∫₀¹ (captum's default)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1.0 + nodes), 0.5 * weights


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    baseline: float = 0.0,
    steps: int = 50,
    batch_size: int = 64,
) -> torch.Tensor:
    """(x − x′) ⊙ ∫₀¹ ∂score/∂x at x′ + α(x − x′) dα (Sundararajan et al. 2017), (N, C, H, W).

    Completeness: the attributions sum to score(x) − score(x′) up to the quadrature error.
    """
    reference = torch.full_like(x, baseline)
    alphas, weights = gauss_legendre(steps)
    total = torch.zeros_like(x)
    per_chunk = max(1, batch_size // len(x))
    for start in range(0, steps, per_chunk):
        chunk = alphas[start : start + per_chunk]
        path = torch.cat([reference + float(a) * (x - reference) for a in chunk])  # step-major
        grads = input_gradients(model, path, target.repeat(len(chunk)))
        for k, grad in enumerate(grads.split(len(x))):
            total += float(weights[start + k]) * grad
    return (x - reference) * total


def occlusion_defaults(
    size: tuple[int, int], window: int | None, stride: int | None
) -> tuple[int, int]:
    window = window or max(2, min(size) // 8)
    return window, stride or max(1, window // 2)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """0, s, 2s, … up to ⌈(L − w)/s⌉·s: the last window is clipped at the edge (as captum)."""
    return [i * stride for i in range(math.ceil((length - window) / stride) + 1)]


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    window: int | None = None,
    stride: int | None = None,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Score drop when a square patch of every channel is set to the baseline (Zeiler &
    Fergus 2014), averaged over the patches covering each pixel, (N, H, W)."""
    n, _, height, width = x.shape
    window, stride = occlusion_defaults((height, width), window, stride)
    if window > min(height, width):
        raise ArgumentError(f"--window {window} is larger than the {height}×{width} input.")
    if stride > window:
        raise ArgumentError(
            f"--stride {stride} is larger than --window {window}: pixels between patches "
            "would never be occluded."
        )
    masks = []
    for top in window_starts(height, window, stride):
        for left in window_starts(width, window, stride):
            mask = torch.zeros(height, width)
            mask[top : top + window, left : left + window] = 1.0
            masks.append(mask)
    patches = torch.stack(masks)  # (P, H, W)
    with torch.no_grad():
        base = class_scores(model, x, target)  # (N,)
        total = torch.zeros(n, height, width)
        per_chunk = max(1, batch_size // n)
        for start in range(0, len(patches), per_chunk):
            m = patches[start : start + per_chunk]  # (p, H, W)
            occluded = x[:, None] * (1 - m[None, :, None]) + baseline * m[None, :, None]
            scores = class_scores(
                model, occluded.flatten(0, 1), target.repeat_interleave(len(m))
            ).view(n, len(m))
            total += torch.einsum("np,phw->nhw", base[:, None] - scores, m)
    return total / patches.sum(dim=0)


class _Captured:
    """The output a forward hook saw; reading it before the layer ran is bad input."""

    def __init__(self, name: str):
        self.name = name
        self.tensor: torch.Tensor | None = None

    @property
    def output(self) -> torch.Tensor:
        if self.tensor is None:
            raise ArgumentError(f"{self.name} is never run by the model's forward.")
        return self.tensor


@contextlib.contextmanager
def captured_output(layer: nn.Module, name: str = "--layer") -> Iterator[_Captured]:
    """Keep the layer's output; the network continues on a clone, so a following in-place
    operation (``ReLU(inplace=True)``) cannot overwrite the activations we weight. An output
    that needs no gradient (a layer before any parameter) is made to need one."""
    box = _Captured(name)

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ArgumentError(
                f"{name} outputs {getattr(output, 'shape', type(output).__name__)}, "
                "not N×C×H×W feature maps."
            )
        if torch.is_grad_enabled() and not output.requires_grad:
            output.requires_grad_(True)
        box.tensor = output
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def activations_and_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module, name: str = "--layer"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A and ∂score/∂A at ``layer``, both (N, K, h, w); zero where the score ignores A."""
    with captured_output(layer, name) as box:
        scores = class_scores(model, x, target)
    (grad,) = torch.autograd.grad(scores.sum(), box.output, allow_unused=True)
    activations = box.output.detach()
    return activations, torch.zeros_like(activations) if grad is None else grad


def gradcam(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module, name: str = "--layer"
) -> torch.Tensor:
    """ReLU(Σₖ αₖ Aₖ), αₖ = mean over positions of ∂score/∂Aₖ (Selvaraju et al. 2017), (N, h, w)."""
    a, g = activations_and_gradients(model, x, target, layer, name)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * a).sum(dim=1))


def gradcam_plus_plus(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module, name: str = "--layer"
) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with Y = exp(score)), (N, h, w).

    With gᵢⱼ = ∂score/∂Aᵢⱼ and a network piecewise linear after A, the derivatives of exp(S)
    are exp(S)·g, exp(S)·g², exp(S)·g³, so αᵢⱼ = g² / (2g² + Σₐᵦ Aₐᵦ g³) and
    wₖ = Σᵢⱼ αᵢⱼ ReLU(gᵢⱼ). The common factor exp(S) is dropped: the paper's map is exp(S)
    times this one (the same picture, and no overflow for large scores).
    """
    a, g = activations_and_gradients(model, x, target, layer, name)
    g2, g3 = g**2, g**3
    denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * a).sum(dim=1))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) → (N, H, W), bilinear, align_corners=False (captum's interpolate)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
