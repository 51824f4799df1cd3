"""Fixtures: a tiny CIFAR-layout folder whose test batch holds six 32×32 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convlens.labs.cifar import write_cifar10

TINY_SOURCE = "tests.interpret.models:tiny_cnn"


def random_rows(n: int, seed: int) -> np.ndarray:
    """(n, 3072) uint8 rows in CIFAR order: smooth random blobs, so maps vary across images."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 3, 4, 4)).astype(np.float64)
    images = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)  # (n, 3, 32, 32)
    images += rng.normal(0, 20, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)


@pytest.fixture(scope="session")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cifar")
    train = [(random_rows(2, b), [b, b + 1]) for b in range(5)]
    write_cifar10(folder, train, (random_rows(6, 99), [0, 1, 2, 3, 7, 9]))
    return folder
