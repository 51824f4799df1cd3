"""Input images: the I-th CIFAR test image, PNG/JPEG files, resizing and blur."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convlens.errors import ArgumentError, DataError
from convlens.interpret.images import cifar_picture, file_picture, gaussian_blur, resize
from convlens.labs.cifar import load_cifar10


def test_cifar_picture_is_the_test_image_scaled_to_unit_range(cifar: Path) -> None:
    _, test, names = load_cifar10(cifar)
    picture = cifar_picture(cifar, 4, (32, 32))
    expected = torch.from_numpy(test.images[4]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(picture.pixels, expected, rtol=0, atol=0)
    assert (picture.label, picture.label_name) == (7, names[7]) == (7, "horse")
    assert picture.origin == "test image #4"


def test_index_out_of_range(cifar: Path) -> None:
    with pytest.raises(ArgumentError, match=r"--index 6 is out of range: .* 6 images \(0\.\.5\)"):
        cifar_picture(cifar, 6, (32, 32))
    with pytest.raises(ArgumentError, match="--index -1 is out of range"):
        cifar_picture(cifar, -1, (32, 32))


def test_missing_and_corrupt_data_folders(tmp_path: Path, cifar: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        cifar_picture(tmp_path / "nowhere", 0, (32, 32))
    broken = tmp_path / "broken" / "cifar-10-batches-py"
    broken.mkdir(parents=True)
    for item in (cifar / "cifar-10-batches-py").iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR-10 pickle"):
        cifar_picture(broken.parent, 0, (32, 32))


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_file_picture_is_resized_to_the_model_input(tmp_path: Path, suffix: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / f"photo.{suffix}"
    Image.fromarray(rgb).save(path)
    picture = file_picture(path, (8, 12))
    assert picture.pixels.shape == (3, 8, 12) and picture.pixels.dtype == torch.float32
    assert float(picture.pixels.min()) >= 0.0 and float(picture.pixels.max()) <= 1.0
    assert picture.label is None and picture.origin == f"photo.{suffix}"


def test_file_picture_at_the_input_size_is_exact(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    pixels = file_picture(tmp_path / "a.png", (16, 16)).pixels
    torch.testing.assert_close(pixels, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_grey_and_rgba_files_become_rgb(tmp_path: Path) -> None:
    Image.new("L", (5, 5), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (5, 5), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    assert file_picture(tmp_path / "grey.png", (5, 5)).pixels.shape == (3, 5, 5)
    rgba = file_picture(tmp_path / "rgba.png", (5, 5)).pixels
    torch.testing.assert_close(rgba[:, 0, 0], torch.tensor([10, 20, 30]) / 255)


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.png is not an image Pillow can read"):
        file_picture(tmp_path / "notes.png", (8, 8))
    with pytest.raises(DataError, match="does not exist"):
        file_picture(tmp_path / "absent.png", (8, 8))


def test_resize_keeps_a_constant_image_and_skips_same_size() -> None:
    flat = torch.full((3, 10, 14), 0.25)
    torch.testing.assert_close(resize(flat, (4, 5)), torch.full((3, 4, 5), 0.25))
    x = torch.rand(3, 6, 6)
    assert resize(x, (6, 6)) is x


def test_gaussian_blur_matches_a_direct_sum() -> None:
    """Separable blur with replicated edges = the 2-D weighted sum written out."""
    x = torch.rand(1, 2, 7, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigma = 1.2
    radius = 4  # ⌈3σ⌉
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    array = x.numpy()
    expected = np.zeros_like(array)
    for i in range(7):
        for j in range(9):
            for a, wa in zip(offsets, weights, strict=True):
                for b, wb in zip(offsets, weights, strict=True):
                    expected[..., i, j] += (
                        wa * wb * array[..., min(max(i + a, 0), 6), min(max(j + b, 0), 8)]
                    )
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), expected, rtol=1e-10)
    assert gaussian_blur(x, 0.0) is x
