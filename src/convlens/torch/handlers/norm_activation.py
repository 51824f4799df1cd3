"""Normalisations (batch, layer, group), activations, softmax and dropout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.batch_axis import STANDARD
from convlens.torch.handlers.registry import Handler, arg, expect_channels, handles

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(F.batch_norm, any_layout=True)
def _batch_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """BatchNorm of (N, C, H, W) maps (batchnorm2d) or of axis 1 of anything else
    (batchnorm1d), also with the batch merged into axis 0 (LeViT's ``bn(x.flatten(0, 1))``).
    A module in eval mode inside a model that trains keeps its running statistics
    (``training=false``); a model traced in eval mode is described as it would train."""
    x = args[0]
    mean, var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    layout, rank = t.batch_axis(x), x.dim()
    channels = None if layout is None else layout.sample_axis(1, rank)
    if layout is None or channels is None:
        return NotImplemented  # the channels would be the batch's axis
    stats = weight if weight is not None else mean
    if stats is not None:
        expect_channels(t, x, int(stats.shape[0]), "channels")
    spec: dict[str, Any] = {
        "affine": weight is not None,
        "track_running_stats": mean is not None,
        "eps": float(arg(args, kwargs, 7, "eps", 1e-5)),
        "training": bool(arg(args, kwargs, 5, "training", False)) or not t.training_step,
    }
    if layout == STANDARD and rank == 4:
        return t.record("batchnorm2d", spec, [x], [weight, bias, mean, var])
    if layout == STANDARD and rank == 5:  # (N, C, D, H, W): a volume or clip
        return t.record("batchnorm3d", spec, [x], [weight, bias, mean, var])
    spec["dim"] = channels + 1  # counted with the batch, as the rules count axes
    return t.record("batchnorm1d", spec, [x], [weight, bias, mean, var], layout=layout)


def _activation(kind: str, extra: Callable[[tuple, dict], dict] | None = None) -> Handler:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, inplace = args[0], bool(kwargs.get("inplace", False))
        spec = extra(args, kwargs) if extra else {}
        return t.record(kind, spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)

    return handler


handles(F.relu, torch.relu, any_layout=True)(_activation("relu"))
handles(torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, any_layout=True)(_activation("sigmoid"))
handles(torch.tanh, torch.Tensor.tanh, F.tanh, any_layout=True)(_activation("tanh"))
handles(F.gelu, any_layout=True)(_activation("gelu"))
handles(F.silu, any_layout=True)(_activation("silu"))
handles(F.hardswish, any_layout=True)(_activation("hardswish"))
handles(F.hardsigmoid, any_layout=True)(_activation("hardsigmoid"))
handles(F.elu, any_layout=True)(
    _activation("elu", lambda a, k: {"alpha": float(arg(a, k, 1, "alpha", 1.0))})
)
handles(F.leaky_relu, any_layout=True)(
    _activation(
        "leaky_relu", lambda a, k: {"negative_slope": float(arg(a, k, 1, "negative_slope", 0.01))}
    )
)


@handles(F.relu_, torch.relu_, torch.Tensor.relu_, any_layout=True)
def _relu_inplace(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record("relu", {}, [args[0]], inplace=True, layout=t.batched_layout(args[0]))


@handles(F.hardtanh, any_layout=True)
def _hardtanh(t: Tracer, args: tuple, kwargs: dict) -> Any:
    low, high = arg(args, kwargs, 1, "min_val", -1.0), arg(args, kwargs, 2, "max_val", 1.0)
    if (low, high) != (0.0, 6.0):
        return NotImplemented
    inplace = bool(arg(args, kwargs, 3, "inplace"))
    x = args[0]
    return t.record("relu6", {}, [x], inplace=inplace, layout=t.batched_layout(x), like=x)


@handles(F.softmax, torch.softmax, torch.Tensor.softmax, any_layout=True)
def _softmax(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, dim = args[0], arg(args, kwargs, 1, "dim")
    axis = t.sample_axis(x, -1 if dim is None else dim)
    if axis is None or kwargs.get("dtype") is not None:
        return NotImplemented  # over the batch: not per sample
    return t.record("softmax", {"dim": axis}, [x], layout=t.batched_layout(x))


def _dropout(channelwise: bool) -> Handler:
    """F.dropout, or (``channelwise``) F.dropout1d/2d/3d, which zero whole channels."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if channelwise and t.batch_axis(x) != STANDARD:
            return NotImplemented  # whole channels of a tensor whose batch moved
        spec: dict[str, Any] = {"p": float(arg(args, kwargs, 1, "p", 0.5))}
        if channelwise:
            spec["channelwise"] = True
        inplace = bool(arg(args, kwargs, 3, "inplace", False))
        return t.record("dropout", spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)

    return handler


handles(F.dropout, any_layout=True)(_dropout(channelwise=False))
handles(F.dropout1d, F.dropout2d, F.dropout3d, any_layout=True)(_dropout(channelwise=True))


@handles(F.layer_norm, any_layout=True)
def _layer_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, shape = args[0], tuple(int(d) for d in arg(args, kwargs, 1, "normalized_shape"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    layout = t.batch_axis(x)
    if layout is None or layout.axis >= x.dim() - len(shape):
        return NotImplemented  # the normalised axes hold the batch
    return t.record(
        "layer_norm",
        {
            "normalized_shape": shape,
            "elementwise_affine": weight is not None,
            "bias": bias is not None,
            "eps": float(arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
        layout=layout,
    )


@handles(F.group_norm)
def _group_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, groups = args[0], int(arg(args, kwargs, 1, "num_groups"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    if weight is not None:
        expect_channels(t, x, int(weight.shape[0]), "channels")
    return t.record(
        "group_norm",
        {
            "num_groups": groups,
            "affine": weight is not None,
            "eps": float(arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
    )
