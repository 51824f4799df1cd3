"""CIFAR-10 as tensors, and the seeded flips and pad-crops of the CIFAR labs.

``labs/cifar.py`` reads the files (NumPy, restricted unpickler); this turns a split into
(N, 3, 32, 32) float tensors in [0, 1] with labels 0..K−1, and augments batches with
draws that are functions of (seed, epoch) alone, so a resumed run draws the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from convlens.labs.cifar import load_cifar10, resolve_classes
from convlens.labs.runtime.loop import epoch_flips, epoch_generator

PAD = 4  # pixels of reflection padding before a random 32 × 32 crop


@dataclass(frozen=True)
class Data:
    train_x: torch.Tensor  # (N, 3, 32, 32)
    train_y: torch.Tensor  # (N,) int64 in 0..K-1
    test_x: torch.Tensor  # (M, 3, 32, 32)
    test_y: torch.Tensor  # (M,)
    class_names: list[str]  # K names, in label order


def load_data(data: str, classes: str = "all") -> Data:
    """CIFAR-10 → images (N, 3, 32, 32) float32 in [0, 1], labels 0..K-1 of the chosen classes."""
    train, test, names = load_cifar10(data, classes)
    chosen = resolve_classes(classes, names)
    lookup = np.full(len(names), -1, np.int64)
    lookup[chosen] = np.arange(len(chosen))  # CIFAR label → 0..K-1

    def images(split: Any) -> torch.Tensor:  # (N, 32, 32, 3) uint8 → (N, 3, 32, 32) float
        return torch.from_numpy(split.images).permute(0, 3, 1, 2).float().div(255).contiguous()

    return Data(
        images(train),
        torch.from_numpy(lookup[train.labels]),
        images(test),
        torch.from_numpy(lookup[test.labels]),
        [names[i] for i in chosen],
    )


def augment(
    images: torch.Tensor, flips: torch.Tensor | None, offsets: torch.Tensor | None
) -> torch.Tensor:
    """Mirror ``flips`` (B,) and crop 32 × 32 at ``offsets`` (B, 2) out of the images
    reflection-padded by 4 pixels: (B, 3, 32, 32) → (B, 3, 32, 32)."""
    if offsets is not None:
        padded = F.pad(images, (PAD, PAD, PAD, PAD), mode="reflect")  # (B, 3, 40, 40)
        n, c, size, device = len(images), images.shape[1], images.shape[-1], images.device
        span = torch.arange(size, device=device)
        rows = (offsets[:, 0, None] + span)[:, None, :, None]  # (B, 1, 32, 1)
        cols = (offsets[:, 1, None] + span)[:, None, None, :]  # (B, 1, 1, 32)
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(c, device=device)[None, :, None, None]
        images = padded[batch, channel, rows, cols]
    if flips is not None:
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    return images


def epoch_offsets(seed: int, epoch: int, n: int) -> torch.Tensor:
    """(n, 2) crop offsets in 0..8 of ``epoch``: a function of (seed, epoch) only."""
    return torch.randint(0, 2 * PAD + 1, (n, 2), generator=epoch_generator(seed, epoch, 2))


@functools.lru_cache(maxsize=1)  # every step of an epoch asks for the same draws
def augmentation_draws(
    seed: int, epoch: int, n: int, augmentation: str
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The flips (n,) and crop offsets (n, 2) of every training image in ``epoch`` for
    ``augmentation`` = none | flip | flip,crop (None where not drawn)."""
    flips = epoch_flips(seed, epoch, n) if "flip" in augmentation else None
    offsets = epoch_offsets(seed, epoch, n) if "crop" in augmentation else None
    return flips, offsets


def augmented_batch(
    images: torch.Tensor, index: torch.Tensor, seed: int, epoch: int, augmentation: str
) -> torch.Tensor:
    """Training images ``index`` (B,) of ``images`` (N, 3, 32, 32), on their device, as
    epoch ``epoch`` augments them (``augmentation`` = none | flip | flip,crop)."""
    device = images.device
    flips, offsets = augmentation_draws(seed, epoch, len(images), augmentation)
    return augment(
        images[index.to(device)],
        None if flips is None else flips[index].to(device),
        None if offsets is None else offsets[index].to(device),
    )
