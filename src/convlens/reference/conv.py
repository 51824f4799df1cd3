"""2-D convolution (cross-correlation, as in PyTorch) and its gradients.

    y[n, o, h, w] = b[o]
                  + Σ_{c,i,j} w[o, c, i, j] · x_pad[n, g·C_g + c, h·S_h + i·D_h, w·S_w + j·D_w]

where ``g`` is the group of output channel ``o`` and ``C_g = C / groups``. The sum over
input channels is a matrix product; we loop over the ``K_h·K_w`` kernel taps only, each
tap being one strided view of the padded input (no loop over pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convlens.errors import ArgumentError
from convlens.reference._args import (
    IntOrPair,
    Padding4,
    PaddingArg,
    as_array,
    check_elements,
    check_grad_shape,
    conv_output_size,
    conv_padding,
    pad_hw,
    pair,
    result_dtype,
)


@dataclass(frozen=True)
class Conv2dCache:
    """What ``conv2d_backward`` needs from the forward pass."""

    x_padded: np.ndarray  # (N, C, H + top + bottom, W + left + right)
    weight: np.ndarray  # (O, C / groups, K_h, K_w)
    has_bias: bool
    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    output_shape: tuple[int, int, int, int]  # (N, O, H_out, W_out)
    stride: tuple[int, int]
    padding: Padding4  # (top, bottom, left, right)
    dilation: tuple[int, int]
    groups: int


@dataclass(frozen=True)
class Conv2dGrads:
    input: np.ndarray  # (N, C, H, W)
    weight: np.ndarray  # (O, C / groups, K_h, K_w)
    bias: np.ndarray | None  # (O,) or None when the forward had no bias


def tap_view(
    x: np.ndarray,
    i: int,
    j: int,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """The input pixels that kernel tap (i, j) meets, one per output pixel: (N, C, H_out, W_out).

    Rows i·D_h, i·D_h + S_h, …, i·D_h + (H_out − 1)·S_h (columns likewise); a view, so
    ``tap_view(grad, …) += …`` scatters into ``grad``.
    """
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return x[
        ..., i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw
    ]


# Below this many input channels per group, the per-tap products are too thin for BLAS to be
# efficient (an RGB stem: 3 channels), so the forward gathers every window once (im2col).
THIN_CHANNELS = 16


def _im2col_product(
    xp: np.ndarray,
    wg: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """One matrix product per group over gathered windows: (N, g, O_g, H_out·W_out)."""
    g, o_g, c_g, kh, kw = wg.shape
    n = xp.shape[0]
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    windows = sliding_window_view(xp, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    windows = windows[:, :, :ho, :wo].reshape(n, g, c_g, ho, wo, kh, kw)
    # (N, g, H_out·W_out, C_g·K_h·K_w): every window as one row, copied once
    cols = windows.transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, g, ho * wo, c_g * kh * kw)
    product = cols @ wg.reshape(g, o_g, c_g * kh * kw).transpose(0, 2, 1)  # (N, g, HW, O_g)
    return product.transpose(0, 1, 3, 2)


def _depthwise_stride1(
    xp: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    out_hw: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Depthwise convolution at stride 1 as K_h·K_w shifted copies of the flattened planes.

    With the padded plane flattened row by row (row length W_p), kernel tap (i, j) meets
    the run of pixels starting at i·D_h·W_p + j·D_w: one contiguous shift per tap. Summing
    the shifts over (H_out − 1)·W_p + W_out positions computes every output pixel, plus
    W_p − W_out wrapped columns per row that are dropped at the end. Long contiguous runs
    (a whole plane, not 56-pixel rows) keep NumPy's SIMD loops busy; one preallocated
    scratch buffer avoids a temporary per tap. Returns (N, C, H_out, W_out), bias added.
    """
    n, c, hp, wp = xp.shape
    (ho, wo), (dh, dw) = out_hw, dilation
    _, _, kh, kw = weight.shape
    length = (ho - 1) * wp + wo  # the last tap's run ends exactly at the plane's end
    flat = xp.reshape(n, c, hp * wp)  # (N, C, H_p·W_p)
    taps = weight.reshape(c, kh * kw)  # (C, K_h·K_w)
    acc = np.empty((n, c, ho * wp), dtype=xp.dtype)  # (N, C, H_out·W_p): rows of width W_p
    head, scratch = acc[:, :, :length], np.empty((n, c, length), dtype=xp.dtype)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        start = i * dh * wp + j * dw
        run = flat[:, :, start : start + length]
        if k == 0:
            np.multiply(run, taps[:, k, None], out=head)
        else:
            np.multiply(run, taps[:, k, None], out=scratch)
            head += scratch
    out = np.empty((n, c, ho, wo), dtype=xp.dtype)
    rows = acc.reshape(n, c, ho, wp)[:, :, :, :wo]  # drop the wrapped columns
    if bias is None:
        out[...] = rows
    else:
        np.add(rows, bias[None, :, None, None], out=out)
    return out


def check_groups(in_channels: int, out_channels: int, groups: int, weight_shape: str) -> None:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ArgumentError(f"groups must be an int ≥ 1; got {groups!r}.")
    if in_channels % groups or out_channels % groups:
        raise ArgumentError(
            f"groups={groups} must divide both the input channels ({in_channels}) and the "
            f"output channels ({out_channels}) (weight shape {weight_shape})."
        )


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: PaddingArg = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, Conv2dCache]:
    """y = conv2d(x, w) + b for x (N, C, H, W), w (O, C/groups, K_h, K_w), b (O,)."""
    x = as_array(x, "input", 4, "(N, C, H, W)")
    weight = as_array(weight, "weight", 4, "(out_channels, in_channels / groups, kH, kW)")
    n, c, h, w = x.shape
    o, c_g, kh, kw = weight.shape
    check_groups(c, o, groups, str(weight.shape))
    if c_g * groups != c:
        raise ArgumentError(
            f"weight has {c_g} input channels per group but the input has {c} channels "
            f"with groups={groups}; expected weight shape ({o}, {c // groups}, {kh}, {kw})."
        )
    if bias is not None:
        bias = as_array(bias, "bias", 1, f"({o},)")
        if bias.shape != (o,):
            raise ArgumentError(
                f"bias must have shape ({o},), one per output channel; got {bias.shape}."
            )
    stride_, dilation_ = pair(stride, "stride", 1), pair(dilation, "dilation", 1)
    pad = conv_padding(padding, (kh, kw), dilation_, stride_)
    if min(pad) < 0:
        raise ArgumentError(f"padding must be ≥ 0; got {padding!r}.")
    ho = conv_output_size(h, pad[0], pad[1], kh, stride_[0], dilation_[0])
    wo = conv_output_size(w, pad[2], pad[3], kw, stride_[1], dilation_[1])
    if ho < 1 or wo < 1:
        span = (dilation_[0] * (kh - 1) + 1, dilation_[1] * (kw - 1) + 1)
        min_h, min_w = max(span[0] - pad[0] - pad[1], 1), max(span[1] - pad[2] - pad[3], 1)
        raise ArgumentError(
            f"weight: the kernel spans {span[0]}×{span[1]} (K = {kh}×{kw}, dilation {dilation_}) "
            f"but the padded input is only {h + pad[0] + pad[1]}×{w + pad[2] + pad[3]}; "
            f"expected an input of at least {min_h}×{min_w} with this padding."
        )
    check_elements((n, o, ho, wo), "the output")
    if c_g < THIN_CHANNELS:  # the gathered windows of the im2col path below
        check_elements((n, groups, ho * wo, c_g * kh * kw), "the gathered windows (im2col)")
    dtype = result_dtype(x, weight, bias)
    has_bias = bias is not None
    xp = pad_hw(x.astype(dtype, copy=False), pad)
    wg = weight.astype(dtype, copy=False).reshape(groups, o // groups, c_g, kh, kw)
    if c_g == 1 and o == groups and stride_ == (1, 1):  # depthwise: one filter per channel
        b = None if bias is None else bias.astype(dtype, copy=False)
        out = _depthwise_stride1(xp, wg.reshape(o, 1, kh, kw), b, (ho, wo), dilation_)
        bias = None  # added above
    elif c_g == 1 and o == groups:  # depthwise, strided: broadcast multiplies per tap
        out = np.zeros((n, o, ho, wo), dtype=dtype)
        w_dw = weight.astype(dtype, copy=False)[
            None, :, 0, :, :, None, None
        ]  # (1, C, K_h, K_w, 1, 1)
        for i in range(kh):
            for j in range(kw):
                out += tap_view(xp, i, j, (ho, wo), stride_, dilation_) * w_dw[:, :, i, j]
    elif c_g < THIN_CHANNELS:
        out = _im2col_product(xp, wg, (ho, wo), stride_, dilation_)
    else:
        out = np.zeros((n, groups, o // groups, ho * wo), dtype=dtype)  # (N, g, O_g, H_out·W_out)
        for i in range(kh):
            for j in range(kw):
                tap = tap_view(xp, i, j, (ho, wo), stride_, dilation_)
                tap = tap.reshape(n, groups, c_g, ho * wo)
                out += wg[:, :, :, i, j] @ tap  # (g, O_g, C_g) @ (N, g, C_g, HW)
    out = out.reshape(n, o, ho, wo)
    if bias is not None:
        out += bias.astype(dtype, copy=False)[None, :, None, None]
    cache = Conv2dCache(
        x_padded=xp,
        weight=weight.astype(dtype, copy=False),
        has_bias=has_bias,
        input_shape=(n, c, h, w),
        output_shape=(n, o, ho, wo),
        stride=stride_,
        padding=pad,
        dilation=dilation_,
        groups=groups,
    )
    return out, cache


def conv2d_backward(grad_output: np.ndarray, cache: Conv2dCache) -> Conv2dGrads:
    """Gradients of input, weight and bias given ∂L/∂y of shape (N, O, H_out, W_out).

    ∂L/∂w[o, c, i, j] = Σ_{n,h,w} ∂L/∂y[n, o, h, w] · x_pad[n, c, h·S + i·D, w·S + j·D]
    ∂L/∂x_pad[n, c, h·S + i·D, w·S + j·D] += Σ_o w[o, c, i, j] · ∂L/∂y[n, o, h, w]
    ∂L/∂b[o] = Σ_{n,h,w} ∂L/∂y[n, o, h, w]
    """
    n, o, ho, wo = cache.output_shape
    grad = check_grad_shape(grad_output, cache.output_shape).astype(
        cache.x_padded.dtype, copy=False
    )
    xp, g = cache.x_padded, cache.groups
    _, c_g, kh, kw = cache.weight.shape
    wg = cache.weight.reshape(g, o // g, c_g, kh, kw)
    # (g, O_g, N·HW): the output gradient laid out for one matrix product per tap and group.
    gg = grad.reshape(n, g, o // g, ho * wo).transpose(1, 2, 0, 3).reshape(g, o // g, n * ho * wo)
    grad_w = np.zeros_like(wg)
    grad_xp = np.zeros_like(xp)
    depthwise = c_g == 1 and o == g  # one filter per channel: stay in (N, C, H, W), no products
    for i in range(kh):
        for j in range(kw):
            tap = tap_view(xp, i, j, (ho, wo), cache.stride, cache.dilation)
            if depthwise:
                grad_w[:, 0, 0, i, j] = np.einsum("nchw,nchw->c", grad, tap)
                w_ij = cache.weight[None, :, 0, i, j, None, None]  # (1, C, 1, 1)
                tap_view(grad_xp, i, j, (ho, wo), cache.stride, cache.dilation)[...] += grad * w_ij
                continue
            tap = tap.reshape(n, g, c_g, ho * wo).transpose(1, 0, 3, 2).reshape(g, n * ho * wo, c_g)
            if c_g == 1:  # a channel multiplier: broadcast and sum, not 1-wide matrix products
                grad_w[:, :, 0, i, j] = (gg * tap[:, None, :, 0]).sum(axis=-1)  # (g, O_g)
                back = (wg[:, :, 0, i, j, None] * gg).sum(axis=1, keepdims=True)  # (g, 1, N·HW)
            else:
                grad_w[:, :, :, i, j] = gg @ tap  # (g, O_g, N·HW) @ (g, N·HW, C_g)
                back = wg[:, :, :, i, j].transpose(0, 2, 1) @ gg  # (g, C_g, O_g) @ (g, O_g, N·HW)
            back = (
                back.reshape(g, c_g, n, ho, wo).transpose(2, 0, 1, 3, 4).reshape(n, g * c_g, ho, wo)
            )
            tap_view(grad_xp, i, j, (ho, wo), cache.stride, cache.dilation)[...] += back
    top, _, left, _ = cache.padding
    _, _, h, w = cache.input_shape
    return Conv2dGrads(
        input=grad_xp[:, :, top : top + h, left : left + w].copy(),
        weight=grad_w.reshape(cache.weight.shape),
        bias=grad.sum(axis=(0, 2, 3)) if cache.has_bias else None,
    )
