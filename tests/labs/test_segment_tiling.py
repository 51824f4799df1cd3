"""Overlap-tile prediction: tiled equals whole-image prediction for the valid U-Net; tile
plans cover the image on the pooling grid; the valid U-Net's size rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.labs.tiling import (
    Geometry,
    geometry_of,
    orientations,
    plan_axis,
    predict_averaged,
    predict_oriented,
    predict_probabilities,
    smallest_tile,
)
from convlens.zoo import create_model
from convlens.zoo.segmentation import output_size, valid_input_sizes


def test_valid_sizes_follow_figure_1() -> None:
    assert output_size(572, 4) == 388
    assert valid_input_sizes(4, 300) == [188, 204, 220, 236, 252, 268, 284, 300]
    assert output_size(573, 4) is None and output_size(187, 4) is None
    model = create_model("unet_valid", width=2, depth=2)
    assert geometry_of(model) == Geometry(margin=20, multiple=4, depth=2)
    for side in (44, 48, 60):
        out = model(torch.zeros(1, 1, side, side)).shape[-1]
        assert out == output_size(side, 2) == side - 40


@pytest.fixture(scope="module")
def valid_unet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("unet_valid", width=3, depth=2, batch_norm=True).double()
    for module in model.modules():  # running statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(("height", "width", "tile"), [(70, 53, 60), (33, 90, 48), (64, 64, 44)])
def test_tiled_prediction_equals_whole_image_prediction(
    valid_unet: torch.nn.Module, height: int, width: int, tile: int
) -> None:
    """Whole: the mirrored image in one tile. Tiled: tiles of side ``tile`` (outputs
    tile − 40), several per axis. Float64, so only summation order can differ."""
    geometry = geometry_of(valid_unet)
    image = np.random.default_rng(height).random((height, width))
    whole = predict_probabilities(valid_unet, image, geometry, tile=10_000)
    assert plan_axis(height, geometry, 10_000).starts == (0,)
    assert len(plan_axis(max(height, width), geometry, tile).starts) > 1
    tiled = predict_probabilities(valid_unet, image, geometry, tile=tile)
    assert whole.shape == tiled.shape == (2, height, width)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(whole.sum(0), 1.0)


def test_the_mirrored_border_is_what_the_network_sees(valid_unet: torch.nn.Module) -> None:
    """One tile: the prediction equals the network's output on the reflect-padded image."""
    geometry = geometry_of(valid_unet)
    image = np.random.default_rng(9).random((12, 12))
    padded = np.pad(image, ((20, 24), (20, 24)), mode="reflect")  # 56 → output 16
    with torch.no_grad():
        logits = valid_unet(torch.from_numpy(padded)[None, None])[0, :, :12, :12]
    expected = torch.softmax(logits, 0).numpy()
    np.testing.assert_allclose(predict_probabilities(valid_unet, image, geometry, 10_000), expected)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 700),
    geometry=st.sampled_from(
        [Geometry(92, 16, 4), Geometry(20, 4, 2), Geometry(0, 16), Geometry(0, 8)]
    ),
    tile=st.integers(150, 700),
)
def test_tile_plans_cover_the_image_on_the_pooling_grid(
    length: int, geometry: Geometry, tile: int
) -> None:
    try:
        plan = plan_axis(length, geometry, tile)
    except ValueError:
        assert tile < smallest_tile(geometry) and length > tile - 2 * geometry.margin
        return
    assert tile >= smallest_tile(geometry) or len(plan.starts) == 1
    assert plan.starts[0] == 0 and plan.starts[-1] + plan.out >= length
    assert all(b - a <= plan.out for a, b in zip(plan.starts, plan.starts[1:], strict=False))
    assert all(s % geometry.multiple == 0 for s in plan.starts)
    assert len(plan.starts) == 1 or plan.tile <= tile
    if geometry.valid:
        assert geometry.output_for(plan.tile) == plan.out
    padded = plan.before + length + plan.after
    assert padded == plan.starts[-1] + plan.tile  # the last tile ends at the padded edge


def test_smallest_tiles() -> None:
    assert smallest_tile(Geometry(92, 16, 4)) == 204  # output 20 ≥ one 16-pixel step
    assert smallest_tile(Geometry(0, 16)) == 2 * 32 + 16


def test_a_padded_network_predicts_the_whole_image_in_one_pass() -> None:
    torch.manual_seed(1)
    model = create_model("unet_same", base_channels=4, depth=2, in_channels=1).eval()
    geometry = geometry_of(model)
    assert geometry == Geometry(0, 4)
    image = np.random.default_rng(3).random((40, 36)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(image)[None, None])[0], 0).numpy()
    np.testing.assert_allclose(predict_probabilities(model, image, geometry, 1024), expected,
                               atol=1e-6)  # fmt: skip


def test_orientations_are_the_eight_symmetries_of_a_square() -> None:
    image = np.arange(12.0).reshape(3, 4)
    moved = {np.rot90(image[:, ::-1] if m else image, t).tobytes() for t, m in orientations()}
    assert len(orientations()) == 8 and len(moved) == 8


def test_oriented_prediction_is_mapped_back_to_the_image() -> None:
    """Oracle: the whole image through the network in torch, turned and mirrored with
    torch's own rot90/flip, then turned back — against the tiled NumPy path."""
    torch.manual_seed(1)
    model = create_model("unet_same", base_channels=2, depth=2, in_channels=1).double().eval()
    image = np.random.default_rng(0).random((24, 36))  # not square, not symmetric
    geometry = geometry_of(model)
    x = torch.from_numpy(image)[None, None]
    expected = []
    for turns, mirror in orientations():
        moved = torch.rot90(x, turns, dims=(-2, -1))
        moved = moved.flip(-1) if mirror else moved
        with torch.no_grad():
            p = model(moved).softmax(1)
        p = p.flip(-1) if mirror else p
        p = torch.rot90(p, -turns, dims=(-2, -1))[0].numpy()
        got = predict_oriented(model, image, geometry, 1024, (turns, mirror))
        np.testing.assert_allclose(got, p, rtol=0, atol=1e-12)
        expected.append(p)
    averaged = predict_averaged(model, image, geometry, 1024)
    np.testing.assert_allclose(averaged, np.mean(expected, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(expected[0], expected[1])  # the orientations really differ
    plain = predict_averaged(model, image, geometry, 1024, averaged=False)
    np.testing.assert_array_equal(plain, predict_probabilities(model, image, geometry, 1024))
