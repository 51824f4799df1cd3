"""Deletion and insertion curves: the canvases, the areas, and a model whose true pixel
importance is known, where the exact attribution must beat the random order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret.faithfulness import faithfulness, pixel_order, transition_curve
from convlens.interpret.images import gaussian_blur
from convlens.interpret.maps import image_maps
from convlens.interpret.methods import MethodOptions
from tests.interpret.models import tiny_cnn


def test_pixel_order_is_descending_with_ties_in_tie_breaker_order() -> None:
    saliency = np.array([[0.5, 0.1], [0.5, 0.9]])
    tie_breaker = np.array([0.7, 0.0, 0.2, 0.3])  # flat indices 0 and 2 tie at 0.5
    assert pixel_order(saliency, tie_breaker).tolist() == [3, 2, 0, 1]
    random_order = pixel_order(np.zeros((2, 2)), tie_breaker)
    assert random_order.tolist() == np.argsort(tie_breaker).tolist()


class CountsFinishPixels(nn.Module):
    """Class-0 logit = mean of channel 0, class 1 logit = 0: with start 0 and finish 1,
    P(class 0) after t steps is σ(share of pixels taken from finish)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0].mean(dim=(1, 2)), torch.zeros(len(x))], dim=1)


def test_transition_curve_takes_step_pixels_at_a_time() -> None:
    height, width, step = 5, 7, 4  # 35 pixels: ⌈35/4⌉ = 9 steps, the last one partial
    order = np.random.default_rng(0).permutation(height * width)
    start, finish = torch.zeros(3, height, width), torch.ones(3, height, width)
    curve = transition_curve(CountsFinishPixels(), start, finish, order, 0, step)
    taken = np.minimum(np.arange(10) * step, 35) / 35
    np.testing.assert_allclose(curve, 1 / (1 + np.exp(-taken)), rtol=1e-6)


class Linear(nn.Module):
    """Class-0 score = Σ w·x over channel 0 with fixed positive weights; class 1 = 0."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x[:, 0] * self.weights).sum(dim=(1, 2)) - 0.3 * self.weights.sum()
        return torch.stack([score, -score], dim=1)


def test_exact_attribution_beats_the_random_order() -> None:
    """For a linear score, Integrated Gradients from black is w·x exactly: deleting its top
    pixels first lowers P(class) fastest. (Insertion starts from a blurred copy, so its best
    order is w·(x − blur(x)), not w·x; only its end points are checked.)"""
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(8, 8, generator=generator) ** 4 * 3
    x = torch.rand(4, 3, 8, 8, generator=generator)
    model = Linear(weights).eval()
    result = faithfulness(
        model,
        x,
        ["integrated-gradients"],
        MethodOptions(steps=8),
        steps=16,
        blur_sigma=1.0,
        deletion="black",  # IG's baseline: the deletion path is IG's straight line
    )
    assert result.orders == ("integrated-gradients", "random")
    assert result.targets.tolist() == [0, 0, 0, 0]  # every image is class 0 (the offset)
    assert result.deletion.shape == result.insertion.shape == (2, 4, 17)
    deletion = result.auc(result.deletion)
    assert (deletion[0] < deletion[1]).all()
    # The curves start at the image's own probability (deletion) and end on a black image.
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)[:, 0].numpy()
        black = torch.softmax(model(torch.zeros(1, 3, 8, 8)), dim=1)[0, 0].item()
    np.testing.assert_allclose(result.deletion[:, :, 0], np.broadcast_to(p, (2, 4)), rtol=1e-6)
    np.testing.assert_allclose(result.deletion[:, :, -1], black, rtol=1e-6)
    np.testing.assert_allclose(result.insertion[:, :, -1], np.broadcast_to(p, (2, 4)), rtol=1e-6)
    with torch.no_grad():
        blurred = torch.softmax(model(gaussian_blur(x, 1.0)), dim=1)[:, 0].numpy()
    np.testing.assert_allclose(
        result.insertion[:, :, 0], np.broadcast_to(blurred, (2, 4)), rtol=1e-6
    )


def test_auc_is_the_trapezoid_over_the_share_of_pixels() -> None:
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    result = faithfulness(tiny_cnn(), x, ["saliency"], MethodOptions(), steps=4)
    assert result.step == 9 and result.fractions.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    curve = result.deletion[0, 1]
    by_hand = sum((curve[i] + curve[i + 1]) / 2 * 0.25 for i in range(4))
    assert result.auc(result.deletion)[0, 1] == np.float64(by_hand) or np.isclose(
        result.auc(result.deletion)[0, 1], by_hand, rtol=1e-12
    )


def test_same_seed_same_curves() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    args = (tiny_cnn(), x, ["smoothgrad", "gradcam"], MethodOptions(layer="features.2", samples=3))
    a = faithfulness(*args, steps=8, seed=4)
    b = faithfulness(*args, steps=8, seed=4)
    c = faithfulness(*args, steps=8, seed=5)
    np.testing.assert_array_equal(a.deletion, b.deletion)
    assert not np.array_equal(a.deletion[-1], c.deletion[-1])  # the random order moved


def test_mean_colour_deletion_ends_on_the_images_mean_colour() -> None:
    x = torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    model = tiny_cnn(2)
    result = faithfulness(model, x, ["saliency"], MethodOptions(), steps=4, deletion="mean")
    assert result.deletion_substrate == "mean"
    mean = x.mean(dim=(0, 2, 3))[None, :, None, None].expand(1, 3, 6, 6)
    with torch.no_grad():
        scores = torch.softmax(model(mean), dim=1)[0, torch.from_numpy(result.targets)].numpy()
    np.testing.assert_allclose(
        result.deletion[:, :, -1], np.broadcast_to(scores, (2, 3)), rtol=1e-6
    )
    with pytest.raises(
        ArgumentError, match="--deletion must be one of mean, black, blur, got 'grey'"
    ):
        faithfulness(model, x, ["saliency"], MethodOptions(), deletion="grey")


def test_blur_deletion_runs_the_insertion_path_backwards() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    model = tiny_cnn(3)
    result = faithfulness(model, x, ["saliency"], MethodOptions(), steps=4)  # the default
    assert result.deletion_substrate == "blur"
    with torch.no_grad():
        blurred = torch.softmax(model(gaussian_blur(x, result.blur_sigma)), dim=1)
    expected = blurred[torch.arange(2), torch.from_numpy(result.targets)].numpy()
    np.testing.assert_allclose(
        result.deletion[:, :, -1], np.broadcast_to(expected, (2, 2)), rtol=1e-6
    )
    np.testing.assert_allclose(result.deletion[..., -1], result.insertion[..., 0], rtol=1e-6)
    np.testing.assert_allclose(result.deletion[..., 0], result.insertion[..., -1], rtol=1e-6)
    # in between, the canvases differ: deletion blurs the first pixels, insertion restores them
    assert not np.allclose(result.deletion[..., 1], result.insertion[..., -2])


def test_given_maps_are_orders_like_the_methods() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    model, options = tiny_cnn(4), MethodOptions()
    targets = torch.softmax(model(x), dim=1).argmax(dim=1)
    own = image_maps(model, x, targets, "saliency", options)
    given = {"saliency, given": own, "saliency, reversed": -own}
    result = faithfulness(model, x, ["saliency"], options, steps=4, given=given)
    assert result.orders == ("saliency", "saliency, given", "saliency, reversed", "random")
    np.testing.assert_array_equal(result.deletion[1], result.deletion[0])
    np.testing.assert_array_equal(result.insertion[1], result.insertion[0])
    assert not np.array_equal(result.deletion[2], result.deletion[0])
