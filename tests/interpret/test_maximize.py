"""Feature visualisation by gradient ascent: it ascends, it is seeded, regularisers act."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.errors import ArgumentError
from convlens.interpret.maximize import MaximizeOptions, maximize, total_variation
from tests.interpret.models import tiny_cnn

QUICK = MaximizeOptions(steps=30, lr=0.05)


def test_channel_and_class_objectives_rise() -> None:
    model = tiny_cnn(1)
    unit = maximize(model, (12, 12), "features.2", channel=3, options=QUICK)
    assert unit.final > unit.start
    assert unit.image.shape == (12, 12, 3) and unit.image.dtype == np.float32
    assert unit.image.min() >= 0.0 and unit.image.max() <= 1.0
    assert unit.unit == "layer features.2 channel 3" and len(unit.objective) == 30
    cls = maximize(model, (12, 12), target=2, options=QUICK)
    assert cls.final > cls.start and cls.unit == "class 2"
    # The reported values are the unit itself, measured independently on the result.
    with torch.no_grad():
        score = model(torch.from_numpy(cls.image).permute(2, 0, 1)[None])[0, 2]
    assert float(score) == pytest.approx(cls.final, rel=1e-5)


def test_seeded() -> None:
    model = tiny_cnn(2)
    short = MaximizeOptions(steps=10)
    a = maximize(model, (10, 10), "features.2", channel=1, options=short)
    b = maximize(model, (10, 10), "features.2", channel=1, options=short)
    c = maximize(
        model, (10, 10), "features.2", channel=1, options=MaximizeOptions(steps=10, seed=1)
    )
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[[[0.0, 1.0], [3.0, 3.0]]]])
    # vertical differences 3, 2 → mean 6.5; horizontal 1, 0 → mean 0.5
    assert float(total_variation(x)) == pytest.approx(6.5 + 0.5)


def test_regularisers_make_smoother_and_greyer_images() -> None:
    model = tiny_cnn(3)
    plain = MaximizeOptions(steps=40, blur_every=0, jitter=0)
    free = maximize(model, (12, 12), "features.2", channel=0, options=plain)
    smooth = maximize(
        model, (12, 12), "features.2", channel=0,
        options=MaximizeOptions(steps=40, blur_every=0, jitter=0, tv=5.0),
    )  # fmt: skip
    grey = maximize(
        model, (12, 12), "features.2", channel=0,
        options=MaximizeOptions(steps=40, blur_every=0, jitter=0, l2=50.0),
    )  # fmt: skip

    def tv(image: np.ndarray) -> float:
        return float(total_variation(torch.from_numpy(image).permute(2, 0, 1)[None]))

    assert tv(smooth.image) < tv(free.image)
    assert np.abs(grey.image - 0.5).mean() < np.abs(free.image - 0.5).mean()


def test_bad_requests() -> None:
    model = tiny_cnn()
    with pytest.raises(ArgumentError, match="exactly one of --channel"):
        maximize(model, (8, 8), "features.0", channel=0, target=1, options=QUICK)
    with pytest.raises(ArgumentError, match="--channel needs --layer"):
        maximize(model, (8, 8), channel=0, options=QUICK)
    with pytest.raises(ArgumentError, match=r"--channel 6 is out of range: .* 6 channels"):
        maximize(model, (8, 8), "features.0", channel=6, options=QUICK)
