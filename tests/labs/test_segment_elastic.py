"""Elastic deformation as in the U-Net paper: a 3×3 grid of N(0, σ²) displacements,
bicubically interpolated; identity at σ = 0; one field for image and mask; labels never
mixed; seeded draws."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_segment_data import write_sections

from convlens.labs import elastic
from convlens.labs.runtime.loop import epoch_generator
from convlens.labs.segment import SegmentConfig, epoch_draws, load_data, make_samples


def field(seed: int, size: int, sigma: float = 10.0) -> torch.Tensor:
    coarse = elastic.coarse_displacements(1, torch.Generator().manual_seed(seed), sigma)
    return elastic.dense_displacements(coarse, size)[0]  # (2, S, S)


def test_sigma_zero_is_the_identity() -> None:
    source = torch.rand(2, 90, 70, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 5, (1, 90, 70), generator=torch.Generator().manual_seed(1)).float()
    displacement = field(0, 40, sigma=0.0)
    assert torch.count_nonzero(displacement) == 0
    window = (slice(None), slice(30, 70), slice(12, 52))
    torch.testing.assert_close(elastic.warp(source, 30, 12, displacement), source[window],
                               atol=2e-5, rtol=0)  # fmt: skip
    assert torch.equal(elastic.warp(labels, 30, 12, displacement, mode="nearest"), labels[window])


def test_the_field_is_the_bicubic_interpolation_of_the_coarse_grid() -> None:
    coarse = elastic.coarse_displacements(4, torch.Generator().manual_seed(2))
    dense = elastic.dense_displacements(coarse, 41)
    for i, j in np.ndindex(3, 3):  # grid points at rows/columns 0, 20, 40
        torch.testing.assert_close(dense[:, :, 20 * i, 20 * j], coarse[:, :, i, j])
    expected = torch.nn.functional.interpolate(coarse, (41, 41), mode="bicubic", align_corners=True)
    assert torch.equal(dense, expected)
    many = elastic.coarse_displacements(4000, torch.Generator().manual_seed(3), sigma=10.0)
    assert many.std().item() == pytest.approx(10.0, rel=0.02)
    assert abs(many.mean().item()) < 4 * 10.0 / many.numel() ** 0.5  # 4 standard errors


def test_image_and_mask_move_with_the_same_field() -> None:
    """A ramp image tells where each output pixel was read (bilinear is exact on a ramp);
    a mask whose labels are the column numbers tells which pixel the mask read: they agree
    to the rounding of nearest-neighbour reading."""
    h, w = 60, 80
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    displacement = field(4, 32, sigma=3.0)
    read = elastic.warp(torch.stack([rows, cols]), 14, 20, displacement)
    inside = (read[0] > 0) & (read[0] < h - 1) & (read[1] > 0) & (read[1] < w - 1)
    span = torch.arange(32, dtype=torch.float32)
    torch.testing.assert_close(read[0][inside], (14 + span[:, None] + displacement[0])[inside])
    torch.testing.assert_close(read[1][inside], (20 + span[None, :] + displacement[1])[inside])
    label_cols = elastic.warp(cols[None], 14, 20, displacement, mode="nearest")[0]
    assert (label_cols - read[1]).abs()[inside].max() <= 0.5 + 1e-4
    label_rows = elastic.warp(rows[None], 14, 20, displacement, mode="nearest")[0]
    assert (label_rows - read[0]).abs()[inside].max() <= 0.5 + 1e-4


def test_a_warped_mask_never_mixes_labels() -> None:
    labels = torch.tensor([0.0, 3.0, 7.0])[
        torch.randint(0, 3, (1, 50, 50), generator=torch.Generator().manual_seed(5))
    ]
    for seed in range(5):
        warped = elastic.warp(labels, -10, 5, field(seed, 64), mode="nearest")
        assert set(warped.unique().tolist()) <= {0.0, 3.0, 7.0}


def test_draws_depend_on_seed_and_epoch_only(tmp_path: Path) -> None:
    cfg = SegmentConfig(data=str(write_sections(tmp_path / "d", n=4)), crop=32, val=1, out="x")
    a, b = epoch_draws(cfg, 3, 12), epoch_draws(cfg, 3, 12)
    assert all(torch.equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    other = epoch_draws(cfg, 4, 12)
    assert not torch.equal(a.coarse, other.coarse)
    expected = elastic.coarse_displacements(12, epoch_generator(cfg.seed, 3, 3), 10.0)
    assert torch.equal(a.coarse, expected)
    flat = epoch_draws(dataclasses.replace(cfg, augment="flip"), 3, 12)
    assert torch.count_nonzero(flat.coarse) == 0 and torch.equal(flat.flips, a.flips)


def test_samples_keep_image_mask_and_weights_aligned(tmp_path: Path) -> None:
    """With the mask itself as the image and as the weight map, the warped image and
    weights agree with the warped mask on almost every pixel (they differ only where
    bilinear and nearest reading disagree at a border): flips and turns move all three
    alike."""
    root = write_sections(tmp_path / "d", n=3, size=64)
    cfg = SegmentConfig(data=str(root), crop=40, val=0, augment="elastic,flip,rot90", out="x")
    data = load_data(cfg)
    same = [dataclasses.replace(s, image=s.mask.astype(np.float32)) for s in data.train]  # type: ignore[union-attr]
    assert data.weights is not None
    data = dataclasses.replace(data, train=same, weights=[s.image for s in same])
    batch = make_samples(data, epoch_draws(cfg, 0, 6), torch.arange(6), 40, 0)
    assert batch.images.shape == (6, 1, 40, 40) and batch.masks.shape == (6, 40, 40)
    assert set(batch.masks.unique().tolist()) <= {0, 1}
    agree = (batch.images[:, 0].round() == batch.masks).float().mean()
    assert agree > 0.95
    assert batch.weights is not None and batch.weights.shape == (6, 40, 40)
    assert (batch.weights.round() == batch.masks).float().mean() > 0.95
    torch.testing.assert_close(batch.weights, batch.images[:, 0])  # one field, one orientation
