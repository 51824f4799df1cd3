"""Transposed 2-D convolution (the gradient of conv2d with respect to its input).

Every input pixel scatters a scaled copy of the filter into the output:

    y_full[n, o, h·S_h + i·D_h, w·S_w + j·D_w] += x[n, c, h, w] · w[c, o_g, i, j]

then ``padding`` rows/columns are cut from each side of ``y_full`` and
``output_padding`` extra rows/columns are kept at the bottom/right:

    H_out = (H − 1)·S − 2·P + D·(K − 1) + output_padding + 1

As in conv2d we loop over kernel taps only; each tap adds one strided block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference._args import (
    IntOrPair,
    as_array,
    check_elements,
    check_grad_shape,
    pair,
    result_dtype,
)
from convlens.reference.conv import check_groups, tap_view


@dataclass(frozen=True)
class ConvTranspose2dCache:
    x: np.ndarray  # (N, C_in, H, W)
    weight: np.ndarray  # (C_in, C_out / groups, K_h, K_w)
    has_bias: bool
    output_shape: tuple[int, int, int, int]  # (N, C_out, H_out, W_out)
    full_shape: tuple[int, int, int, int]  # y_full before cropping: (N, C_out, H_f, W_f)
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


@dataclass(frozen=True)
class ConvTranspose2dGrads:
    input: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None


def conv_transpose2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> tuple[np.ndarray, ConvTranspose2dCache]:
    """y = conv_transpose2d(x, w) + b; arguments in the order of F.conv_transpose2d."""
    x = as_array(x, "input", 4, "(N, C_in, H, W)")
    weight = as_array(weight, "weight", 4, "(in_channels, out_channels / groups, kH, kW)")
    n, c, h, w = x.shape
    c_w, o_g, kh, kw = weight.shape
    if c_w != c:
        raise ArgumentError(
            f"weight must have one filter block per input channel: expected weight shape "
            f"({c}, out_channels / groups, kH, kW); got {weight.shape}."
        )
    check_groups(c, c, groups, str(weight.shape))  # groups must divide C_in; C_out = O_g · groups
    o = o_g * groups
    if bias is not None:
        bias = as_array(bias, "bias", 1, f"({o},)")
        if bias.shape != (o,):
            raise ArgumentError(
                f"bias must have shape ({o},), one per output channel; got {bias.shape}."
            )
    s, d = pair(stride, "stride", 1), pair(dilation, "dilation", 1)
    p, op = pair(padding, "padding", 0), pair(output_padding, "output_padding", 0)
    for axis in range(2):
        if op[axis] >= s[axis] and op[axis] >= d[axis]:
            raise ArgumentError(
                f"output_padding {op} must be smaller than either stride {s} or dilation {d} "
                "in each dimension (as in PyTorch)."
            )
    hf = (h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0]
    wf = (w - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]
    ho, wo = hf - 2 * p[0], wf - 2 * p[1]
    if ho < 1 or wo < 1:
        raise ArgumentError(
            f"padding {p} removes the whole output: (H − 1)·S + D·(K − 1) + output_padding + 1 = "
            f"{hf}×{wf} before cropping 2·padding; "
            f"expected padding < {((hf + 1) // 2, (wf + 1) // 2)}."
        )
    check_elements((n, o, hf, wf), "the transposed convolution's output")
    dtype = result_dtype(x, weight, bias)
    x, weight = x.astype(dtype, copy=False), weight.astype(dtype, copy=False)
    wg = weight.reshape(groups, c // groups, o_g, kh, kw)
    xg = x.reshape(n, groups, c // groups, h * w)  # (N, g, C_g, HW)
    full = np.zeros((n, o, hf, wf), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            scattered = wg[:, :, :, i, j].transpose(0, 2, 1) @ xg  # (g, O_g, C_g) @ (N, g, C_g, HW)
            tap_view(full, i, j, (h, w), s, d)[...] += scattered.reshape(n, o, h, w)
    out = full[:, :, p[0] : p[0] + ho, p[1] : p[1] + wo].copy()
    if bias is not None:
        out += bias.astype(dtype, copy=False)[None, :, None, None]
    cache = ConvTranspose2dCache(
        x=x,
        weight=weight,
        has_bias=bias is not None,
        output_shape=(n, o, ho, wo),
        full_shape=(n, o, hf, wf),
        stride=s,
        padding=p,
        output_padding=op,
        dilation=d,
        groups=groups,
    )
    return out, cache


def conv_transpose2d_backward(
    grad_output: np.ndarray, cache: ConvTranspose2dCache
) -> ConvTranspose2dGrads:
    """∂L/∂x is conv2d of ∂L/∂y_full with the same filter; ∂L/∂w correlates x with it."""
    n, o, ho, wo = cache.output_shape
    grad = check_grad_shape(grad_output, cache.output_shape).astype(cache.x.dtype, copy=False)
    g, (p_h, p_w) = cache.groups, cache.padding
    grad_full = np.zeros(cache.full_shape, dtype=grad.dtype)  # cropped rows get no gradient
    grad_full[:, :, p_h : p_h + ho, p_w : p_w + wo] = grad
    _, c, h, w = cache.x.shape
    c_g, o_g = c // g, o // g
    _, _, kh, kw = cache.weight.shape
    wg = cache.weight.reshape(g, c_g, o_g, kh, kw)
    xg = cache.x.reshape(n, g, c_g, h * w).transpose(1, 2, 0, 3).reshape(g, c_g, n * h * w)
    grad_x = np.zeros((n, g, c_g, h * w), dtype=grad.dtype)
    grad_w = np.zeros_like(wg)
    for i in range(kh):
        for j in range(kw):
            tap = tap_view(grad_full, i, j, (h, w), cache.stride, cache.dilation)
            tap = tap.reshape(n, g, o_g, h * w)
            grad_x += wg[:, :, :, i, j] @ tap  # (g, C_g, O_g) @ (N, g, O_g, HW)
            tap_t = tap.transpose(1, 0, 3, 2).reshape(g, n * h * w, o_g)
            grad_w[:, :, :, i, j] = xg @ tap_t  # (g, C_g, N·HW) @ (g, N·HW, O_g)
    return ConvTranspose2dGrads(
        input=grad_x.reshape(n, c, h, w),
        weight=grad_w.reshape(cache.weight.shape),
        bias=grad.sum(axis=(0, 2, 3)) if cache.has_bias else None,
    )
