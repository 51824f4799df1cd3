"""Every reference operator against torch.nn.functional and autograd, in float64.

Hypothesis draws shapes and hyper-parameters; forward results must agree within 1e-10
and every gradient must agree with torch autograd for a random upstream gradient.
"""

# (I001 is silenced: with tests/torch/ in ruff's `src`, ruff takes `import torch` as first-party.)
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convlens.reference import conv
from convlens.reference.conv import conv2d_backward, conv2d_forward
from convlens.reference.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from convlens.reference.misc import (
    batch_norm_backward,
    batch_norm_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    upsample_backward,
    upsample_forward,
)
from convlens.reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

ATOL = 1e-10


def close(ours: np.ndarray | None, theirs: torch.Tensor | None) -> None:
    assert ours is not None and theirs is not None
    expected = theirs.detach().numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def leaf(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, torch.Tensor]:
    array = rng.standard_normal(shape)
    return array, torch.tensor(array, requires_grad=True)


def backprop(y: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """Send a random upstream gradient through torch; return it for our backward."""
    grad = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(grad))
    return grad


pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 3))
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    dilation = draw(pairs)
    style = draw(st.sampled_from(["int", "pair", "asym", "same", "valid"]))
    stride = (1, 1) if style == "same" else draw(pairs)
    if style == "int":
        padding: object = draw(st.integers(0, 3))
        pads = (padding,) * 4
    elif style == "pair":
        padding = draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
        pads = (padding[0], padding[0], padding[1], padding[1])  # type: ignore[index]
    elif style == "asym":
        padding = draw(
            st.tuples(
                st.tuples(st.integers(0, 3), st.integers(0, 3)),
                st.tuples(st.integers(0, 3), st.integers(0, 3)),
            )
        )
        pads = (*padding[0], *padding[1])  # type: ignore[index]
    else:
        padding, pads = style, (0, 0, 0, 0)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    # smallest input the kernel fits (ignoring padding for 'same', which always fits)
    low_h = 1 if style == "same" else max(1, span[0] - pads[0] - pads[1])
    low_w = 1 if style == "same" else max(1, span[1] - pads[2] - pads[3])
    return dict(
        n=draw(st.integers(1, 2)),
        c=groups * draw(st.integers(1, 3)),
        o=groups * draw(st.integers(1, 3)),
        h=low_h + draw(st.integers(0, 5)),
        w=low_w + draw(st.integers(0, 5)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=150)
@given(conv_cases())
def test_conv2d_matches_torch(case: dict) -> None:
    check_conv2d(case)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=60)
@given(conv_cases())
def test_conv2d_tap_by_tap_path_matches_torch(case: dict) -> None:
    """Few channels take the im2col path; force the per-tap path (used from 16 channels)."""
    with mock.patch.object(conv, "THIN_CHANNELS", 0):
        check_conv2d(case)


def test_conv2d_wide_channels_matches_torch() -> None:
    for seed, (c, groups, stride, padding, dilation) in enumerate(
        [(32, 1, 1, 1, 1), (32, 2, 2, ((0, 1), (2, 0)), 1), (48, 3, (1, 2), 2, 2)]
    ):
        case = dict(
            n=2,
            c=c,
            o=6,
            h=9,
            w=8,
            kernel=(3, 2),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=True,
            seed=seed,
        )
        check_conv2d(case)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=30)
@given(conv_cases(), st.integers(1, 5), st.booleans())
def test_depthwise_conv2d_matches_torch(case: dict, channels: int, unit_stride: bool) -> None:
    """One filter per channel (groups = C = O): stride 1 takes the flattened-shift path."""
    case = dict(case, c=channels, o=channels, groups=channels)
    if unit_stride or case["padding"] == "same":
        case["stride"] = (1, 1)
    check_conv2d(case)


@pytest.mark.parametrize("padding", [0, 1, ((2, 0), (1, 3))])
def test_depthwise_conv2d_float32_keeps_dtype(padding: object) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 9, 7)).astype(np.float32)
    w = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    out, _ = conv2d_forward(x, w, b, 1, padding, (2, 1), 5)
    tx = torch.tensor(x)
    if isinstance(padding, tuple):
        (top, bottom), (left, right) = padding
        tx, padding = F.pad(tx, (left, right, top, bottom)), 0
    expected = F.conv2d(tx, torch.tensor(w), torch.tensor(b), 1, padding, (2, 1), 5)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)


def check_conv2d(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x, tx = leaf(rng, (case["n"], case["c"], case["h"], case["w"]))
    w, tw = leaf(rng, (case["o"], case["c"] // case["groups"], *case["kernel"]))
    b, tb = leaf(rng, (case["o"],)) if case["bias"] else (None, None)
    padding = case["padding"]
    out, cache = conv2d_forward(x, w, b, case["stride"], padding, case["dilation"], case["groups"])
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):  # asymmetric: pad first
        (top, bottom), (left, right) = padding
        tx_in, padding = F.pad(tx, (left, right, top, bottom)), 0
    else:
        tx_in = tx
    ty = F.conv2d(tx_in, tw, tb, case["stride"], padding, case["dilation"], case["groups"])
    close(out, ty)
    grads = conv2d_backward(backprop(ty, rng), cache)
    close(grads.input, tx.grad)
    close(grads.weight, tw.grad)
    if case["bias"]:
        close(grads.bias, tb.grad)
    else:
        assert grads.bias is None


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 3))
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    stride, dilation = draw(pairs), draw(pairs)
    output_padding = tuple(
        draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
    )
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    full = [
        (size - 1) * s + d * (k - 1) + 1 + op
        for size, s, d, k, op in zip((h, w), stride, dilation, kernel, output_padding, strict=True)
    ]
    padding = tuple(draw(st.integers(0, (f - 1) // 2)) for f in full)
    return dict(
        n=draw(st.integers(1, 2)),
        c=groups * draw(st.integers(1, 3)),
        o_g=draw(st.integers(1, 3)),
        h=h,
        w=w,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=150)
@given(conv_transpose_cases())
def test_conv_transpose2d_matches_torch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x, tx = leaf(rng, (case["n"], case["c"], case["h"], case["w"]))
    w, tw = leaf(rng, (case["c"], case["o_g"], *case["kernel"]))
    b, tb = leaf(rng, (case["o_g"] * case["groups"],)) if case["bias"] else (None, None)
    args = (
        case["stride"],
        case["padding"],
        case["output_padding"],
        case["groups"],
        case["dilation"],
    )
    out, cache = conv_transpose2d_forward(x, w, b, *args)
    ty = F.conv_transpose2d(tx, tw, tb, *args)
    close(out, ty)
    grads = conv_transpose2d_backward(backprop(ty, rng), cache)
    close(grads.input, tx.grad)
    close(grads.weight, tw.grad)
    if case["bias"]:
        close(grads.bias, tb.grad)


@st.composite
def pool_cases(draw: st.DrawFn, dilated: bool) -> dict:
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), pairs))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = draw(pairs) if dilated else (1, 1)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    return dict(
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 3)),
        h=max(1, span[0] - 2 * padding[0]) + draw(st.integers(0, 6)),
        w=max(1, span[1] - 2 * padding[1]) + draw(st.integers(0, 6)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        integers=draw(st.booleans()),  # small integers make ties in most windows
        seed=draw(st.integers(0, 2**16)),
    )


def pool_input(case: dict, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
    shape = (case["n"], case["c"], case["h"], case["w"])
    x = (
        rng.integers(-2, 3, shape).astype(np.float64)
        if case["integers"]
        else rng.standard_normal(shape)
    )
    return x, torch.tensor(x, requires_grad=True)


@given(pool_cases(dilated=True))
def test_max_pool2d_matches_torch_with_ties(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x, tx = pool_input(case, rng)
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    out, cache = max_pool2d_forward(x, *args)
    assume(np.isfinite(out).all())  # a dilated window of padding only: torch's index is garbage
    ty, indices = F.max_pool2d(tx, *args, return_indices=True)
    close(out, ty)
    np.testing.assert_array_equal(cache.indices, indices.numpy())  # same arg-max, ties included
    close(max_pool2d_backward(backprop(ty, rng), cache), tx.grad)


@pytest.mark.parametrize("seed", range(5))
def test_max_pool2d_nan_like_torch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 2, 6, 6)).astype(np.float64)
    x[rng.random(x.shape) < 0.2] = np.nan  # windows with zero, one and several NaNs
    out, cache = max_pool2d_forward(x, 3, 1, 1)
    tx = torch.tensor(x, requires_grad=True)
    ty, indices = F.max_pool2d(tx, 3, 1, 1, return_indices=True)
    np.testing.assert_array_equal(np.isnan(out), torch.isnan(ty).numpy())
    np.testing.assert_array_equal(cache.indices, indices.numpy())
    grad = rng.standard_normal(out.shape)
    ty.backward(torch.tensor(grad))
    np.testing.assert_allclose(max_pool2d_backward(grad, cache), tx.grad.numpy(), atol=ATOL)


@given(pool_cases(dilated=False))
def test_avg_pool2d_matches_torch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x, tx = pool_input(case, rng)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"])
    out, cache = avg_pool2d_forward(x, *args, count_include_pad=case["count_include_pad"])
    ty = F.avg_pool2d(tx, *args, count_include_pad=case["count_include_pad"])
    close(out, ty)
    close(avg_pool2d_backward(backprop(ty, rng), cache), tx.grad)


shapes4 = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7))


@given(shapes4, st.integers(0, 2**16))
def test_global_avg_pool_matches_torch(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, tx = leaf(rng, shape)
    out, cache = global_avg_pool_forward(x)
    ty = F.adaptive_avg_pool2d(tx, 1)
    close(out, ty)
    close(global_avg_pool_backward(backprop(ty, rng), cache), tx.grad)


@given(
    shapes4,
    st.sampled_from(["nearest", "bilinear", "bilinear-corners"]),
    st.one_of(
        st.tuples(st.integers(1, 12), st.integers(1, 12)).map(lambda s: {"size": s}),
        st.integers(1, 4).map(lambda s: {"scale_factor": s}),
        st.tuples(
            st.sampled_from([0.5, 1.3, 1.5, 2.0, 2.5, 3.0]), st.sampled_from([0.75, 1.0, 1.7, 2.0])
        ).map(lambda s: {"scale_factor": s}),
    ),
    st.integers(0, 2**16),
)
def test_upsample_matches_torch(shape: tuple[int, ...], mode: str, size: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, tx = leaf(rng, shape)
    corners = mode == "bilinear-corners"
    mode = "bilinear" if corners else mode
    extra = {"align_corners": corners} if mode == "bilinear" else {}
    if "scale_factor" in size and min(np.floor(np.array(shape[2:]) * size["scale_factor"])) < 1:
        return  # torch refuses an empty output too
    out, cache = upsample_forward(x, mode=mode, **size, **extra)
    ty = F.interpolate(tx, mode=mode, **size, **extra)
    close(out, ty)
    close(upsample_backward(backprop(ty, rng), cache), tx.grad)


@given(
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0.1, 0.3]),
    st.sampled_from([1e-5, 1e-2]),
    st.integers(0, 2**16),
)
def test_batch_norm_matches_torch(
    shape: tuple[int, ...], training: bool, affine: bool, momentum: float, eps: float, seed: int
) -> None:
    if training and shape[0] * shape[2] * shape[3] < 2:
        shape = (2, *shape[1:])
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, tx = leaf(rng, shape)
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    t_mean, t_var = torch.tensor(mean), torch.tensor(var)
    w, tw = leaf(rng, (c,)) if affine else (None, None)
    b, tb = leaf(rng, (c,)) if affine else (None, None)
    out, cache = batch_norm_forward(x, mean, var, w, b, training, momentum, eps)
    ty = F.batch_norm(tx, t_mean, t_var, tw, tb, training, momentum, eps)
    close(out, ty)
    close(cache.running_mean, t_mean)  # torch updates its running statistics in place
    close(cache.running_var, t_var)
    grads = batch_norm_backward(backprop(ty, rng), cache)
    close(grads.input, tx.grad)
    if affine:
        close(grads.weight, tw.grad)
        close(grads.bias, tb.grad)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.booleans(), st.integers(0, 2**16))
def test_relu_matches_torch(shape: list[int], zeros: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, shape).astype(np.float64) if zeros else rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    out, cache = relu_forward(x)
    ty = F.relu(tx)
    close(out, ty)
    close(relu_backward(backprop(ty, rng), cache), tx.grad)  # gradient 0 at x = 0


@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=2),
    st.integers(1, 6),
    st.integers(1, 6),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_linear_matches_torch(
    batch: list[int], in_features: int, out_features: int, bias: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, tx = leaf(rng, (*batch, in_features))
    w, tw = leaf(rng, (out_features, in_features))
    b, tb = leaf(rng, (out_features,)) if bias else (None, None)
    out, cache = linear_forward(x, w, b)
    ty = F.linear(tx, tw, tb)
    close(out, ty)
    grads = linear_backward(backprop(ty, rng), cache)
    close(grads.input, tx.grad)
    close(grads.weight, tw.grad)
    if bias:
        close(grads.bias, tb.grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype: type) -> None:
    x = np.ones((1, 2, 5, 5), dtype=dtype)
    w = np.ones((3, 2, 3, 3), dtype=dtype)
    out, _ = conv2d_forward(x, w)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.full((1, 3, 3, 3), 18, dtype=dtype))
