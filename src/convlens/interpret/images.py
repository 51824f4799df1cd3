"""The images fed to a model: the I-th CIFAR test image or a PNG/JPEG file.

Every image becomes a 3×H×W float32 tensor in [0, 1] at the model's input size. An image of
another size is resized with bilinear interpolation and antialiasing (a photo shrunk to
32×32 keeps its coarse content instead of aliasing), so maps are at the model's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from convlens.errors import ArgumentError, DataError


@dataclass(frozen=True)
class Picture:
    """One input image and what is known about it."""

    pixels: torch.Tensor  # (3, H, W) float32 in [0, 1]
    origin: str  # "test_batch #7 of DIR" or the file name
    label: int | None = None  # the true CIFAR label number, when the image comes from a batch
    label_name: str | None = None


@dataclass(frozen=True)
class TestBatch:
    """The test batch of a CIFAR-10 python-layout folder."""

    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N,) int64
    names: list[str]
    folder: str


def read_test_batch(data: str | Path) -> TestBatch:
    """Read with the labs' restricted unpickler (missing or corrupt folders → ``DataError``)."""
    from convlens.labs.cifar import load_cifar10

    _, test, names = load_cifar10(data)
    return TestBatch(test.images, test.labels, names, str(data))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, h, w) → (3, H, W), bilinear with antialiasing; unchanged when already H×W."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    out = F.interpolate(pixels[None], size=size, mode="bilinear", antialias=True)
    return out[0].clamp(0.0, 1.0)


def batch_pictures(
    batch: TestBatch, indices: range | list[int], size: tuple[int, int]
) -> list[Picture]:
    count = len(batch.labels)
    pictures = []
    for index in indices:
        if not 0 <= index < count:
            raise ArgumentError(
                f"--index {index} is out of range: the test batch of {batch.folder} holds "
                f"{count:,} images (0..{count - 1})."
            )
        label = int(batch.labels[index])
        pictures.append(
            Picture(
                resize(to_tensor(batch.images[index]), size),
                f"test image #{index}",
                label,
                batch.names[label] if label < len(batch.names) else None,
            )
        )
    return pictures


def cifar_picture(data: str | Path, index: int, size: tuple[int, int]) -> Picture:
    """The ``index``-th image of the test batch in ``data``."""
    return batch_pictures(read_test_batch(data), [index], size)[0]


def file_picture(path: str | Path, size: tuple[int, int]) -> Picture:
    """A PNG or JPEG (anything Pillow reads), converted to RGB and resized to ``size``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"--image {path} does not exist.")
    try:
        with Image.open(path) as image:
            rgb = np.array(image.convert("RGB"))  # a writable copy
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(
            f"--image {path} is not an image Pillow can read ({type(err).__name__}); "
            "expected a PNG or JPEG file."
        ) from None
    return Picture(resize(to_tensor(rgb), size), path.name)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred per channel by a separable Gaussian of std ``sigma`` pixels.

    Kernel radius ⌈3σ⌉; edges replicated (reflection would need the radius below the size).
    """
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
