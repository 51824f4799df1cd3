"""Deletion and insertion curves (Petsiuk et al. 2018, RISE, §4.1).

Deletion removes pixels, most important first, by setting them to black; a faithful map makes
the class probability fall fast (a low area under the curve is good). Insertion starts from a
blurred copy and puts the original pixels back in the same order; a faithful map makes the
probability rise fast (a high area is good). Each method is compared with a random order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convlens.interpret.images import gaussian_blur
from convlens.interpret.maps import image_maps, predict
from convlens.interpret.methods import MethodOptions
from convlens.interpret.progress import Progress, silent

RANDOM = "random"


def pixel_order(saliency: np.ndarray, tie_breaker: np.ndarray) -> np.ndarray:
    """Flat pixel indices, highest saliency first; equal values in ``tie_breaker``'s order.

    Random tie-breaking keeps flat regions (Grad-CAM's zeros) from being removed in raster
    order, and a constant map gives a random order.
    """
    return np.lexsort((tie_breaker.ravel(), -saliency.ravel().astype(np.float64)))


def transition_curve(
    model: nn.Module,
    start: torch.Tensor,
    finish: torch.Tensor,
    order: np.ndarray,
    target: int,
    step: int,
    batch_size: int = 256,
) -> np.ndarray:
    """P(target) on canvases where the first t·step pixels of ``order`` come from ``finish``
    and the rest from ``start`` (both (3, H, W)), for t = 0 … ⌈HW / step⌉."""
    height, width = start.shape[-2:]
    count = height * width
    rank = torch.empty(count, dtype=torch.long)
    rank[torch.from_numpy(order.copy())] = torch.arange(count)
    taken = torch.arange(0, math.ceil(count / step) + 1)[:, None] * step  # (T+1, 1)
    mask = (rank[None, :] < taken).float().view(-1, 1, height, width)  # (T+1, 1, H, W)
    canvases = start[None] * (1 - mask) + finish[None] * mask
    return predict(model, canvases, batch_size)[:, target].numpy()


@dataclass(frozen=True)
class FaithfulnessResult:
    orders: tuple[str, ...]  # the methods, then "random"
    fractions: np.ndarray  # (T+1,) share of pixels removed / inserted
    deletion: np.ndarray  # (orders, images, T+1) probability of the target class
    insertion: np.ndarray  # (orders, images, T+1)
    targets: np.ndarray  # (images,) predicted classes
    step: int  # pixels per step
    blur_sigma: float  # of the insertion canvas

    def auc(self, curves: np.ndarray) -> np.ndarray:
        """(orders, images) trapezoidal area under each curve over the share of pixels."""
        return np.trapezoid(curves, self.fractions, axis=-1)


def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    methods: list[str],
    options: MethodOptions,
    steps: int = 64,
    blur_sigma: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> FaithfulnessResult:
    """Curves for images ``x`` (N, 3, H, W), target = predicted class; ``options.layer`` resolved.

    ``steps`` curve points after the start (⌈HW/steps⌉ pixels each); the insertion canvas is
    blurred with σ = ``blur_sigma`` pixels (default H/16, 2 px at 32×32).
    """
    progress = progress or silent
    height, width = int(x.shape[2]), int(x.shape[3])
    step = math.ceil(height * width / steps)
    sigma = blur_sigma if blur_sigma is not None else max(1.0, height / 16)
    targets = predict(model, x).argmax(dim=1)
    orders = (*methods, RANDOM)
    deletion = np.empty((len(orders), len(x), math.ceil(height * width / step) + 1))
    insertion = np.empty_like(deletion)
    total, done = len(x) * len(orders), 0
    for i in range(len(x)):
        image, target = x[i], int(targets[i])
        blurred = gaussian_blur(image[None], sigma)[0]
        black = torch.zeros_like(image)
        tie_breaker = np.random.default_rng([seed, i]).random(height * width)
        for k, name in enumerate(orders):
            if name == RANDOM:
                saliency = np.zeros((height, width))
            else:
                saliency = image_maps(model, x[i : i + 1], targets[i : i + 1], name, options, i)[0]
            order = pixel_order(saliency, tie_breaker)
            deletion[k, i] = transition_curve(model, image, black, order, target, step)
            insertion[k, i] = transition_curve(model, blurred, image, order, target, step)
            done += 1
            progress(done, total, f"image {i + 1}: {name}")
    fractions = np.minimum(np.arange(deletion.shape[-1]) * step, height * width) / (height * width)
    return FaithfulnessResult(orders, fractions, deletion, insertion, targets.numpy(), step, sigma)
