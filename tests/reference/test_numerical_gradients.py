"""Backward passes against central finite differences, independent of torch.

For L = Σ y ⊙ G with a random G, the analytic gradient must match
(L(θ + εV) − L(θ − εV)) / 2ε along random directions V, and, for a tiny convolution,
element by element.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from convlens.reference import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    batch_norm_backward,
    batch_norm_forward,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    linear_backward,
    linear_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
    upsample_backward,
    upsample_forward,
)

EPS = 1e-6


def directional_check(
    loss_of: Callable[[dict[str, np.ndarray]], float],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    rng: np.random.Generator,
    directions: int = 3,
) -> None:
    for name, value in params.items():
        for _ in range(directions):
            v = rng.standard_normal(value.shape)
            plus = {**params, name: value + EPS * v}
            minus = {**params, name: value - EPS * v}
            numeric = (loss_of(plus) - loss_of(minus)) / (2 * EPS)
            analytic = float((grads[name] * v).sum())
            assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-6), name


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "kw",
    [
        dict(stride=1, padding=0, dilation=1, groups=1),
        dict(stride=2, padding=1, dilation=1, groups=2),
        dict(stride=(1, 2), padding=((0, 2), (1, 0)), dilation=2, groups=1),
        dict(stride=1, padding="same", dilation=(1, 2), groups=4),
    ],
)
def test_conv2d_numerical(seed: int, kw: dict) -> None:
    rng = np.random.default_rng(seed)
    groups = kw["groups"]
    params = {
        "x": rng.standard_normal((2, 4, 7, 6)),
        "w": rng.standard_normal((4, 4 // groups, 3, 2)),
        "b": rng.standard_normal(4),
    }
    out, cache = conv2d_forward(params["x"], params["w"], params["b"], **kw)
    g = rng.standard_normal(out.shape)
    grads = conv2d_backward(g, cache)

    def loss(p: dict[str, np.ndarray]) -> float:
        return float((conv2d_forward(p["x"], p["w"], p["b"], **kw)[0] * g).sum())

    directional_check(loss, params, {"x": grads.input, "w": grads.weight, "b": grads.bias}, rng)


def test_conv2d_every_element_of_a_tiny_problem() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 2, 2))
    out, cache = conv2d_forward(x, w, stride=2, padding=1)
    g = rng.standard_normal(out.shape)
    grads = conv2d_backward(g, cache)
    for array, analytic in ((x, grads.input), (w, grads.weight)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + EPS
            up = (conv2d_forward(x, w, stride=2, padding=1)[0] * g).sum()
            array[index] = saved - EPS
            down = (conv2d_forward(x, w, stride=2, padding=1)[0] * g).sum()
            array[index] = saved
            numeric[index] = (up - down) / (2 * EPS)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "kw",
    [
        dict(stride=2, padding=0, output_padding=1, groups=1, dilation=1),
        dict(stride=(2, 3), padding=(1, 2), output_padding=(0, 2), groups=3, dilation=(1, 2)),
    ],
)
def test_conv_transpose2d_numerical(seed: int, kw: dict) -> None:
    rng = np.random.default_rng(seed)
    params = {
        "x": rng.standard_normal((2, 3, 4, 3)),
        "w": rng.standard_normal((3, 2, 3, 3)),
        "b": rng.standard_normal(2 * kw["groups"]),
    }
    out, cache = conv_transpose2d_forward(params["x"], params["w"], params["b"], **kw)
    g = rng.standard_normal(out.shape)
    grads = conv_transpose2d_backward(g, cache)

    def loss(p: dict[str, np.ndarray]) -> float:
        return float((conv_transpose2d_forward(p["x"], p["w"], p["b"], **kw)[0] * g).sum())

    directional_check(loss, params, {"x": grads.input, "w": grads.weight, "b": grads.bias}, rng)


def _single_input_check(
    forward: Callable[[np.ndarray], tuple[np.ndarray, object]],
    backward: Callable[[np.ndarray, object], np.ndarray],
    x: np.ndarray,
    rng: np.random.Generator,
) -> None:
    out, cache = forward(x)
    g = rng.standard_normal(out.shape)
    grad = backward(g, cache)
    directional_check(lambda p: float((forward(p["x"])[0] * g).sum()), {"x": x}, {"x": grad}, rng)


@pytest.mark.parametrize("seed", range(4))
def test_pooling_and_friends_numerical(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 7, 6))  # continuous values: no ties, so max is differentiable
    cases = [
        (lambda a: max_pool2d_forward(a, 3, 2, 1, 1, True), max_pool2d_backward),
        (lambda a: max_pool2d_forward(a, 2, 1, 0, 2, False), max_pool2d_backward),
        (lambda a: avg_pool2d_forward(a, 3, 2, 1, True, False), avg_pool2d_backward),
        (lambda a: avg_pool2d_forward(a, (2, 3), None, (1, 1), False, True), avg_pool2d_backward),
        (global_avg_pool_forward, global_avg_pool_backward),
        (lambda a: upsample_forward(a, scale_factor=1.5, mode="bilinear"), upsample_backward),
        (
            lambda a: upsample_forward(a, size=(9, 4), mode="bilinear", align_corners=True),
            upsample_backward,
        ),
        (lambda a: upsample_forward(a, scale_factor=2), upsample_backward),
        (relu_forward, relu_backward),
    ]
    for forward, backward in cases:
        _single_input_check(forward, backward, x.copy(), rng)  # type: ignore[arg-type]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_numerical(training: bool) -> None:
    rng = np.random.default_rng(1)
    params = {
        "x": rng.standard_normal((3, 2, 4, 4)),
        "w": rng.standard_normal(2),
        "b": rng.standard_normal(2),
    }
    mean, var = rng.standard_normal(2), rng.random(2) + 0.5

    def forward(p: dict[str, np.ndarray]) -> tuple[np.ndarray, object]:
        return batch_norm_forward(p["x"], mean, var, p["w"], p["b"], training, 0.1, 1e-5)

    out, cache = forward(params)
    g = rng.standard_normal(out.shape)
    grads = batch_norm_backward(g, cache)  # type: ignore[arg-type]
    directional_check(
        lambda p: float((forward(p)[0] * g).sum()),
        params,
        {"x": grads.input, "w": grads.weight, "b": grads.bias},
        rng,
    )


def test_linear_numerical() -> None:
    rng = np.random.default_rng(2)
    params = {
        "x": rng.standard_normal((2, 3, 5)),
        "w": rng.standard_normal((4, 5)),
        "b": rng.standard_normal(4),
    }
    out, cache = linear_forward(params["x"], params["w"], params["b"])
    g = rng.standard_normal(out.shape)
    grads = linear_backward(g, cache)
    directional_check(
        lambda p: float((linear_forward(p["x"], p["w"], p["b"])[0] * g).sum()),
        params,
        {"x": grads.input, "w": grads.weight, "b": grads.bias},
        rng,
    )


def test_a_wrong_backward_would_be_caught() -> None:
    """The check can fail: a gradient off by a little is rejected."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 4, 4))
    out, cache = avg_pool2d_forward(x, 2)
    g = rng.standard_normal(out.shape)
    wrong = avg_pool2d_backward(g, cache) * 1.01
    with pytest.raises(AssertionError):
        directional_check(
            lambda p: float((avg_pool2d_forward(p["x"], 2)[0] * g).sum()),
            {"x": x},
            {"x": wrong},
            rng,
        )
