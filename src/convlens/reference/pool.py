"""Max and average pooling over (N, C, H, W), and their gradients.

Output size, as PyTorch computes it (``ceil_mode`` rounds up, but the last window must
start inside the input or its left padding):

    O = ⌊(I + 2·P − D·(K − 1) − 1) / S⌋ + 1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference._args import IntOrPair, as_array, check_grad_shape, pad_hw, pair
from convlens.reference.conv import tap_view


@dataclass(frozen=True)
class PoolGeometry:
    """Kernel, stride, padding and dilation of one pooling call, and its output size."""

    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    output_shape: tuple[int, int, int, int]  # (N, C, H_out, W_out)
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool

    @property
    def padding4(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the bottom/right may grow so ceil_mode windows exist."""
        (_, _, h, w), (_, _, ho, wo) = self.input_shape, self.output_shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
        )
        need_h = (ho - 1) * sh + dh * (kh - 1) + 1  # rows the windows reach, from the top pad
        need_w = (wo - 1) * sw + dw * (kw - 1) + 1
        return (ph, max(need_h - h - ph, 0), pw, max(need_w - w - pw, 0))


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window would start in the right padding
    return out


def pool_geometry(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
    ceil_mode: bool,
) -> PoolGeometry:
    n, c, h, w = x.shape
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None or stride == () else pair(stride, "stride", 1)
    p, d = pair(padding, "padding", 0), pair(dilation, "dilation", 1)
    for axis in range(2):
        if 2 * p[axis] > k[axis]:
            raise ArgumentError(
                f"padding {p} must be at most half the kernel size {k} (as in PyTorch)."
            )
    ho = pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    wo = pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if ho < 1 or wo < 1:
        raise ArgumentError(
            f"kernel_size {k} (dilation {d}) is larger than the padded input "
            f"{h + 2 * p[0]}×{w + 2 * p[1]}; expected a kernel that fits."
        )
    return PoolGeometry((n, c, h, w), (n, c, ho, wo), k, s, p, d, bool(ceil_mode))


@dataclass(frozen=True)
class MaxPool2dCache:
    geometry: PoolGeometry
    indices: (
        np.ndarray
    )  # (N, C, H_out, W_out): flat index h·W + w of each arg-max, as torch returns


def window_taps(xp: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """Every window as its K_h·K_w taps in row-major order: (N, C, H_out, W_out, K_h·K_w)."""
    (_, _, ho, wo), (kh, kw) = geo.output_shape, geo.kernel_size
    taps = [
        tap_view(xp, i, j, (ho, wo), geo.stride, geo.dilation) for i in range(kh) for j in range(kw)
    ]
    return np.stack(taps, axis=-1)


def window_origin(geo: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Input row of each window's top tap (H_out,) and column of its left tap (W_out,)."""
    (_, _, ho, wo), (sh, sw), (ph, pw) = geo.output_shape, geo.stride, geo.padding
    return np.arange(ho) * sh - ph, np.arange(wo) * sw - pw


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, MaxPool2dCache]:
    """y = max over each window; ties go to the first maximum in row-major window order.

    Padding is −∞, so it never wins. A NaN wins over numbers and, as in PyTorch's CPU
    kernel, the last NaN of a window is its arg-max.
    """
    x = as_array(x, "input", 4, "(N, C, H, W)")
    geo = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = pad_hw(x, geo.padding4, value=-np.inf)
    taps = window_taps(xp, geo)  # (N, C, H_out, W_out, K_h·K_w)
    best = taps.argmax(axis=-1)  # first maximum, as torch's strict `val > maxval`
    nan = np.isnan(taps)
    if nan.any():  # torch's `|| isnan(val)` moves the arg-max to every NaN: the last one wins
        last_nan = taps.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
        best = np.where(nan.any(axis=-1), last_nan, best)
    out = np.take_along_axis(taps, best[..., None], axis=-1)[..., 0]
    rows, cols = window_origin(geo)
    kw, (dh, dw), w = geo.kernel_size[1], geo.dilation, x.shape[3]
    arg_row = rows[:, None] + (best // kw) * dh  # (N, C, H_out, W_out) in input coordinates
    arg_col = cols[None, :] + (best % kw) * dw
    inside = (arg_row >= 0) & (arg_row < x.shape[2]) & (arg_col >= 0) & (arg_col < w)
    # A dilated window can hold only padding: its output is −∞ and its index −1 (no gradient).
    return out, MaxPool2dCache(geometry=geo, indices=np.where(inside, arg_row * w + arg_col, -1))


def max_pool2d_backward(grad_output: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """Each output gradient goes to its window's arg-max; overlapping windows add up."""
    geo = cache.geometry
    grad = check_grad_shape(grad_output, geo.output_shape)
    n, c, h, w = geo.input_shape
    plane = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)  # offset of each (n, c) plane
    routed = cache.indices >= 0
    flat = np.bincount(
        (plane + cache.indices)[routed], weights=grad[routed], minlength=n * c * h * w
    )
    return flat.reshape(n, c, h, w).astype(grad.dtype, copy=False)


@dataclass(frozen=True)
class AvgPool2dCache:
    geometry: PoolGeometry
    divisor: np.ndarray  # (H_out, W_out): how many cells each window's sum is divided by


def avg_pool_divisor(geo: PoolGeometry, count_include_pad: bool) -> np.ndarray:
    """Cells per window: padding counts if ``count_include_pad``; ceil_mode overhang never."""
    rows, cols = window_origin(geo)
    counts = []
    for start, k, p, size in zip(
        (rows, cols), geo.kernel_size, geo.padding, geo.input_shape[2:], strict=True
    ):
        end = np.minimum(start + k, size + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1])


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, AvgPool2dCache]:
    """y = (sum of the window, zero padding included) / divisor."""
    x = as_array(x, "input", 4, "(N, C, H, W)")
    geo = pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    xp = pad_hw(x, geo.padding4)
    _, _, ho, wo = geo.output_shape
    total = np.zeros(geo.output_shape, dtype=x.dtype)
    for i in range(geo.kernel_size[0]):
        for j in range(geo.kernel_size[1]):
            total += tap_view(xp, i, j, (ho, wo), geo.stride, geo.dilation)
    divisor = avg_pool_divisor(geo, count_include_pad)
    return total / divisor, AvgPool2dCache(geometry=geo, divisor=divisor)


def avg_pool2d_backward(grad_output: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    """Each output gradient is shared equally (÷ divisor) by every cell of its window."""
    geo = cache.geometry
    grad = check_grad_shape(grad_output, geo.output_shape)
    share = grad / cache.divisor
    n, c, h, w = geo.input_shape
    top, bottom, left, right = geo.padding4
    grad_xp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=share.dtype)
    for i in range(geo.kernel_size[0]):
        for j in range(geo.kernel_size[1]):
            tap_view(grad_xp, i, j, geo.output_shape[2:], geo.stride, geo.dilation)[...] += share
    return grad_xp[:, :, top : top + h, left : left + w].copy()
