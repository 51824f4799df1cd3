"""Normalisations (batch, layer, group), activations, softmax and dropout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.handlers.registry import Handler, arg, expect_channels, handles

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(F.batch_norm)
def _batch_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    mean, var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    if x.dim() != 4:
        return NotImplemented
    stats = weight if weight is not None else mean
    if stats is not None:
        expect_channels(t, x, int(stats.shape[0]), "channels")
    spec = {
        "affine": weight is not None,
        "track_running_stats": mean is not None,
        "eps": float(arg(args, kwargs, 7, "eps", 1e-5)),
    }
    return t.record("batchnorm2d", spec, [x], [weight, bias, mean, var])


def _activation(kind: str, extra: Callable[[tuple, dict], dict] | None = None) -> Handler:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        inplace = bool(kwargs.get("inplace", False))
        return t.record(kind, extra(args, kwargs) if extra else {}, [args[0]], inplace=inplace)

    return handler


handles(F.relu, torch.relu)(_activation("relu"))
handles(torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid)(_activation("sigmoid"))
handles(torch.tanh, torch.Tensor.tanh, F.tanh)(_activation("tanh"))
handles(F.gelu)(_activation("gelu"))
handles(F.silu)(_activation("silu"))
handles(F.hardswish)(_activation("hardswish"))
handles(F.hardsigmoid)(_activation("hardsigmoid"))
handles(F.elu)(_activation("elu", lambda a, k: {"alpha": float(arg(a, k, 1, "alpha", 1.0))}))
handles(F.leaky_relu)(
    _activation(
        "leaky_relu", lambda a, k: {"negative_slope": float(arg(a, k, 1, "negative_slope", 0.01))}
    )
)


@handles(F.relu_, torch.relu_, torch.Tensor.relu_)
def _relu_inplace(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record("relu", {}, [args[0]], inplace=True)


@handles(F.hardtanh)
def _hardtanh(t: Tracer, args: tuple, kwargs: dict) -> Any:
    low, high = arg(args, kwargs, 1, "min_val", -1.0), arg(args, kwargs, 2, "max_val", 1.0)
    if (low, high) != (0.0, 6.0):
        return NotImplemented
    return t.record("relu6", {}, [args[0]], inplace=bool(arg(args, kwargs, 3, "inplace")))


@handles(F.softmax, torch.softmax, torch.Tensor.softmax)
def _softmax(t: Tracer, args: tuple, kwargs: dict) -> Any:
    dim = arg(args, kwargs, 1, "dim")
    if dim is None or dim < 0:
        dim = args[0].dim() + (dim if dim is not None else -1)
    if dim == 0:
        return NotImplemented
    return t.record("softmax", {"dim": int(dim)}, [args[0]])


@handles(F.dropout, F.dropout2d)
def _dropout(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record(
        "dropout",
        {"p": float(arg(args, kwargs, 1, "p", 0.5))},
        [args[0]],
        inplace=bool(arg(args, kwargs, 3, "inplace", False)),
    )


@handles(F.layer_norm)
def _layer_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, shape = args[0], tuple(int(d) for d in arg(args, kwargs, 1, "normalized_shape"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
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
