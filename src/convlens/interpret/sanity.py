"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency
maps"), cascading from the top.

Layers with parameters are re-initialised one after another from the output towards the
input, each keeping those above it random. After each step every method's map is compared
with its map on the trained model by Spearman's rank correlation of the absolute values
(their "ABS" variant). A method whose maps stay similar while the network is destroyed
explains the image, not the model. The class explained stays the trained model's prediction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convlens.interpret.maps import image_maps, predict
from convlens.interpret.methods import MethodOptions
from convlens.interpret.progress import Progress, silent
from convlens.interpret.sources import executed_layers


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their positions (as scipy's rankdata)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    # boundaries of runs of equal values in sorted order
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of start+1 .. end
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ: Pearson's correlation of the average ranks; NaN when either is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    scale = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / scale) if scale > 0 else float("nan")


def top_down_layers(model: nn.Module, size: tuple[int, int]) -> list[str]:
    """Modules holding parameters themselves (leaf or not), from the last one a forward
    finishes to the first."""
    order = executed_layers(
        model, torch.zeros(1, 3, *size), lambda m: any(True for _ in m.parameters(recurse=False))
    )
    return order[::-1]


def reinitialise(module: nn.Module, seed: int) -> None:
    """The layer's own initialiser (``reset_parameters``), seeded; else N(0, σ²) per tensor
    with σ the trained tensor's own standard deviation."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for parameter in module.parameters(recurse=False):
                parameter.normal_(0.0, float(parameter.std()) if parameter.numel() > 1 else 1.0)


@dataclass(frozen=True)
class SanityResult:
    methods: tuple[str, ...]
    stages: tuple[str, ...]  # the layer re-initialised at each step, top first (cumulative)
    correlations: np.ndarray  # (methods, stages, images) Spearman ρ; NaN for a constant map
    example_maps: np.ndarray  # (methods, 1 + stages, H, W) first image: trained, then each step
    targets: np.ndarray  # (images,) the trained model's predicted classes

    def mean(self) -> np.ndarray:
        """(methods, stages) mean ρ over the images whose maps were not constant."""
        defined = ~np.isnan(self.correlations)
        total = np.where(defined, self.correlations, 0.0).sum(axis=2)
        count = defined.sum(axis=2)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def undefined(self) -> np.ndarray:
        """(methods, stages) how many images gave a constant map (ρ undefined)."""
        return np.isnan(self.correlations).sum(axis=2)


def cascading_randomisation(
    model: nn.Module,
    x: torch.Tensor,
    methods: list[str],
    options: MethodOptions,
    seed: int = 0,
    progress: Progress | None = None,
) -> SanityResult:
    """Run the cascade on images ``x`` (N, 3, H, W); ``options.layer`` must be resolved."""
    progress = progress or silent
    size = (int(x.shape[2]), int(x.shape[3]))
    layers = top_down_layers(model, size)
    targets = predict(model, x).argmax(dim=1)
    total, done = len(methods) * (1 + len(layers)), 0

    def step(net: nn.Module, label: str) -> list[np.ndarray]:
        nonlocal done
        out = []
        for method in methods:
            out.append(image_maps(net, x, targets, method, options))
            done += 1
            progress(done, total, f"{label}: {method}")
        return out

    trained = step(model, "trained")
    randomised = copy.deepcopy(model).eval()
    modules = dict(randomised.named_modules())
    correlations = np.empty((len(methods), len(layers), len(x)))
    examples = [[maps[0]] for maps in trained]
    for s, name in enumerate(layers):
        reinitialise(modules[name], seed + s)
        for k, maps in enumerate(step(randomised, name)):
            examples[k].append(maps[0])
            for i in range(len(x)):
                correlations[k, s, i] = spearman(np.abs(trained[k][i]), np.abs(maps[i]))
    return SanityResult(
        tuple(methods),
        tuple(layers),
        correlations,
        np.asarray(examples, dtype=np.float32),
        targets.numpy(),
    )
