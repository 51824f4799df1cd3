"""The friendly layer over the operators: textbook shapes in, results and working out.

``conv2d(x, w, padding=1, explain=True)`` takes an image as (H, W), (C, H, W) or
(N, C, H, W) and a filter as one (K_h, K_w) matrix (applied to every channel, the channel
results summed, as textbook exercises do), one matrix per channel (C, K_h, K_w), or a full
(O, C / groups, K_h, K_w) weight. ``run`` does the work for these wrappers and for
``convlens op``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference import explain as ex
from convlens.reference._args import as_array
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

OPERATORS = (
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "global_avg_pool",
    "upsample",
    "relu",
    "batch_norm",
    "linear",
)
WEIGHTED = ("conv2d", "conv_transpose2d")
# Batch norm's weight and bias are γ and β, one per channel; linear's weight is a matrix.
AFFINE = ("batch_norm", "linear")


def batched(x: Any, name: str = "input") -> np.ndarray:
    """(H, W) → (1, 1, H, W); (C, H, W) → (1, C, H, W); (N, C, H, W) unchanged."""
    array = as_array(x, name, (2, 3, 4), "(H, W), (C, H, W) or (N, C, H, W)")
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def conv_weight(weight: Any, in_channels: int, groups: int, transposed: bool) -> np.ndarray:
    """Textbook filters to a full weight.

    conv2d, weight (O, C/g, K_h, K_w): a (K_h, K_w) matrix is used for every input channel
    and gives one output channel per group; (C, K_h, K_w) is one matrix per input channel.
    conv_transpose2d, weight (C, O/g, K_h, K_w): one (K_h, K_w) matrix, or one per input
    channel, gives one output channel per group.
    """
    shape_hint = (
        "(C_in, out_channels / groups, kH, kW)"
        if transposed
        else "(out_channels, in_channels / groups, kH, kW)"
    )
    w = as_array(weight, "weight", (2, 3, 4), f"(kH, kW), (C, kH, kW) or {shape_hint}")
    if w.ndim == 4:
        return w
    if w.ndim == 3 and w.shape[0] != in_channels:
        raise ArgumentError(
            f"weight: got {w.shape[0]} filter matrices for an input with {in_channels} "
            f"channels; give one (kH, kW) matrix for all channels or one per channel "
            f"(shape ({in_channels}, kH, kW)), or a 4-D weight of shape {shape_hint}."
        )
    per_channel = np.broadcast_to(w, (in_channels, *w.shape[-2:]))  # (C, K_h, K_w)
    if transposed:
        return np.ascontiguousarray(per_channel[:, None])  # (C, 1, K_h, K_w)
    if isinstance(groups, int) and groups >= 1 and in_channels % groups == 0:
        return np.ascontiguousarray(
            per_channel.reshape(groups, in_channels // groups, *w.shape[-2:])
        )
    return np.ascontiguousarray(per_channel[None])  # conv2d_forward reports the groups error


def as_bias(bias: Any, out_channels: int, name: str = "bias") -> np.ndarray | None:
    """A number (for every channel) or one per channel → (out_channels,)."""
    if bias is None:
        return None
    b = as_array(bias, name, (0, 1), f"a number or ({out_channels},)")
    if b.ndim == 0:
        return np.full(out_channels, float(b))
    return b


def _forward(
    name: str, x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, params: dict[str, Any]
) -> tuple[np.ndarray, Any]:
    if name == "conv2d":
        return conv2d_forward(x, w, b, **params)  # type: ignore[arg-type]
    if name == "conv_transpose2d":
        return conv_transpose2d_forward(x, w, b, **params)  # type: ignore[arg-type]
    if name == "max_pool2d":
        return max_pool2d_forward(x, **params)
    if name == "avg_pool2d":
        return avg_pool2d_forward(x, **params)
    if name == "global_avg_pool":
        return global_avg_pool_forward(x)
    if name == "upsample":
        return upsample_forward(x, **params)
    if name == "relu":
        return relu_forward(x)
    if name == "batch_norm":
        return batch_norm_forward(
            x,
            params.get("running_mean"),
            params.get("running_var"),
            w,
            b,
            training=bool(params.get("training", False)),
            momentum=params.get("momentum", 0.1),
            eps=params.get("eps", 1e-5),
        )
    if name == "linear":
        return linear_forward(x, w, b)  # type: ignore[arg-type]
    raise ArgumentError(f"unknown operator {name!r}; expected one of {', '.join(OPERATORS)}.")


# (∂L/∂y, forward cache) → ∂L/∂x, or a record of the gradients (batch norm, linear)
_BACKWARD: dict[str, Callable[[np.ndarray, Any], Any]] = {
    "conv2d": conv2d_backward,
    "conv_transpose2d": conv_transpose2d_backward,
    "max_pool2d": max_pool2d_backward,
    "avg_pool2d": avg_pool2d_backward,
    "global_avg_pool": global_avg_pool_backward,
    "upsample": upsample_backward,
    "relu": relu_backward,
    "batch_norm": batch_norm_backward,
    "linear": linear_backward,
}


def _per_channel(
    name: str, x: np.ndarray, w: np.ndarray | None, params: dict[str, Any], out: np.ndarray
) -> tuple[np.ndarray, ...]:
    """What each input channel contributes to the output (bias left out)."""
    if name == "linear":
        return ()  # no channels: the output is a matrix product
    if name not in WEIGHTED:
        return tuple(out[:, c] for c in range(out.shape[1]))  # channel-wise operators
    parts = []
    for c in range(x.shape[1]):
        only_c = np.zeros_like(x)
        only_c[:, c] = x[:, c]
        parts.append(_forward(name, only_c, w, None, params)[0])
    return tuple(parts)


def run(
    name: str,
    x: Any,
    weight: Any = None,
    bias: Any = None,
    grad_output: Any = None,
    explain: bool = True,
    channel_names: tuple[str, ...] = (),
    per_channel: bool = True,
    **params: Any,
) -> ex.Worked:
    """Forward (and backward when ``grad_output`` is given), with the working when small.

    Arrays in ``Worked`` are batched (N, C, H, W); ``Worked.result`` is in the caller's
    layout. ``per_channel`` adds each input channel's contribution (one extra forward per
    input channel for conv2d / conv_transpose2d).
    """
    if name not in OPERATORS:
        raise ArgumentError(f"unknown operator {name!r}; expected one of {', '.join(OPERATORS)}.")
    if name not in WEIGHTED + AFFINE and (weight is not None or bias is not None):
        raise ArgumentError(f"{name} takes no weight or bias.")
    if name in WEIGHTED and weight is None:
        raise ArgumentError(f"{name} needs a weight (a filter matrix).")
    if name == "linear" and weight is None:
        raise ArgumentError("linear needs a weight, shape (out_features, in_features).")
    w4 = b1 = None
    if name == "linear":
        # (in_features,) is one sample; anything else is (…, in_features)
        x4 = as_array(x, "input", tuple(range(1, 9)), "(…, in_features)")
        x4 = x4[None] if x4.ndim == 1 else x4
        w4 = as_array(weight, "weight", (1, 2), "(out_features, in_features)")
        w4 = w4[None] if w4.ndim == 1 else w4
        b1 = as_bias(bias, w4.shape[0])
    else:
        x4 = batched(x)
    if name == "batch_norm":
        w4 = as_bias(weight, x4.shape[1], "weight (γ)")
        b1 = as_bias(bias, x4.shape[1], "bias (β)")
        params = dict(params)  # a single running statistic stands for every channel
        for key in ("running_mean", "running_var"):
            params[key] = as_bias(params.get(key), x4.shape[1], key)
    if name in WEIGHTED:
        w4 = conv_weight(weight, x4.shape[1], params.get("groups", 1), name == "conv_transpose2d")
        out_channels = w4.shape[0] if name == "conv2d" else w4.shape[1] * params.get("groups", 1)
        b1 = as_bias(bias, out_channels)
    out, cache = _forward(name, x4, w4, b1, params)
    small = explain and ex.is_small(out.shape)
    steps: tuple[ex.Step, ...] = ()
    if small and name in CHANNELWISE_STEPS:
        steps = CHANNELWISE_STEPS[name](x4, out, cache)
    elif small and name == "linear":
        steps = ex.linear_steps(cache.x, cache.weight, b1, out)
    elif small and name == "batch_norm":
        steps = _batch_norm_steps(x4, out, w4, b1, params)
    if small and name == "conv2d":
        steps = ex.conv2d_steps(out, cache, b1)
    elif small and name == "conv_transpose2d":
        steps = ex.conv_transpose2d_steps(cache)
    elif small and name == "max_pool2d":
        steps = ex.max_pool2d_steps(x4, out, cache)
    elif small and name == "avg_pool2d":
        steps = ex.avg_pool2d_steps(x4, out, cache)
    grads: dict[str, np.ndarray] = {}
    grad4 = None
    backward_steps: tuple[ex.Step, ...] = ()
    if grad_output is not None:
        grad4 = as_array(grad_output, "grad_output", (2, 3, 4), "the output's shape")
        if grad4.ndim < 4 and grad4.size == out.size:  # textbook (H, W) or (C, H, W) gradient
            grad4 = grad4.reshape(out.shape)
        if grad4.shape != out.shape:
            if out.ndim != 4:  # linear: the output as it is
                raise ArgumentError(
                    f"grad_output (--backward) must have the shape of the output, {out.shape}; "
                    f"got shape {tuple(np.shape(grad_output))}."
                )
            expected = out.shape[1:] if out.shape[0] == 1 else out.shape
            expected = expected[1:] if expected[0] == 1 and len(expected) == 3 else expected
            raise ArgumentError(
                f"grad_output (--backward) must have the shape of the output, {tuple(expected)} "
                f"(batched: {out.shape}); got shape {tuple(np.shape(grad_output))}."
            )
        result = _BACKWARD[name](grad4, cache)
        if isinstance(result, np.ndarray):
            grads["input"] = result
        else:  # only for what was given (batch norm's backward pairs γ and β)
            given = {"input": x4, "weight": w4, "bias": b1}
            grads = {
                k: v for k, v in vars(result).items() if v is not None and given[k] is not None
            }
        if small and name == "conv2d":
            scatter, weight_steps = ex.conv2d_backward_steps(grad4, cache)
            backward_steps = scatter + weight_steps
        elif small and name == "conv_transpose2d":
            input_steps, weight_steps = ex.conv_transpose2d_backward_steps(grad4, cache)
            backward_steps = input_steps + weight_steps
        elif small and name == "max_pool2d":
            backward_steps = ex.max_pool2d_backward_steps(grad4, cache)
        elif small and name == "avg_pool2d":
            backward_steps = ex.avg_pool2d_backward_steps(grad4, cache)
        elif small and name == "global_avg_pool":
            backward_steps = ex.global_avg_pool_backward_steps(grad4, x4.shape)
        elif small and name == "upsample":
            interp = tuple(s for s in steps if isinstance(s, ex.InterpStep))
            backward_steps = ex.upsample_backward_steps(grad4, interp)
        elif small and name == "relu":
            backward_steps = ex.relu_backward_steps(grad4, cache)
    inputs = {"input": x4}
    if w4 is not None:
        inputs["weight"] = w4
    if b1 is not None:
        inputs["bias"] = b1
    if name == "upsample":
        inputs["rows"], inputs["cols"] = cache.rows, cache.cols
    if name == "batch_norm":
        for key in ("running_mean", "running_var"):
            if params.get(key) is not None:
                inputs[key] = np.asarray(params[key], dtype=float)
    updated = {}
    if name == "batch_norm" and params.get("training"):
        updated = {
            key: value
            for key, value in (
                ("running_mean", cache.running_mean),
                ("running_var", cache.running_var),
            )
            if value is not None
        }
    names = channel_names or tuple(f"channel {c}" for c in range(x4.shape[1]))
    return ex.Worked(
        operator=name,
        output=out,
        steps=steps,
        complete=bool(steps),
        inputs=inputs,
        params=params,
        per_channel=_per_channel(name, x4, w4, params, out) if per_channel else (),
        channel_names=names,
        grads=grads,
        grad_output=grad4,
        backward_steps=backward_steps,
        input_ndim=np.ndim(x),
        updated=updated,
    )


# (input, output, forward cache) → the worked steps of an operator without weights
CHANNELWISE_STEPS: dict[str, Callable[[np.ndarray, np.ndarray, Any], tuple[ex.Step, ...]]] = {
    "global_avg_pool": lambda x, out, cache: ex.global_avg_pool_steps(x, out),
    "upsample": lambda x, out, cache: ex.upsample_steps(x, out, cache.rows, cache.cols),
    "relu": lambda x, out, cache: ex.relu_steps(x, out),
}


def _batch_norm_steps(
    x: np.ndarray,
    out: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    params: dict[str, Any],
) -> tuple[ex.Step, ...]:
    """The statistics batch_norm_forward normalised with: the batch's, or the running ones."""
    training = bool(params.get("training", False))
    if training:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # biased, as the forward
    else:
        mean = np.asarray(params["running_mean"], dtype=float)
        var = np.asarray(params["running_var"], dtype=float)
    eps = float(params.get("eps", 1e-5))
    return ex.batch_norm_steps(x, out, mean, var, gamma, beta, training, eps)


def _finish(worked: ex.Worked, explain: bool) -> Any:
    return worked if explain else worked.result


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    explain: bool = False,
) -> Any:
    """conv2d on textbook shapes; with ``explain=True`` a ``Worked`` (``.output``, ``.steps``)."""
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    worked = run("conv2d", x, weight, bias, explain=explain, per_channel=explain, **params)
    return _finish(worked, explain)


def conv_transpose2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    explain: bool = False,
) -> Any:
    """conv_transpose2d on textbook shapes; ``explain=True`` gives a ``Worked``."""
    params = dict(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )
    worked = run(
        "conv_transpose2d", x, weight, bias, explain=explain, per_channel=explain, **params
    )
    return _finish(worked, explain)


def max_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    *,
    explain: bool = False,
) -> Any:
    """max_pool2d on textbook shapes; ``explain=True`` gives a ``Worked``."""
    params = dict(
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )
    return _finish(run("max_pool2d", x, explain=explain, **params), explain)


def avg_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    explain: bool = False,
) -> Any:
    """avg_pool2d on textbook shapes; ``explain=True`` gives a ``Worked``."""
    params = dict(
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    return _finish(run("avg_pool2d", x, explain=explain, **params), explain)
