"""Deletion and insertion curves (Petsiuk et al. 2018, RISE, §4.1).

Deletion removes pixels, most important first; a faithful map makes the class probability
fall fast (a low area under the curve is good). Insertion starts from a blurred copy and puts
the original pixels back in the same order; a faithful map makes the probability rise fast (a
high area is good). Each method is compared with a random order.

What a deleted pixel becomes matters. ``"blur"`` (the default) gives it its value in the
blurred copy insertion starts from (the blur perturbation of Fong & Vedaldi 2017): deletion
and insertion then walk the same path in opposite directions, and scattered deleted pixels
make no high-frequency pattern. A flat colour does make one: RISE's reference code sets a
deleted pixel to 0 in the *normalised* input, i.e. the data set's mean colour (``"mean"``
here, where models take [0, 1] images and normalise inside: the mean colour of the images
evaluated), and ``"black"`` sets it to 0 in [0, 1]. Scattered dots of one colour are a
pattern a CIFAR network never saw, and on the lab's classify run they collapse the
prediction faster than deleting any coherent region: the random order then beats every map,
Grad-CAM's included, while Grad-CAM still beats random blobs of its own shape and its own
reverse by far (docs/labs/interpret.md, "Why Grad-CAM's deletion loses to the random order").
A flat colour measures the network's sensitivity to such noise more than the map's
faithfulness, so it is not the default; both stay available.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret.images import gaussian_blur
from convlens.interpret.maps import image_maps, predict
from convlens.interpret.methods import MethodOptions
from convlens.interpret.progress import Progress, silent

RANDOM = "random"
SUBSTRATES = ("mean", "black", "blur")
DEFAULT_DELETION = "blur"


def deletion_substrate(x: torch.Tensor, kind: str) -> torch.Tensor | None:
    """(3, 1, 1) colour of a deleted pixel: the images' mean colour, or black; None for
    ``"blur"``, where each image's own blurred copy replaces it."""
    if kind == "mean":
        return x.mean(dim=(0, 2, 3))[:, None, None]
    if kind == "black":
        return torch.zeros(x.shape[1], 1, 1)
    if kind == "blur":
        return None
    raise ArgumentError(f"--deletion must be one of {', '.join(SUBSTRATES)}, got '{kind}'.")


def substrate_words(kind: str) -> str:
    """What a deleted pixel becomes, for titles and table headers."""
    return {"mean": "the mean colour", "black": "black", "blur": "the blurred copy"}[kind]


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
    deletion_substrate: str = DEFAULT_DELETION  # what a deleted pixel becomes (module docstring)

    def auc(self, curves: np.ndarray) -> np.ndarray:
        """(orders, images) trapezoidal area under each curve over the share of pixels."""
        return np.trapezoid(curves, self.fractions, axis=-1)

    def deletion_against_random(self, order: str) -> Paired:
        """The order's deletion area minus the random order's, image by image."""
        areas = self.auc(self.deletion)
        difference = areas[self.orders.index(order)] - areas[self.orders.index(RANDOM)]
        se = (
            float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0.0
        )
        return Paired(float(difference.mean()), se, int((difference < 0).sum()), len(difference))


@dataclass(frozen=True)
class Paired:
    """Mean ± standard error of a per-image difference of areas (negative: lower)."""

    mean: float
    se: float
    lower_on: int  # images where the order's area is the lower one
    images: int

    @property
    def lower(self) -> bool:
        """Lower by more than two standard errors."""
        return self.mean + 2 * self.se < 0


def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    methods: list[str],
    options: MethodOptions,
    steps: int = 64,
    blur_sigma: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    deletion: str = DEFAULT_DELETION,
    given: Mapping[str, np.ndarray] | None = None,
) -> FaithfulnessResult:
    """Curves for images ``x`` (N, 3, H, W), target = predicted class; ``options.layer`` resolved.

    ``steps`` curve points after the start (⌈HW/steps⌉ pixels each); the insertion canvas is
    blurred with σ = ``blur_sigma`` pixels (default H/16, 2 px at 32×32); deleted pixels
    take their value in the insertion's blurred copy (``"blur"``) or the colour ``deletion``
    names (``"mean"`` or ``"black"``). ``given`` adds orders from ready maps (N, H, W),
    e.g. controls that no attribution method computes; they come after the methods.
    """
    progress = progress or silent
    substrate = deletion_substrate(x, deletion)
    height, width = int(x.shape[2]), int(x.shape[3])
    step = math.ceil(height * width / steps)
    sigma = blur_sigma if blur_sigma is not None else max(1.0, height / 16)
    targets = predict(model, x).argmax(dim=1)
    given = dict(given or {})
    orders = (*methods, *given, RANDOM)
    deleted = np.empty((len(orders), len(x), math.ceil(height * width / step) + 1))
    inserted = np.empty_like(deleted)
    total, done = len(x) * len(orders), 0
    for i in range(len(x)):
        image, target = x[i], int(targets[i])
        blurred = gaussian_blur(image[None], sigma)[0]
        removed = blurred if substrate is None else substrate.expand_as(image)
        tie_breaker = np.random.default_rng([seed, i]).random(height * width)
        for k, name in enumerate(orders):
            if name == RANDOM:
                saliency = np.zeros((height, width))
            elif name in given:
                saliency = given[name][i]
            else:
                saliency = image_maps(model, x[i : i + 1], targets[i : i + 1], name, options, i)[0]
            order = pixel_order(saliency, tie_breaker)
            deleted[k, i] = transition_curve(model, image, removed, order, target, step)
            inserted[k, i] = transition_curve(model, blurred, image, order, target, step)
            done += 1
            progress(done, total, f"image {i + 1}: {name}")
    fractions = np.minimum(np.arange(deleted.shape[-1]) * step, height * width) / (height * width)
    return FaithfulnessResult(
        orders, fractions, deleted, inserted, targets.numpy(), step, sigma, deletion
    )
