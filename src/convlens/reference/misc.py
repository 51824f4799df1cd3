"""The small operators: global average pooling, upsampling, batch norm, ReLU, linear."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference._args import as_array, check_elements, check_grad_shape, result_dtype

# ---------------------------------------------------------------- global average pooling


def global_avg_pool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """y[n, c, 0, 0] = mean over (H, W) of x[n, c] — adaptive_avg_pool2d(x, 1). Cache: x.shape."""
    x = as_array(x, "input", 4, "(N, C, H, W)")
    return x.mean(axis=(2, 3), keepdims=True), x.shape  # type: ignore[return-value]


def global_avg_pool_backward(
    grad_output: np.ndarray, cache: tuple[int, int, int, int]
) -> np.ndarray:
    """∂L/∂x[n, c, h, w] = ∂L/∂y[n, c] / (H·W)."""
    n, c, h, w = cache
    grad = check_grad_shape(grad_output, (n, c, 1, 1))
    return np.broadcast_to(grad / (h * w), cache).copy()


# ---------------------------------------------------------------- upsampling


@dataclass(frozen=True)
class UpsampleCache:
    rows: np.ndarray  # (H_out, H): interpolation weights, y = rows · x · colsᵀ per plane
    cols: np.ndarray  # (W_out, W)
    input_shape: tuple[int, int, int, int]


def _nearest_matrix(size_in: int, size_out: int, scale: float | None) -> np.ndarray:
    """src = min(⌊dst · s⌋, I − 1) with s = 1/scale_factor (or I/O), in float32 as PyTorch does."""
    s = np.float32(1.0 / scale) if scale else np.float32(size_in / size_out)
    src = np.floor(np.arange(size_out, dtype=np.float32) * s).astype(np.int64)
    if size_out == size_in:
        src = np.arange(size_out)
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), np.minimum(src, size_in - 1)] = 1.0
    return matrix


def _linear_matrix(
    size_in: int, size_out: int, scale: float | None, align_corners: bool
) -> np.ndarray:
    """Weights of 1-D linear interpolation, (O, I).

    align_corners: src = dst · (I − 1)/(O − 1); otherwise src = max((dst + ½)·s − ½, 0) with
    s = 1/scale_factor (or I/O). The two neighbours ⌊src⌋ and ⌊src⌋ + 1 get 1 − λ and λ.
    """
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        s = 1.0 / scale if scale else size_in / size_out
        src = np.maximum((dst + 0.5) * s - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    lam = src - low
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1.0 - lam)
    np.add.at(matrix, (np.arange(size_out), high), lam)
    return matrix


def upsample_forward(
    x: np.ndarray,
    size: int | tuple[int, int] | None = None,
    scale_factor: float | tuple[float, float] | None = None,
    mode: str = "nearest",
    align_corners: bool = False,
) -> tuple[np.ndarray, UpsampleCache]:
    """F.interpolate for 4-D input: ``nearest`` or ``bilinear`` (separable: rows, then columns)."""
    x = as_array(x, "input", 4, "(N, C, H, W)")
    n, c, h, w = x.shape
    if (size is None) == (scale_factor is None):
        raise ArgumentError("upsample needs exactly one of size or scale_factor.")
    if mode not in ("nearest", "bilinear"):
        raise ArgumentError(f"mode must be 'nearest' or 'bilinear'; got {mode!r}.")
    if mode == "nearest" and align_corners:
        raise ArgumentError("align_corners only applies to mode='bilinear'.")
    scales: tuple[float | None, float | None] = (None, None)
    if size is not None:
        out_hw = (size, size) if isinstance(size, int) else tuple(size)
    else:
        if scale_factor is None:  # (not reached: exactly one of size and scale_factor is given)
            raise ArgumentError("upsample needs exactly one of size or scale_factor.")
        sf = tuple(
            float(v)
            for v in (
                (scale_factor, scale_factor)
                if isinstance(scale_factor, int | float | np.number)
                else scale_factor
            )
        )
        if min(sf) <= 0:
            raise ArgumentError(f"scale_factor must be > 0; got {scale_factor!r}.")
        out_hw = (int(np.floor(h * sf[0])), int(np.floor(w * sf[1])))
        scales = (sf[0], sf[1])
    if len(out_hw) != 2 or min(out_hw) < 1:
        raise ArgumentError(f"upsample output size must be two ints ≥ 1; got {out_hw}.")
    check_elements((n, c, *out_hw), "the upsampled output")
    if mode == "nearest":
        rows = _nearest_matrix(h, out_hw[0], scales[0])
        cols = _nearest_matrix(w, out_hw[1], scales[1])
    else:
        rows = _linear_matrix(h, out_hw[0], scales[0], align_corners)
        cols = _linear_matrix(w, out_hw[1], scales[1], align_corners)
    dtype = x.dtype
    rows, cols = rows.astype(dtype), cols.astype(dtype)
    out = np.einsum("oh,nchw,pw->ncop", rows, x, cols, optimize=True)
    return out, UpsampleCache(rows=rows, cols=cols, input_shape=(n, c, h, w))


def upsample_backward(grad_output: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    """∂L/∂x = rowsᵀ · ∂L/∂y · cols per (n, c) plane."""
    n, c, _, _ = cache.input_shape
    grad = check_grad_shape(grad_output, (n, c, cache.rows.shape[0], cache.cols.shape[0]))
    return np.einsum("oh,ncop,pw->nchw", cache.rows, grad, cache.cols, optimize=True)


# ---------------------------------------------------------------- batch normalisation


@dataclass(frozen=True)
class BatchNormCache:
    x_hat: np.ndarray  # (N, C, H, W): (x − μ) / √(σ² + ε)
    inv_std: np.ndarray  # (C,): 1 / √(σ² + ε)
    weight: np.ndarray | None  # γ (C,)
    training: bool
    running_mean: np.ndarray | None  # updated running statistics (training), else as given
    running_var: np.ndarray | None


@dataclass(frozen=True)
class BatchNormGrads:
    input: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None


def batch_norm_forward(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormCache]:
    """y = γ · (x − μ) / √(σ² + ε) + β per channel of (N, C, H, W) (argument order of F.batch_norm).

    Training uses the batch mean and biased variance over (N, H, W) and returns updated running
    statistics in the cache (new arrays; the ones passed in are not modified):
    r ← (1 − momentum)·r + momentum·stat, with the unbiased variance for ``running_var``.
    Inference uses the running statistics.
    """
    x = as_array(x, "input", 4, "(N, C, H, W)")
    c = x.shape[1]
    params = {
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
    }
    checked: dict[str, np.ndarray | None] = {}
    for name, value in params.items():
        if value is None:
            checked[name] = None
            continue
        array = as_array(value, name, 1, f"({c},)")
        if array.shape != (c,):
            raise ArgumentError(
                f"{name} must have shape ({c},), one per channel; got {np.shape(value)}."
            )
        checked[name] = array
    rm, rv, gamma, beta = checked.values()
    if not eps >= 0:  # as F.batch_norm: ε is added to a variance, never subtracted
        raise ArgumentError(f"eps must be ≥ 0 (it is added to σ²); got {eps}.")
    if rv is not None and not (rv >= 0).all():
        channel = int(np.argmin(rv >= 0))
        raise ArgumentError(
            f"running_var must be ≥ 0, a variance; got {rv[channel]:g} for channel {channel}."
        )
    if not training and rv is not None and not (rv + eps > 0).all():
        raise ArgumentError("running_var + eps must be positive: √(σ² + ε) divides the input.")
    axes = (0, 2, 3)
    if training:
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise ArgumentError(
                "batch_norm in training needs more than one value per channel; "
                f"input shape {x.shape}."
            )
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        if rm is not None:
            rm = (1 - momentum) * rm + momentum * mean
        if rv is not None:
            rv = (1 - momentum) * rv + momentum * var * count / (count - 1)
    else:
        if rm is None or rv is None:
            raise ArgumentError(
                "batch_norm in inference needs running_mean and running_var, shape (C,)."
            )
        mean, var = rm, rv
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean[None, :, None, None]) * inv_std[None, :, None, None]
    out = x_hat if gamma is None else x_hat * gamma[None, :, None, None]
    if beta is not None:
        out = out + beta[None, :, None, None]
    cache = BatchNormCache(x_hat, inv_std, gamma, bool(training), rm, rv)
    return out, cache


def batch_norm_backward(grad_output: np.ndarray, cache: BatchNormCache) -> BatchNormGrads:
    """Training: ∂L/∂x = γ/√(σ²+ε) · (g − mean(g) − x̂ · mean(g·x̂)), means over (N, H, W).

    Inference: the statistics are constants, so ∂L/∂x = γ/√(σ²+ε) · g.
    """
    grad = check_grad_shape(grad_output, cache.x_hat.shape)
    axes = (0, 2, 3)
    scale = cache.inv_std if cache.weight is None else cache.inv_std * cache.weight
    scale = scale[None, :, None, None]
    if cache.training:
        mean_g = grad.mean(axis=axes, keepdims=True)
        mean_gx = (grad * cache.x_hat).mean(axis=axes, keepdims=True)
        grad_x = scale * (grad - mean_g - cache.x_hat * mean_gx)
    else:
        grad_x = scale * grad
    has_affine = cache.weight is not None
    return BatchNormGrads(
        input=grad_x,
        weight=(grad * cache.x_hat).sum(axis=axes) if has_affine else None,
        bias=grad.sum(axis=axes) if has_affine else None,
    )


# ---------------------------------------------------------------- ReLU and linear


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = max(x, 0); the cache is the mask x > 0."""
    x = as_array(x, "input", tuple(range(0, 9)), "any shape")
    mask = x > 0
    return np.where(mask, x, np.zeros((), dtype=x.dtype)), mask


def relu_backward(grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """∂L/∂x = ∂L/∂y where x > 0, else 0 (0 at x = 0, as PyTorch)."""
    grad = check_grad_shape(grad_output, cache.shape)
    return np.where(cache, grad, np.zeros((), dtype=grad.dtype))


@dataclass(frozen=True)
class LinearCache:
    x: np.ndarray  # (…, in_features)
    weight: np.ndarray  # (out_features, in_features)
    has_bias: bool


@dataclass(frozen=True)
class LinearGrads:
    input: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None


def linear_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
) -> tuple[np.ndarray, LinearCache]:
    """y = x · Wᵀ + b for x (…, in_features), W (out_features, in_features)."""
    x = as_array(x, "input", tuple(range(1, 9)), "(…, in_features)")
    weight = as_array(weight, "weight", 2, "(out_features, in_features)")
    if weight.shape[1] != x.shape[-1]:
        raise ArgumentError(
            f"weight must have shape (out_features, {x.shape[-1]}) to match the input's last "
            f"axis; got {weight.shape}."
        )
    dtype = result_dtype(x, weight, bias)
    out = x.astype(dtype, copy=False) @ weight.astype(dtype, copy=False).T
    if bias is not None:
        bias = as_array(bias, "bias", 1, f"({weight.shape[0]},)")
        if bias.shape != (weight.shape[0],):
            raise ArgumentError(f"bias must have shape ({weight.shape[0]},); got {bias.shape}.")
        out = out + bias
    return out, LinearCache(
        x.astype(dtype, copy=False), weight.astype(dtype, copy=False), bias is not None
    )


def linear_backward(grad_output: np.ndarray, cache: LinearCache) -> LinearGrads:
    """∂L/∂x = g · W;  ∂L/∂W = gᵀ · x (batch axes flattened);  ∂L/∂b = Σ g."""
    out_features, in_features = cache.weight.shape
    grad = check_grad_shape(grad_output, (*cache.x.shape[:-1], out_features))
    flat_g, flat_x = grad.reshape(-1, out_features), cache.x.reshape(-1, in_features)
    return LinearGrads(
        input=grad @ cache.weight,
        weight=flat_g.T @ flat_x,
        bias=flat_g.sum(axis=0) if cache.has_bias else None,
    )
