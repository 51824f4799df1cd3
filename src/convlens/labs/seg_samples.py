"""The segmentation lab's training samples: the sections of a run's data, split into
training and validation, and each epoch's seeded crops, elastic fields, flips, quarter
turns and intensity changes (one random stream per kind, so switching one augmentation off
leaves the others as they were and a resumed run sees the same samples)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from convlens.labs import elastic, seg_data
from convlens.labs.runtime.loop import epoch_generator

if TYPE_CHECKING:
    from convlens.labs.segment import SegmentConfig


def augmentations(cfg: SegmentConfig) -> set[str]:
    return set() if cfg.augment in ("", "none") else set(cfg.augment.split(","))


@dataclass(frozen=True)
class Data:
    values: list[int]  # mask value of each class
    train: list[seg_data.Section]
    val: list[seg_data.Section]
    class_weights: np.ndarray  # w_c (K,)
    weights: list[np.ndarray] | None  # the weight map of each training section (weighted-ce)


def load_data(cfg: SegmentConfig, values: list[int] | None = None) -> Data:
    """The sections of ``cfg.data``, split into training and validation (seeded)."""
    names = seg_data.paired_names(cfg.data)
    train_names, val_names = seg_data.split_validation(names, cfg.val, cfg.seed)
    values = values or seg_data.class_values(cfg.data, names)
    train = seg_data.load_sections(cfg.data, train_names, values)
    val = seg_data.load_sections(cfg.data, val_names, values)
    masks = [s.mask for s in train if s.mask is not None]
    w_class = seg_data.class_weights(masks, len(values))
    weights = None
    if cfg.loss == "weighted-ce":
        weights = [seg_data.weight_map(m, w_class, cfg.w0, cfg.sigma) for m in masks]
    return Data(values, train, val, w_class, weights)


@dataclass(frozen=True)
class Draws:
    """One epoch's augmentation of each of the n training samples, from (seed, epoch)."""

    corner: torch.Tensor  # (n, 2) in [0, 1): where the crop sits, as a fraction of the room
    coarse: torch.Tensor  # (n, 2, 3, 3) elastic displacements, pixels
    flips: torch.Tensor  # (n, 2) bool: up-down, left-right
    turns: torch.Tensor  # (n,) quarter turns 0..3
    contrast: torch.Tensor  # (n,)
    brightness: torch.Tensor  # (n,)


def epoch_draws(cfg: SegmentConfig, epoch: int, n: int) -> Draws:
    """Each kind of draw has its own stream, so switching one augmentation off leaves the
    others as they were."""
    chosen = augmentations(cfg)

    def stream(k: int) -> torch.Generator:
        return epoch_generator(cfg.seed, epoch, k)

    sigma = cfg.elastic_sigma if "elastic" in chosen else 0.0
    flips = torch.rand(n, 2, generator=stream(1)) < 0.5
    turns = torch.randint(0, 4, (n,), generator=stream(4))
    shade = torch.rand(n, 2, generator=stream(5))
    return Draws(
        corner=torch.rand(n, 2, generator=stream(2)),
        coarse=elastic.coarse_displacements(n, stream(3), sigma),
        flips=flips if "flip" in chosen else torch.zeros_like(flips),
        turns=turns if "rot90" in chosen else torch.zeros_like(turns),
        contrast=1 + 0.4 * (shade[:, 0] - 0.5) if "intensity" in chosen else torch.ones(n),
        brightness=0.2 * (shade[:, 1] - 0.5) if "intensity" in chosen else torch.zeros(n),
    )


@dataclass(frozen=True)
class Samples:
    """A batch: images (B, 1, T, T), masks (B, O, O), weights (B, O, O) or None."""

    images: torch.Tensor
    masks: torch.Tensor
    weights: torch.Tensor | None


def make_samples(data: Data, draws: Draws, index: torch.Tensor, crop: int, margin: int) -> Samples:
    """Sample ``i`` is a crop of training section i mod S: an O × O window (O = ``crop``)
    inside the section and its T × T input (T = O + 2·margin, mirrored beyond the
    section), all warped by one elastic field, then flipped, turned and shaded alike."""
    side = crop + 2 * margin
    images, masks, weights = [], [], []
    for i in index.tolist():
        section = data.train[i % len(data.train)]
        h, w = section.image.shape
        top = int(draws.corner[i, 0] * (h - crop + 1)) - margin  # input window's corner
        left = int(draws.corner[i, 1] * (w - crop + 1)) - margin
        field = elastic.dense_displacements(draws.coarse[i : i + 1], side)[0]  # (2, T, T)
        image = elastic.warp(torch.from_numpy(section.image)[None], top, left, field)
        mask = torch.from_numpy(section.mask)[None].float()  # type: ignore[arg-type]
        mask = elastic.warp(mask, top, left, field, mode="nearest")
        inner = (slice(None), slice(margin, margin + crop), slice(margin, margin + crop))
        images.append(image)
        masks.append(mask[inner])
        if data.weights is not None:
            weight = torch.from_numpy(data.weights[i % len(data.train)])[None]
            weights.append(elastic.warp(weight, top, left, field)[inner])
    x = torch.stack(images)  # (B, 1, T, T)
    y = torch.stack(masks)[:, 0].long()  # (B, O, O)
    wt = torch.stack(weights)[:, 0] if weights else None
    flips, turns = draws.flips[index], draws.turns[index]
    x = _orient(x, flips, turns)
    y = _orient(y[:, None], flips, turns)[:, 0]
    if wt is not None:
        wt = _orient(wt[:, None], flips, turns)[:, 0]
    contrast, brightness = draws.contrast[index], draws.brightness[index]
    x = ((x - 0.5) * contrast.view(-1, 1, 1, 1) + 0.5 + brightness.view(-1, 1, 1, 1)).clamp(0, 1)
    return Samples(x.contiguous(), y.contiguous(), None if wt is None else wt.contiguous())


def _orient(x: torch.Tensor, flips: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Per sample: flip up-down / left-right, then turn by quarter turns. (B, C, S, S)."""
    out = []
    for sample, (up_down, left_right), k in zip(x, flips.tolist(), turns.tolist(), strict=True):
        if up_down:
            sample = sample.flip(-2)
        if left_right:
            sample = sample.flip(-1)
        out.append(torch.rot90(sample, k, dims=(-2, -1)))
    return torch.stack(out)
