"""The cascading randomisation test: Spearman's ρ against scipy, the cascade's order and
bookkeeping, and that a map which ignores the model passes through with ρ = 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from convlens.interpret.maps import METHODS, Method, compute_maps
from convlens.interpret.methods import MethodOptions
from convlens.interpret.sanity import (
    average_ranks,
    cascading_randomisation,
    reinitialise,
    spearman,
    top_down_layers,
)
from tests.interpret.models import tiny_bn_cnn, tiny_cnn

# Few distinct values, so ties are common.
tied = arrays(np.float64, st.integers(2, 40), elements=st.integers(-3, 3).map(float))


@given(tied)
def test_average_ranks_match_scipy(values: np.ndarray) -> None:
    np.testing.assert_allclose(average_ranks(values), stats.rankdata(values))


@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(*(arrays(np.float64, n, elements=st.integers(-3, 3).map(float)),) * 2)
    )
)
def test_spearman_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    expected = stats.spearmanr(a, b).statistic if np.ptp(a) and np.ptp(b) else np.nan
    mine = spearman(a, b)
    if np.isnan(expected):
        assert np.isnan(mine)
    else:
        assert mine == pytest.approx(expected, abs=1e-12)


def test_top_down_order_is_the_reverse_of_the_forward_run() -> None:
    # Sequential: 0 conv, 1 bn, 2 relu, 3 pool, 4 conv, 5 tanh, 6 flatten, 7 linear
    assert top_down_layers(tiny_bn_cnn(), (8, 8)) == ["7", "4", "1", "0"]
    assert top_down_layers(tiny_cnn(), (8, 8)) == ["head", "features.2", "features.0"]


def test_reinitialise_is_seeded_and_changes_only_that_layer() -> None:
    a, b = tiny_bn_cnn(), tiny_bn_cnn()
    before = {k: v.clone() for k, v in a.state_dict().items()}
    reinitialise(a[4], seed=3)
    reinitialise(b[4], seed=3)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key])
        changed = not torch.equal(value, before[key])
        assert changed == key.startswith("4."), key


def test_cascade_bookkeeping() -> None:
    model = tiny_bn_cnn()
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    options = MethodOptions(layer="4", samples=3, steps=4)
    methods = ["saliency", "gradcam", "smoothgrad"]
    result = cascading_randomisation(model, x, methods, options, seed=1)
    assert result.stages == ("7", "4", "1", "0")
    assert result.correlations.shape == (3, 4, 3)
    assert result.example_maps.shape == (3, 5, 8, 8)
    # The trained model is untouched, and its maps are the first column of the examples.
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key])
    targets = torch.from_numpy(result.targets)
    with torch.no_grad():
        assert torch.equal(targets, model(x).argmax(1))
    for k, method in enumerate(methods):
        first = compute_maps(model, x[:1], targets[:1], method, options)[0].numpy()
        np.testing.assert_allclose(result.example_maps[k, 0], first, rtol=1e-6)
    # The same seed gives the same numbers.
    again = cascading_randomisation(model, x, methods, options, seed=1)
    np.testing.assert_array_equal(again.correlations, result.correlations)


def test_a_map_that_ignores_the_model_keeps_rank_correlation_one(monkeypatch) -> None:
    """An edge detector on the image (Adebayo et al.'s counter-example) passes through the
    cascade unchanged: ρ = 1 at every step."""

    def edges(model, x, target, options):
        grey = torch.nn.functional.pad(x.mean(dim=1), (1, 1, 1, 1), mode="replicate")
        return (grey[:, 2:, 2:] - grey[:, :-2, :-2]).abs()  # (N, H, W)

    monkeypatch.setitem(METHODS, "edges", Method("edges", edges, False, False, "test"))
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    result = cascading_randomisation(tiny_cnn(), x, ["edges", "saliency"], MethodOptions())
    np.testing.assert_allclose(result.correlations[0], 1.0)
    assert result.mean()[1, -1] < 0.99  # saliency does change once every layer is random
