"""The friendly layer over the operators: textbook shapes in, results and working out.

``conv2d(x, w, padding=1, explain=True)`` takes an image as (H, W), (C, H, W) or
(N, C, H, W) and a filter as one (K_h, K_w) matrix (applied to every channel, the channel
results summed, as textbook exercises do), one matrix per channel (C, K_h, K_w), or a full
(O, C / groups, K_h, K_w) weight. ``run`` does the work for these wrappers and for
``convlens op``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference import explain as ex
from convlens.reference._args import as_array
from convlens.reference.operators import Operator, get_operator


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


def _per_channel(
    op: Operator, x: np.ndarray, w: np.ndarray | None, params: dict[str, Any], out: np.ndarray
) -> tuple[np.ndarray, ...]:
    """What each input channel contributes to the output (bias left out)."""
    if op.weight == "matrix":
        return ()  # no channels: the output is a matrix product
    if op.weight != "filter":
        return tuple(out[:, c] for c in range(out.shape[1]))  # channel-wise operators
    parts = []
    for c in range(x.shape[1]):
        only_c = np.zeros_like(x)
        only_c[:, c] = x[:, c]
        parts.append(op.forward(only_c, w, None, params)[0])
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
    op = get_operator(name)
    if op.weight is None and (weight is not None or bias is not None):
        raise ArgumentError(f"{name} takes no weight or bias.")
    if op.weight == "filter" and weight is None:
        raise ArgumentError(f"{name} needs a weight (a filter matrix).")
    if op.weight == "matrix" and weight is None:
        raise ArgumentError(f"{name} needs a weight, shape (out_features, in_features).")
    w4 = b1 = None
    if op.weight == "matrix":
        # (in_features,) is one sample; anything else is (…, in_features)
        x4 = as_array(x, "input", tuple(range(1, 9)), "(…, in_features)")
        x4 = x4[None] if x4.ndim == 1 else x4
        w4 = as_array(weight, "weight", (1, 2), "(out_features, in_features)")
        w4 = w4[None] if w4.ndim == 1 else w4
        b1 = as_bias(bias, w4.shape[0])
    else:
        x4 = batched(x)
    if op.weight == "affine":
        w4 = as_bias(weight, x4.shape[1], "weight (γ)")
        b1 = as_bias(bias, x4.shape[1], "bias (β)")
        params = dict(params)  # a single running statistic stands for every channel
        for key in ("running_mean", "running_var"):
            params[key] = as_bias(params.get(key), x4.shape[1], key)
    if op.weight == "filter":
        transposed = name == "conv_transpose2d"
        w4 = conv_weight(weight, x4.shape[1], params.get("groups", 1), transposed)
        out_channels = w4.shape[1] * params.get("groups", 1) if transposed else w4.shape[0]
        b1 = as_bias(bias, out_channels)
    out, cache = op.forward(x4, w4, b1, params)
    small = explain and ex.is_small(out.shape)
    steps: tuple[ex.Step, ...] = ()
    if small and op.steps is not None:
        steps = op.steps(x4, out, cache, w4, b1, params)
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
        result = op.backward(grad4, cache)
        if isinstance(result, np.ndarray):
            grads["input"] = result
        else:  # only for what was given (batch norm's backward pairs γ and β)
            given = {"input": x4, "weight": w4, "bias": b1}
            grads = {
                k: v for k, v in vars(result).items() if v is not None and given[k] is not None
            }
        if small and op.backward_steps is not None:
            backward_steps = op.backward_steps(grad4, cache, x4, steps)
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
        per_channel=_per_channel(op, x4, w4, params, out) if per_channel else (),
        channel_names=names,
        grads=grads,
        grad_output=grad4,
        backward_steps=backward_steps,
        input_ndim=np.ndim(x),
        updated=updated,
    )


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
