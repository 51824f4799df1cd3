"""Helpers for the colourization-lab tests: tiny data in the official CIFAR-10 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.labs.cifar import write_cifar10

# Four colours whose grey levels differ, so grey → colour is learnable.
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [40, 60, 220], [240, 240, 120]], np.uint8)


def make_images(n: int, seed: int) -> np.ndarray:
    """(n, 3072) uint8 rows in CIFAR order (R plane, G plane, B plane): each image is
    four quadrants of the colours above, in a random arrangement."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        order = rng.permutation(4)
        images[i, :16, :16] = COLOURS[order[0]]
        images[i, :16, 16:] = COLOURS[order[1]]
        images[i, 16:, :16] = COLOURS[order[2]]
        images[i, 16:, 16:] = COLOURS[order[3]]
    return images.transpose(0, 3, 1, 2).reshape(n, 3072).copy()


def write_tiny(folder: Path, per_batch: int = 8, test: int = 6) -> Path:
    """Five training batches and a test batch, classes horse (7) and cat (3) alternating."""
    train = []
    for b in range(5):
        labels = [7 if i % 2 == 0 else 3 for i in range(per_batch)]
        train.append((make_images(per_batch, seed=b), labels))
    test_labels = [7 if i % 2 == 0 else 3 for i in range(test)]
    write_cifar10(folder, train, (make_images(test, seed=99), test_labels))
    return folder
