"""Normalisation across the channels in PyTorch: batchnorm2d, batchnorm1d, batchnorm3d,
instance_norm, local_response_norm (rules: core/rules/norm.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.batch_axis import STANDARD
from convlens.torch.lowering.common import (
    described,
    expect_channels,
    feature_map,
    flag,
    signal_or_volume,
    whole,
    with_gradient,
)
from convlens.torch.registry import Choices, arg, calls, handles, lowering

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(F.batch_norm, any_layout=True)
def trace_batch_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """BatchNorm of (N, C, H, W) maps (batchnorm2d), of (N, C, D, H, W) volumes
    (batchnorm3d) or of axis 1 of anything else
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


def _batchnorm(args: Mapping[str, Any], shape: tuple, dims: int) -> nn.Module:
    """nn.BatchNorm1d/2d/3d; with ``training=false`` one that stays in eval mode when the
    model trains (frozen BatchNorm, as fine-tuning keeps it); a channel axis other than 1
    (``dim``) normalised as LeViT does, ``bn(x.flatten(0, 1)).reshape_as(x)``."""
    dim = int(args.get("dim", 1))
    channels = whole(shape[dim - 1])
    cls: type[nn.Module] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    if not args["training"]:
        cls = type(f"Frozen{cls.__name__}", (cls,), {"train": _stay_in_eval})
    bn = cls(channels, args["eps"], args["momentum"], args["affine"], args["track_running_stats"])
    if not args["training"]:
        bn.eval()
    return bn if dim == 1 else ChannelsLast(bn, dim)


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


class ChannelsLast(nn.Module):
    """A BatchNorm over axis ``dim`` of each sample: that axis moved last, every other
    one merged with the batch (LeViT's ``bn(x.flatten(0, 1)).reshape_as(x)``)."""

    def __init__(self, bn: nn.Module, dim: int):
        super().__init__()
        self.bn, self.dim = bn, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(self.dim, -1)
        return self.bn(y.reshape(-1, y.shape[-1])).reshape(y.shape).movedim(-1, self.dim)


def batchnorm2d_examples(pick: Choices) -> str:
    options = ["batchnorm2d", f"batchnorm2d affine={flag(pick)}", "batchnorm2d training=false"]
    return described(feature_map(pick), pick.choice(options))


def batchnorm1d_examples(pick: Choices) -> str:
    """Of flattened features, or of a (C, L) signal."""
    line = pick.choice(["batchnorm1d", "batchnorm1d affine=false"])
    if pick.boolean():
        return described(signal_or_volume(pick, 1, pick.integer(1, 4)), line)
    return described(feature_map(pick), "flatten", line)


def batchnorm3d_examples(pick: Choices) -> str:
    options = ["batchnorm3d", "batchnorm3d affine=false", "batchnorm3d training=false"]
    line = pick.choice(options)
    return described(signal_or_volume(pick, 3, pick.integer(1, 4)), line)


lowering(
    "batchnorm2d",
    traced_by=[trace_batch_norm],
    build=lambda a, s: _batchnorm(a, s, 2),
    examples=batchnorm2d_examples,
)
lowering(
    "batchnorm1d",
    traced_by=[trace_batch_norm],
    build=lambda a, s: _batchnorm(a, s, 1),
    examples=batchnorm1d_examples,
)
lowering(
    "batchnorm3d",
    traced_by=[trace_batch_norm],
    build=lambda a, s: _batchnorm(a, s, 3),
    examples=batchnorm3d_examples,
)


# -- instance_norm ------------------------------------------------------------------------
@handles(F.instance_norm)
def trace_instance_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """InstanceNorm1d/2d/3d of (N, C, L), (N, C, H, W) or (N, C, D, H, W). As for BatchNorm,
    a module in eval mode inside a model that trains keeps to its running statistics
    (``training=false``); a model traced in eval mode is described as it would train."""
    x = args[0]
    if x.dim() not in (3, 4, 5):
        return NotImplemented
    mean, var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    stats = weight if weight is not None else mean
    if stats is not None:
        expect_channels(t, x, int(stats.shape[0]), "channels")
    use_input_stats = bool(arg(args, kwargs, 5, "use_input_stats", True))
    spec = {
        "affine": weight is not None,
        "track_running_stats": mean is not None,
        "eps": float(arg(args, kwargs, 7, "eps", 1e-5)),
        "training": use_input_stats or not t.training_step,
    }
    return t.record("instance_norm", spec, [x], [weight, bias, mean, var])


def _instance_norm(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """nn.InstanceNorm1d/2d/3d for a signal, an image or a volume; with ``training=false``
    one that stays in eval mode when the model trains."""
    cls: type[nn.Module] = {2: nn.InstanceNorm1d, 3: nn.InstanceNorm2d, 4: nn.InstanceNorm3d}[
        len(shape)
    ]
    if not args["training"]:
        cls = type(f"Frozen{cls.__name__}", (cls,), {"train": _stay_in_eval})
    norm = cls(
        whole(shape[0]), args["eps"], args["momentum"], args["affine"], args["track_running_stats"]
    )
    return norm.eval() if not args["training"] else norm


def instance_norm_examples(pick: Choices) -> str:
    axes = pick.choice([2, 2, 1, 3])
    shape = feature_map(pick) if axes == 2 else signal_or_volume(pick, axes, pick.integer(1, 4))
    line = f"instance_norm affine={flag(pick)} track_running_stats={flag(pick)}"
    if pick.boolean():
        line += " training=false"
    return described(shape, *with_gradient(pick, shape, line))


lowering(
    "instance_norm",
    traced_by=[trace_instance_norm],
    build=_instance_norm,
    examples=instance_norm_examples,
)


# -- local_response_norm ------------------------------------------------------------------
@handles(F.local_response_norm)
def trace_local_response_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """F.local_response_norm is PyTorch's Python composition (x², pad, avg_pool, pow, div):
    traced as the one call, the row counts the whole composition."""
    x = args[0]
    if x.dim() < 3:
        return NotImplemented  # PyTorch's own error
    spec = {
        "size": int(arg(args, kwargs, 1, "size")),
        "alpha": float(arg(args, kwargs, 2, "alpha", 1e-4)),
        "beta": float(arg(args, kwargs, 3, "beta", 0.75)),
        "k": float(arg(args, kwargs, 4, "k", 1.0)),
    }
    return t.record("local_response_norm", spec, [x])


def local_response_norm_examples(pick: Choices) -> str:
    axes = pick.choice([2, 2, 1, 3])
    channels = pick.integer(1, 8)
    if axes == 2:
        shape: tuple[int, ...] = (channels, pick.integer(1, 8), pick.integer(1, 8))
    else:
        shape = signal_or_volume(pick, axes, channels)
    options = ["", " alpha=0.001 beta=0.5 k=2", " k=2"]
    line = f"local_response_norm {pick.integer(1, 6)}{pick.choice(options)}"
    return described(shape, *with_gradient(pick, shape, line))


lowering(
    "local_response_norm",
    traced_by=[trace_local_response_norm],
    build=lambda a, s: nn.LocalResponseNorm(whole(a["size"]), a["alpha"], a["beta"], a["k"]),
    examples=local_response_norm_examples,
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
def _batchnorm2d_call(m: Any, x: Any) -> Any:
    """nn.BatchNorm2d on a 4-D input (a wrong rank is its forward's error to raise). In
    training it counts the batch first, as its forward does (the trace puts the counter
    back afterwards)."""
    if x.dim() != 4:
        return None
    factor = 0.0 if m.momentum is None else m.momentum
    if m.training and m.track_running_stats and m.num_batches_tracked is not None:
        m.num_batches_tracked.add_(1)
        factor = 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum
    stats = not m.training or m.track_running_stats
    return (
        F.batch_norm,
        (x, m.running_mean if stats else None, m.running_var if stats else None),
        {
            "weight": m.weight,
            "bias": m.bias,
            "training": m.training or (m.running_mean is None and m.running_var is None),
            "momentum": factor,
            "eps": m.eps,
        },
    )


calls(nn.BatchNorm2d, how=_batchnorm2d_call)
calls(
    nn.LocalResponseNorm,
    how=lambda m, x: (
        F.local_response_norm,
        (x, m.size),
        {"alpha": m.alpha, "beta": m.beta, "k": m.k},
    ),
)


def _instance_norm_call(m: Any, x: Any) -> Any:
    """nn.InstanceNorm1d/2d/3d on a batched input of its rank whose channels match (an
    unbatched input, a wrong rank or channel count: its forward's to handle)."""
    if x.dim() != m._get_no_batch_dim() + 1 or x.shape[1] != m.num_features:
        return None
    return (
        F.instance_norm,
        (x,),
        {
            "running_mean": m.running_mean,
            "running_var": m.running_var,
            "weight": m.weight,
            "bias": m.bias,
            "use_input_stats": m.training or not m.track_running_stats,
            "momentum": m.momentum if m.momentum is not None else 0.0,
            "eps": m.eps,
        },
    )


calls(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, how=_instance_norm_call)
