"""How far an accuracy on a finite test set could move: the bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def bootstrap_interval(
    values: np.ndarray, seed: int = 0, resamples: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` when they are drawn again with
    replacement (seeded, so the same run always prints the same interval)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def standard_error(values: np.ndarray) -> float:
    """Of the mean (sample standard deviation / √n); NaN for one value."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


@dataclass(frozen=True)
class Spread:
    """A run's accuracy with its spread over the test images: how far another draw of as
    many images could move it."""

    out: Path
    model: str
    epochs: int
    images: int
    accuracy: float  # the mean of the per-image values
    standard_error: float  # of that mean
    low: float  # 95 % bootstrap percentile interval (images resampled)
    high: float


def spread_of(values: np.ndarray, out: Path, model: str, epochs: int) -> Spread:
    low, high = bootstrap_interval(values)
    return Spread(
        out, model, epochs, len(values), float(values.mean()), standard_error(values), low, high
    )
