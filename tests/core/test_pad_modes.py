"""Padding in reflect, replicate and circular mode with negative pads (crops), exhaustively
on small axes against PyTorch's values: convlens accepts exactly what PyTorch computes
correctly, with its shape, and refuses the rest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens.errors import ConvlensError


def expected_circular(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Crop first (a negative pad), then wrap what is left."""
    kept = values[max(-lo, 0) : len(values) - max(-hi, 0)]
    return np.concatenate([kept[len(kept) - max(lo, 0) :], kept, kept[: max(hi, 0)]])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_negative_pads_in_every_mode(mode: str) -> None:
    for width, lo, hi in itertools.product(range(1, 7), range(-7, 8), range(-7, 8)):
        x = torch.arange(float(width)).reshape(1, 1, 1, width)
        try:
            y = F.pad(x, (lo, hi, 0, 0), mode=mode).flatten().numpy()
        except RuntimeError:
            y = None
        if mode == "circular" and y is not None:  # PyTorch's result is not always a wrap
            kept = width - max(-lo, 0) - max(-hi, 0)
            sane = kept > 0 and max(lo, 0) <= kept and max(hi, 0) <= kept
            y = (
                y
                if sane and np.array_equal(y, expected_circular(x.flatten().numpy(), lo, hi))
                else None
            )
        description = f"input 1x1x{width}\npad ({lo},{hi},0,0) mode={mode}"
        if y is None or y.size == 0:
            with pytest.raises(ConvlensError):
                convlens.analyze(description)
        else:
            shape = convlens.analyze(description).layers[-1].output_shape
            assert tuple(shape) == (1, 1, y.size), description
