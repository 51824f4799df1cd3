"""Batch normalisation: batchnorm2d on (C, H, W) maps, batchnorm3d on (C, D, H, W) volumes,
batchnorm1d on (C,) or (C, L)
(and on any axis, for a batch merged with another axis, LeViT's ``bn(x.flatten(0, 1))``).

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks: the input,
and in training mode the batch mean and 1/std per channel, in the input's dtype (float16
stays float16); in eval mode (running statistics, e.g. frozen while the rest trains) two
empty tensors instead of the statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import Dim, normalize
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape, spatial, spatial_nd
from convlens.core.steps import step

_BATCHNORM_ARGS = (
    Arg("eps", "float", 1e-5, help="added to the variance"),
    Arg("momentum", "float", 0.1, help="running-statistics momentum"),
    Arg("affine", "bool", True, help="learn a scale and a shift per channel"),
    Arg("track_running_stats", "bool", True, help="keep running mean and variance buffers"),
    Arg(
        "training",
        "bool",
        True,
        help="false: kept in eval mode while the rest trains (frozen BatchNorm): it uses "
        "its running statistics, so backward keeps no batch mean and 1/std",
    ),
)
BATCHNORM = Schema(_BATCHNORM_ARGS)
BATCHNORM1D = Schema(
    (
        *_BATCHNORM_ARGS,
        Arg(
            "dim",
            "int",
            1,
            minimum=1,
            help="the channel axis, counted with the batch (2 for a batch merged with "
            "another axis: (N·L, C) per sample is (L, C))",
        ),
    )
)


def _batchnorm(shape: Shape, channels: Dim, args: Mapping[str, Any]) -> Cost:
    params = normalize(2 * channels) if args["affine"] else 0
    # running_mean, running_var (C each) and num_batches_tracked (one int64), as PyTorch.
    buffers = normalize(2 * channels + 1) if args["track_running_stats"] else 0
    n = elements(shape)
    work = normalize(2 * n)  # inference: y = x·a + b with a, b folded per channel
    steps = [
        step(
            "params",
            "parameters",
            "params",
            "2·{C}" if args["affine"] else "0",
            {"C": channels},
            params,
            note="a scale γ and a shift β per channel",
        ),
        step(
            "params",
            "buffers",
            "buffers",
            "2·{C} + 1" if args["track_running_stats"] else "0",
            {"C": channels},
            buffers,
            note="running mean and variance per channel, plus a batch counter",
        ),
        step(
            "flops",
            "normalisation FLOPs",
            "FLOPs",
            "2·{N}",
            {"N": n},
            work,
            note="one multiply and one add per element once the statistics are folded",
        ),
    ]
    # Backward keeps the input and, in training mode, the batch mean and 1/std (C each,
    # per batch, in the input's dtype). Eval mode without running statistics still uses
    # the batch's: PyTorch passes training=True then.
    batch_stats = args["training"] or not args["track_running_stats"]
    saves: tuple[Saved, ...] = (Saved("input"),)
    if batch_stats:
        saves += (
            Saved("extra", elements=normalize(2 * channels), per_batch=True, batch_statistics=True),
        )
    return Cost(
        output_shape=tuple(shape),
        params=params,
        param_tensors=2 if args["affine"] else 0,
        buffers=buffers,
        int64_buffers=1 if args["track_running_stats"] else 0,
        other_flops=work,
        saves=saves,
        steps=tuple(steps),
        args=dict(args),
    )


@register_rule("batchnorm2d", BATCHNORM, "batch normalisation (nn.BatchNorm2d)", has_weights=True)
def batchnorm2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return _batchnorm(inputs[0], spatial("batchnorm2d", inputs[0])[0], args)


@register_rule(
    "batchnorm3d",
    BATCHNORM,
    "batch normalisation of volumes and clips (nn.BatchNorm3d)",
    has_weights=True,
)
def batchnorm3d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return _batchnorm(inputs[0], spatial_nd("batchnorm3d", inputs[0], 3)[0], args)


@register_rule(
    "batchnorm1d",
    BATCHNORM1D,
    "batch normalisation of (C,) or (C, L) per sample (nn.BatchNorm1d), or of the channel axis dim",
    has_weights=True,
)
def batchnorm1d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, dim = tuple(inputs[0]), args["dim"]
    if not 1 <= dim <= len(shape):
        raise RuleError(
            f"batchnorm1d dim={dim}: the input {fmt_shape(shape)} has axes 1 … {len(shape)} "
            "(0 is the batch)"
        )
    return _batchnorm(shape, shape[dim - 1], args)
