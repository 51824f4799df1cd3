"""Batch normalisation: batchnorm2d on (C, H, W) maps, batchnorm3d on (C, D, H, W) volumes,
batchnorm1d on (C,) or (C, L)
(and on any axis, for a batch merged with another axis, LeViT's ``bn(x.flatten(0, 1))``).

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks: the input,
and in training mode the batch mean and 1/std per channel, in the input's dtype (float16
stays float16); in eval mode (running statistics, e.g. frozen while the rest trains) two
empty tensors instead of the statistics.

Instance normalisation (instance_norm) is BatchNorm's kernel run on a (1, N·C, *spatial)
view of the batch, so the measured saves are BatchNorm's, per sample and channel: the
input, the batch mean and 1/std (N·C each) when it normalises with the sample's own
statistics, the running mean and variance repeated N times (N·C each) when it tracks them,
and the weight repeated N times (N·C) when affine. Local response normalisation
(local_response_norm) is a composition of PyTorch operations (x², padding, an average over
``size`` channels, ·α + k, ^β, x / ·): autograd keeps the input, the zero-padded squares
((C + size − 1)·spatial), the base and the power (C·spatial each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import Dim, known_equal, normalize, product
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape, layout, spatial, spatial_nd
from convlens.core.steps import Step, step

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


def _scale_and_statistics(channels: Dim, args: Mapping[str, Any]) -> tuple[Dim, Dim, list[Step]]:
    """(parameters, buffers, their steps) of BatchNorm and InstanceNorm (_NormBase): γ and β
    per channel with ``affine``; running_mean, running_var (C each) and num_batches_tracked
    (one int64) with ``track_running_stats``, as PyTorch registers them."""
    params = normalize(2 * channels) if args["affine"] else 0
    buffers = normalize(2 * channels + 1) if args["track_running_stats"] else 0
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
    ]
    return params, buffers, steps


def _batchnorm(shape: Shape, channels: Dim, args: Mapping[str, Any]) -> Cost:
    params, buffers, steps = _scale_and_statistics(channels, args)
    n = elements(shape)
    work = normalize(2 * n)  # inference: y = x·a + b with a, b folded per channel
    steps += [
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


INSTANCE_NORM = Schema(
    (
        Arg("eps", "float", 1e-5, help="added to the variance"),
        Arg("momentum", "float", 0.1, help="running-statistics momentum"),
        Arg("affine", "bool", False, help="learn a scale and a shift per channel"),
        Arg(
            "track_running_stats",
            "bool",
            False,
            help="keep running mean and variance buffers (used in eval mode)",
        ),
        Arg(
            "training",
            "bool",
            True,
            help="false: kept in eval mode while the rest trains; with running statistics it "
            "normalises with them instead of each sample's own",
        ),
    )
)


def _channels_and_positions(kind: str, shape: Shape) -> tuple[Dim, Dim]:
    """(C, positions per channel) of a (C, L), (C, H, W) or (C, D, H, W) input."""
    if len(shape) not in (2, 3, 4):
        raise RuleError(
            f"{kind} expects a {layout(1)}, {layout(2)} or {layout(3)} input, "
            f"got {fmt_shape(shape)}"
        )
    return shape[0], product(shape[1:])


@register_rule(
    "instance_norm",
    INSTANCE_NORM,
    "instance normalisation of each sample's channels (nn.InstanceNorm1d/2d/3d)",
    has_weights=True,
)
def instance_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    channels, positions = _channels_and_positions("instance_norm", shape)
    running = args["track_running_stats"]
    own_statistics = args["training"] or not running  # F.instance_norm's use_input_stats
    if own_statistics and known_equal(positions, 1) is True:
        raise RuleError(
            f"instance_norm of {fmt_shape(shape)} normalises one value per channel; "
            "PyTorch needs more than one spatial element"
        )
    # _NormBase registers num_batches_tracked for InstanceNorm too, which never counts
    params, buffers, steps = _scale_and_statistics(channels, args)
    n = elements(shape)
    # Inference: with running statistics y = x·a + b folded per channel (BatchNorm's 2·N);
    # without, each sample's mean and variance first (group_norm's 5·N, + 2·N affine).
    work = normalize(2 * n if running else 5 * n + (2 * n if args["affine"] else 0))
    # batch_norm on (1, N·C, …): mean and 1/std, running statistics and weight, repeated
    per_channel = 2 * own_statistics + 2 * running + args["affine"]
    saves: tuple[Saved, ...] = (Saved("input"),)
    if per_channel:
        saves += (Saved("extra", elements=normalize(per_channel * channels)),)
    return Cost(
        output_shape=shape,
        params=params,
        param_tensors=2 if args["affine"] else 0,
        buffers=buffers,
        int64_buffers=1 if running else 0,
        other_flops=work,
        saves=saves,
        steps=(
            *steps,
            step(
                "flops",
                "normalisation FLOPs",
                "FLOPs",
                "2·{N}" if running else "{k}·{N}",
                {"N": n} if running else {"k": 7 if args["affine"] else 5, "N": n},
                work,
                note="inference with the running statistics folded: one multiply and one add"
                if running
                else "mean and variance 3, normalise 2, scale and shift 2 per element",
            ),
        ),
        args=dict(args),
    )


LOCAL_RESPONSE_NORM = Schema(
    (
        Arg("size", "int", positional=True, minimum=1, help="neighbouring channels summed"),
        Arg("alpha", "float", 1e-4, help="scale of the mean of squares"),
        Arg("beta", "float", 0.75, help="exponent"),
        Arg("k", "float", 1.0, help="added before the power"),
    )
)


@register_rule(
    "local_response_norm",
    LOCAL_RESPONSE_NORM,
    "local response normalisation across neighbouring channels (nn.LocalResponseNorm; "
    "AlexNet, GoogLeNet)",
)
def local_response_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape = tuple(inputs[0])
    if len(shape) < 2:
        raise RuleError(
            f"local_response_norm expects channels and at least one spatial axis, "
            f"got {fmt_shape(shape)} (PyTorch needs a 3-D or larger batch)"
        )
    channels, positions = shape[0], product(shape[1:])
    size = args["size"]
    n = elements(shape)
    # x²: 1, mean over size channels: size (size − 1 additions, a division), ·α, + k,
    # ^β and x / ·: 1 each
    work = normalize((size + 5) * n)
    return Cost(
        output_shape=shape,
        other_flops=work,  # rf None: element-wise along the spatial axes
        saves=(
            Saved("input"),
            # the padded squares, (C + size − 1)·positions; the base and the power, C·positions
            Saved("extra", elements=normalize((3 * channels + size - 1) * positions)),
        ),
        steps=(
            step(
                "flops",
                "normalisation FLOPs",
                "FLOPs",
                "({size} + 5)·{N}",
                {"size": size, "N": n},
                work,
                note="per element: square 1, mean over size channels size, scale 1, add k 1, "
                "power 1, divide 1",
            ),
        ),
        args=dict(args),
    )
