"""Textbook exercises through the Python API, with expectations computed by torch.

Each test also checks that the worked steps add up to the numbers reported, and that
the windows they show are the right slices of the (independently) padded input.
"""

# (I001 is silenced: with tests/torch/ in ruff's `src`, ruff takes `import torch` as first-party.)
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convlens import reference
from convlens.reference import explain as ex

IMAGE_R = np.arange(1, 17, dtype=float).reshape(4, 4)
IMAGE_G = np.array([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
IMAGE_B = np.full((4, 4), 2.0)
RGB = np.stack([IMAGE_R, IMAGE_G, IMAGE_B])  # (3, 4, 4)
SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=float)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=float))


def torch_textbook_conv(image: np.ndarray, kernel: np.ndarray, **kw: object) -> np.ndarray:
    """The textbook rule in torch: one filter per channel, channel results summed."""
    c = image.shape[0]
    weight = np.broadcast_to(kernel, (1, c, *kernel.shape))
    return F.conv2d(t(image)[None], t(weight), **kw)[0, 0].numpy()


def check_conv_steps(worked: reference.Worked, x_padded: np.ndarray) -> None:
    """Every output element: channel totals are Σ window ⊙ filter, and sum to the output."""
    assert worked.complete and len(worked.steps) == worked.output.size
    first = worked.steps[0].channels[0]  # type: ignore[union-attr]
    top, left = -first.rows[0], -first.cols[0]  # y[0, 0]'s window starts at (−top, −left)
    for step in worked.steps:
        assert isinstance(step, ex.ConvStep)
        for work in step.channels:
            assert work.total == pytest.approx(float(work.products.sum()), abs=1e-12)
            # the window is the padded input at the rows/cols the step names
            rows = [r + top for r in work.rows]
            cols = [c + left for c in work.cols]
            np.testing.assert_array_equal(work.window, x_padded[work.channel][np.ix_(rows, cols)])
        total = sum(w.total for w in step.channels) + (step.bias or 0.0)
        assert total == pytest.approx(step.value, abs=1e-12)
        assert step.value == worked.output[step.batch, step.out_channel, step.row, step.col]


def test_multichannel_valid_3x3() -> None:
    worked = reference.conv2d(RGB, SOBEL, explain=True)
    expected = torch_textbook_conv(RGB, SOBEL)
    np.testing.assert_allclose(worked.output[0, 0], expected, atol=1e-12)
    assert worked.output.shape == (1, 1, 2, 2)
    check_conv_steps(worked, RGB)
    # per-channel results are each channel alone, and add up to the output
    for c in range(3):
        alone = F.conv2d(t(RGB[c])[None, None], t(SOBEL)[None, None])[0, 0].numpy()
        np.testing.assert_allclose(worked.per_channel[c][0, 0], alone, atol=1e-12)
    np.testing.assert_allclose(sum(worked.per_channel), worked.output, atol=1e-12)
    # without explain the result comes back in the caller's layout (one output channel)
    np.testing.assert_allclose(reference.conv2d(RGB, SOBEL), expected[None], atol=1e-12)


def test_multichannel_zero_padded_3x3_with_bias() -> None:
    worked = reference.conv2d(RGB, np.ones((3, 3)), bias=0.5, padding=1, explain=True)
    expected = torch_textbook_conv(RGB, np.ones((3, 3)), padding=1) + 0.5
    np.testing.assert_allclose(worked.output[0, 0], expected, atol=1e-12)
    # corner: only the 2×2 inside the image counts in each channel
    corner = sum(RGB[c, :2, :2].sum() for c in range(3)) + 0.5
    assert worked.output[0, 0, 0, 0] == corner
    check_conv_steps(worked, np.pad(RGB, ((0, 0), (1, 1), (1, 1))))


def test_dilated_3x3() -> None:
    image = np.arange(36, dtype=float).reshape(6, 6)
    worked = reference.conv2d(image, SOBEL, dilation=2, explain=True)
    expected = F.conv2d(t(image)[None, None], t(SOBEL)[None, None], dilation=2)[0, 0].numpy()
    assert worked.output.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(worked.output[0, 0], expected, atol=1e-12)
    first = worked.steps[0].channels[0]  # type: ignore[union-attr]
    assert first.rows == (0, 2, 4) and first.cols == (0, 2, 4)  # every other pixel
    check_conv_steps(worked, image[None])


def test_stride_2_that_does_not_divide() -> None:
    image = np.arange(1, 50, dtype=float).reshape(7, 7)  # (7 − 3) / 2 + 1 = 3; 6×6 needs ⌊⌋
    kernel = np.array([[1, 2, 0], [0, 1, 0], [-1, 0, 1]], dtype=float)
    for size in (6, 7):
        x = image[:size, :size]
        worked = reference.conv2d(x, kernel, stride=2, explain=True)
        expected = F.conv2d(t(x)[None, None], t(kernel)[None, None], stride=2)[0, 0].numpy()
        assert worked.output.shape[2:] == expected.shape == ((size - 3) // 2 + 1,) * 2
        np.testing.assert_allclose(worked.output[0, 0], expected, atol=1e-12)
        check_conv_steps(worked, x[None])
    # with 6×6 the last row and column are never read, so they get no gradient
    grads = reference.run("conv2d", image[:6, :6], kernel, grad_output=np.ones((2, 2)), stride=2)
    assert not grads.grads["input"][0, 0, 5].any() and not grads.grads["input"][0, 0, :, 5].any()


@pytest.mark.parametrize("stride", [1, 2])
def test_transposed_2x2(stride: int) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    worked = reference.conv_transpose2d(x, w, stride=stride, explain=True)
    expected = F.conv_transpose2d(t(x)[None, None], t(w)[None, None], stride=stride)[0, 0].numpy()
    np.testing.assert_allclose(worked.output[0, 0], expected, atol=1e-12)
    if stride == 1:
        assert expected.tolist() == [[1, 4, 4], [6, 20, 16], [9, 24, 16]]
    # the scaled copies, placed where the steps say, rebuild the output
    rebuilt = np.zeros_like(worked.output)
    for step in worked.steps:
        assert isinstance(step, ex.ScatterStep)
        np.testing.assert_array_equal(step.copy, x[step.row, step.col] * w)
        assert step.rows[0] == step.row * stride and step.cols[0] == step.col * stride
        rebuilt[step.batch, step.target_channel][np.ix_(step.rows, step.cols)] += step.copy
    np.testing.assert_allclose(rebuilt, worked.output, atol=1e-12)


def test_max_pool_2x2_and_gradient_routing_with_ties() -> None:
    x = np.array([[1, 3, 2, 1], [4, 4, 0, 1], [5, 1, 2, 2], [1, 0, 2, 1]], dtype=float)
    grad = np.array([[1.0, 2.0], [3.0, 4.0]])
    worked = reference.run("max_pool2d", x, grad_output=grad, kernel_size=2)
    tx = t(x)[None, None].requires_grad_()
    ty, indices = F.max_pool2d(tx, 2, return_indices=True)
    ty.backward(t(grad)[None, None])
    np.testing.assert_array_equal(worked.output[0, 0], ty.detach().numpy()[0, 0])
    np.testing.assert_array_equal(worked.grads["input"][0, 0], tx.grad.numpy()[0, 0])
    # ties: [1 3; 4 4] → the first 4 (row 1, col 0); [2 2; 2 1] → the first 2 (row 2, col 2)
    args = [s.arg for s in worked.steps]  # type: ignore[union-attr]
    assert args == [(1, 0), (0, 2), (2, 0), (2, 2)]
    assert [r * 4 + c for r, c in args] == indices.flatten().tolist()
    for step in worked.steps:
        assert isinstance(step, ex.PoolStep)
        assert step.value == step.window.max() == x[step.arg]
    # routing: each gradient to its arg-max, nothing elsewhere
    routed = np.zeros_like(x)
    for route in worked.backward_steps:
        assert isinstance(route, ex.RouteStep) and len(route.targets) == 1
        r, c, amount = route.targets[0]
        assert amount == route.grad
        routed[r, c] += amount
    np.testing.assert_array_equal(routed, worked.grads["input"][0, 0])
    assert routed.tolist() == [[0, 0, 2, 0], [1, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]


def test_overlapping_max_pool_adds_gradients() -> None:
    x = np.array([[1, 3, 2], [4, 9, 0], [5, 1, 2]], dtype=float)
    worked = reference.run("max_pool2d", x, grad_output=np.ones((2, 2)), kernel_size=2, stride=1)
    assert worked.grads["input"][0, 0].tolist() == [[0, 0, 0], [0, 4, 0], [0, 0, 0]]


def test_avg_pool_steps_and_routes_add_up() -> None:
    x = np.arange(25, dtype=float).reshape(5, 5)
    grad = np.arange(9, dtype=float).reshape(3, 3)
    worked = reference.run(
        "avg_pool2d",
        x,
        grad_output=grad,
        kernel_size=3,
        stride=2,
        padding=1,
        ceil_mode=True,
        count_include_pad=False,
    )
    tx = t(x)[None, None].requires_grad_()
    ty = F.avg_pool2d(tx, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    ty.backward(t(grad)[None, None])
    np.testing.assert_allclose(worked.output[0, 0], ty.detach().numpy()[0, 0], atol=1e-12)
    for step in worked.steps:
        assert isinstance(step, ex.PoolStep)
        assert step.total is not None and step.divisor is not None
        assert step.total / step.divisor == pytest.approx(step.value, abs=1e-12)
    routed = np.zeros_like(x)
    for route in worked.backward_steps:
        for r, c, amount in route.targets:  # type: ignore[union-attr]
            routed[r, c] += amount
    np.testing.assert_allclose(routed, tx.grad.numpy()[0, 0], atol=1e-12)


def test_conv_backward_steps_add_up_to_the_gradients() -> None:
    x = RGB[:2]
    grad = np.array([[1.0, -1.0], [0.5, 2.0]])
    worked = reference.run("conv2d", x, SOBEL, bias=1.0, grad_output=grad)
    scatter = [s for s in worked.backward_steps if isinstance(s, ex.ScatterStep)]
    weight_steps = [s for s in worked.backward_steps if isinstance(s, ex.WeightGradStep)]
    rebuilt = np.zeros((2, 4, 4))
    for s in scatter:
        rebuilt[s.target_channel][np.ix_(s.rows, s.cols)] += s.copy
    np.testing.assert_allclose(rebuilt, worked.grads["input"][0], atol=1e-12)
    for s in weight_steps:
        np.testing.assert_allclose(s.total, worked.grads["weight"][s.out_channel, s.in_channel])
    tx = t(x)[None].requires_grad_()
    tw = t(np.broadcast_to(SOBEL, (1, 2, 3, 3))).requires_grad_()
    tb = t([1.0]).requires_grad_()
    F.conv2d(tx, tw, tb).backward(t(grad)[None, None])
    np.testing.assert_allclose(worked.grads["weight"], tw.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(worked.grads["bias"], tb.grad.numpy(), atol=1e-12)


@settings(max_examples=60)
@given(
    st.integers(1, 3),
    st.integers(3, 6),
    st.integers(3, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(1, 2),
    st.integers(1, 2),
    st.booleans(),
    st.integers(0, 999),
)
def test_conv_steps_add_up_for_random_problems(
    c: int,
    h: int,
    w: int,
    kh: int,
    kw: int,
    pad: int,
    stride: int,
    dilation: int,
    bias: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (c, h, w)).astype(float)
    k = rng.integers(-2, 3, (c, kh, kw)).astype(float)
    # a kernel wider than the padded input has no output: not a problem to work
    assume(
        h + 2 * pad - dilation * (kh - 1) - 1 >= 0 and w + 2 * pad - dilation * (kw - 1) - 1 >= 0
    )
    worked = reference.conv2d(
        x,
        k,
        bias=1.5 if bias else None,
        stride=stride,
        padding=pad,
        dilation=dilation,
        explain=True,
    )
    expected = F.conv2d(t(x)[None], t(k)[None], t([1.5]) if bias else None, stride, pad, dilation)
    np.testing.assert_allclose(worked.output, expected.numpy(), atol=1e-12)
    assert worked.complete == ex.is_small(worked.output.shape)
    if worked.complete:
        check_conv_steps(worked, np.pad(x, ((0, 0), (pad, pad), (pad, pad))))


def test_large_problem_gives_no_steps() -> None:
    worked = reference.conv2d(np.ones((20, 20)), np.ones((3, 3)), explain=True)
    assert worked.steps == () and not worked.complete
    assert worked.output.shape == (1, 1, 18, 18)


def test_upsample_shows_interpolation_weights() -> None:
    worked = reference.run("upsample", [[1.0, 2.0], [3.0, 4.0]], scale_factor=2, mode="bilinear")
    rows, cols = worked.inputs["rows"], worked.inputs["cols"]
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)  # each output row is a convex mix
    np.testing.assert_allclose(
        rows @ np.array([[1.0, 2.0], [3.0, 4.0]]) @ cols.T, worked.output[0, 0]
    )


def test_conv_transpose_backward_steps_add_up_to_the_gradients() -> None:
    x = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [2.0, 1.0]]])  # 2 input channels
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    worked = reference.run(
        "conv_transpose2d",
        x,
        w,
        grad_output=np.arange(9.0).reshape(3, 3) - 4,
        stride=2,
        padding=1,
        output_padding=1,
    )
    inputs = [s for s in worked.backward_steps if isinstance(s, ex.ConvStep)]
    weights = [s for s in worked.backward_steps if isinstance(s, ex.WeightGradStep)]
    assert len(inputs) == x.size
    for step in inputs:
        for work in step.channels:
            assert work.total == pytest.approx(float(work.products.sum()), abs=1e-12)
        assert step.value == pytest.approx(
            worked.grads["input"][step.batch, step.out_channel, step.row, step.col], abs=1e-12
        )
    for step in weights:  # WeightGradStep(out_channel=o, in_channel=c) ↔ weight[c, o]
        np.testing.assert_allclose(
            step.total, worked.grads["weight"][step.in_channel, step.out_channel]
        )
    tx = t(x)[None].requires_grad_()
    tw = t(np.broadcast_to(w, (2, 1, 2, 2))).requires_grad_()
    F.conv_transpose2d(tx, tw, stride=2, padding=1, output_padding=1).backward(
        t(np.arange(9.0).reshape(3, 3) - 4)[None, None]
    )
    np.testing.assert_allclose(worked.grads["input"], tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(worked.grads["weight"], tw.grad.numpy(), atol=1e-12)


@settings(max_examples=60)
@given(
    st.integers(1, 2),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    st.integers(1, 2),
    st.integers(0, 999),
)
def test_transposed_copies_rebuild_the_output_for_random_problems(
    c: int, h: int, w: int, kh: int, kw: int, stride: int, pad: int, dilation: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (c, h, w)).astype(float)
    k = rng.integers(-2, 3, (c, kh, kw)).astype(float)
    full = [(s - 1) * stride + dilation * (q - 1) + 1 for s, q in ((h, kh), (w, kw))]
    assume(min(full) - 2 * pad >= 1)  # padding that crops the whole output away
    worked = reference.conv_transpose2d(
        x, k, stride=stride, padding=pad, dilation=dilation, explain=True
    )
    expected = F.conv_transpose2d(t(x)[None], t(k)[:, None], None, stride, pad, 0, 1, dilation)
    np.testing.assert_allclose(worked.output, expected.numpy(), atol=1e-12)
    assert worked.complete == ex.is_small(worked.output.shape)
    if not worked.complete:
        return  # a large output: the result and a summary, no steps
    _, _, ho, wo = worked.output.shape
    rebuilt = np.zeros_like(worked.output)
    for step in worked.steps:
        assert isinstance(step, ex.ScatterStep)
        for i, r in enumerate(step.rows):
            for j, col in enumerate(step.cols):
                if 0 <= r < ho and 0 <= col < wo:  # the rest falls in the cropped padding
                    rebuilt[step.batch, step.target_channel, r, col] += step.copy[i, j]
    np.testing.assert_allclose(rebuilt, worked.output, atol=1e-12)


@settings(max_examples=60)
@given(
    st.integers(2, 6),
    st.integers(2, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    st.booleans(),
    st.booleans(),
    st.integers(0, 999),
)
def test_pool_steps_add_up_for_random_problems(
    h: int, w: int, k: int, stride: int, pad: int, ceil_mode: bool, include_pad: bool, seed: int
) -> None:
    assume(2 * pad <= k and h + 2 * pad >= k and w + 2 * pad >= k)  # PyTorch's own limits
    x = np.random.default_rng(seed).integers(-2, 3, (2, h, w)).astype(float)
    grad_shape = reference.max_pool2d(x, k, stride, pad, ceil_mode=ceil_mode).shape
    grad = np.arange(np.prod(grad_shape), dtype=float).reshape(grad_shape)
    for name, extra in (("max_pool2d", {}), ("avg_pool2d", {"count_include_pad": include_pad})):
        worked = reference.run(
            name,
            x,
            grad_output=grad,
            kernel_size=k,
            stride=stride,
            padding=pad,
            ceil_mode=ceil_mode,
            **extra,
        )
        assert worked.complete and len(worked.steps) == worked.output.size
        for step in worked.steps:
            assert isinstance(step, ex.PoolStep)
            if name == "max_pool2d":
                assert step.arg is not None and x[step.channel][step.arg] == step.value
                assert step.value == step.window.max()
            else:
                assert step.total == step.window.sum()
                assert step.total / step.divisor == pytest.approx(step.value, abs=1e-12)
        routed = np.zeros_like(x)
        for route in worked.backward_steps:
            for r, c, amount in route.targets:  # type: ignore[union-attr]
                routed[route.channel, r, c] += amount  # type: ignore[union-attr]
        np.testing.assert_allclose(routed, worked.grads["input"][0], atol=1e-12)


def routed_gradient(worked: reference.Worked) -> np.ndarray:
    """Σ of the amounts the backward steps send to each input cell, (N, C, H, W)."""
    routed = np.zeros(worked.inputs["input"].shape)
    for route in worked.backward_steps:
        assert isinstance(route, ex.RouteStep)
        for r, c, amount in route.targets:
            routed[route.batch, route.channel, r, c] += amount
    return routed


@settings(max_examples=60)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 7),
    st.integers(1, 7),
    st.sampled_from(["nearest", "bilinear", "bilinear-align"]),
    st.integers(0, 999),
)
def test_upsample_steps_add_up_for_random_problems(
    h: int, w: int, ho: int, wo: int, mode: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (2, h, w)).astype(float)
    grad = rng.integers(-3, 4, (2, ho, wo)).astype(float)
    align = mode == "bilinear-align"
    worked = reference.run(
        "upsample",
        x,
        grad_output=grad,
        size=(ho, wo),
        mode=mode.split("-")[0],
        align_corners=align,
    )
    assert worked.complete and len(worked.steps) == worked.output.size
    for step in worked.steps:
        assert isinstance(step, ex.InterpStep)
        if mode == "nearest":
            assert len(step.terms) == 1 and step.terms[0][2] == 1.0
        assert sum(weight for _, _, weight, _ in step.terms) == pytest.approx(1.0)
        for i, j, _, value in step.terms:
            assert value == x[step.channel, i, j]
        total = sum(weight * value for _, _, weight, value in step.terms)
        assert total == pytest.approx(step.value, abs=1e-12)
        assert step.value == worked.output[step.batch, step.channel, step.row, step.col]
    for route, step in zip(worked.backward_steps, worked.steps, strict=True):
        assert isinstance(route, ex.RouteStep)
        g = grad[route.channel, route.row, route.col]
        assert [a for _, _, a in route.targets] == [g * wt for _, _, wt, _ in step.terms]
    np.testing.assert_allclose(routed_gradient(worked), worked.grads["input"], atol=1e-12)


def test_global_avg_pool_steps_add_up() -> None:
    x = np.arange(18.0).reshape(2, 3, 3)
    worked = reference.run("global_avg_pool", x, grad_output=[[[3.0]], [[-9.0]]])
    assert worked.complete and len(worked.steps) == 2
    for step in worked.steps:
        assert isinstance(step, ex.PoolStep)
        np.testing.assert_array_equal(step.window, x[step.channel])
        assert (step.total, step.divisor) == (x[step.channel].sum(), 3 * 3)
        assert step.value == step.total / step.divisor == worked.output[0, step.channel, 0, 0]
    assert worked.backward_steps[1].targets[0] == (0, 0, -9.0 / 9)  # type: ignore[union-attr]
    np.testing.assert_allclose(routed_gradient(worked), worked.grads["input"], atol=1e-12)


def test_relu_steps_and_where_the_gradient_goes() -> None:
    x = np.array([[[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]]])
    grad = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    worked = reference.run("relu", x, grad_output=grad)
    assert worked.complete and len(worked.steps) == x.size
    for step in worked.steps:
        assert isinstance(step, ex.ReluStep)
        assert step.value == max(step.x, 0.0) == worked.output[0, 0, step.row, step.col]
    for route in worked.backward_steps:
        assert isinstance(route, ex.RouteStep)
        passes = x[0, route.row, route.col] > 0  # nothing at x = 0
        assert route.targets == (((route.row, route.col, route.grad),) if passes else ())
    np.testing.assert_allclose(routed_gradient(worked), [[[[0, 0, 3], [4, 0, 0]]]])
    np.testing.assert_allclose(worked.grads["input"], [[[[0, 0, 3], [4, 0, 0]]]])


def test_linear_steps_add_up() -> None:
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), rng.normal(size=2)
    worked = reference.run("linear", x, w, b)
    assert worked.complete and len(worked.steps) == 3 * 2
    for step in worked.steps:
        assert isinstance(step, ex.DotStep)
        np.testing.assert_array_equal(step.x, x[step.row])
        np.testing.assert_array_equal(step.weight, w[step.out_feature])
        total = step.products.sum() + (step.bias or 0.0)
        assert total == pytest.approx(step.value, abs=1e-12)
        assert step.value == worked.result[step.row, step.out_feature]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_steps_add_up(training: bool) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 3))  # (C, H, W)
    stats = {"running_mean": [0.5, -1.0], "running_var": [2.0, 0.5]}
    worked = reference.run("batch_norm", x, [2.0, 0.5], [0.0, 1.0], training=training, **stats)  # type: ignore[arg-type]
    assert worked.complete and len(worked.steps) == 2
    for step in worked.steps:
        assert isinstance(step, ex.NormStep)
        np.testing.assert_array_equal(step.values, x[step.channel].ravel())
        if training:
            assert step.mean == pytest.approx(step.values.mean())
            assert step.var == pytest.approx(((step.values - step.mean) ** 2).mean())
        else:
            assert (step.mean, step.var) == (
                stats["running_mean"][step.channel],
                stats["running_var"][step.channel],
            )
        np.testing.assert_allclose(step.scale * step.values + step.shift, step.outputs)
        np.testing.assert_allclose(step.outputs, worked.output[0, step.channel].ravel())


def test_large_channelwise_problems_give_a_summary() -> None:
    worked = reference.run("relu", np.ones((10, 10)))
    assert worked.steps == () and not worked.complete
    assert "working not shown: 100 outputs" in reference.render(worked)
