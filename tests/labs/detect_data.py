"""Helpers for the detection-lab tests: a tiny synthetic data set and a tiny configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from convlens.detection.synthetic import ShapesConfig, make_dataset
from convlens.labs.detect import DetectConfig

# 32 × 32 images (a 4 × 4 grid at stride 8) with one or two shapes of 6–16 pixels.
TINY_SHAPES = ShapesConfig(image_size=32, min_size=6, max_size=16, max_objects=2)


def write_shapes(folder: Path, num_train: int = 24, num_val: int = 8, seed: int = 0) -> Path:
    make_dataset(folder, num_train, num_val, seed, TINY_SHAPES)
    return folder


def small(data: Path, out: Path, **changes: object) -> DetectConfig:
    """24 images, 3 steps of 8 per epoch, TinyYolo of width 4, one thread."""
    base = DetectConfig(
        data=str(data),
        width=4,
        epochs=2,
        batch_size=8,
        lr=5e-3,
        warmup_epochs=0.5,
        out=str(out),
        device="cpu",
        threads=1,
        pictures=4,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
