"""Normalisation: batchnorm2d."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import normalize
from convlens.core.registry import Cost, Saved, Shape, register_rule
from convlens.core.rules.common import elements, spatial
from convlens.core.steps import step

BATCHNORM = Schema(
    (
        Arg("eps", "float", 1e-5, help="added to the variance"),
        Arg("momentum", "float", 0.1, help="running-statistics momentum"),
        Arg("affine", "bool", True, help="learn a scale and a shift per channel"),
        Arg("track_running_stats", "bool", True, help="keep running mean and variance buffers"),
    )
)


@register_rule("batchnorm2d", BATCHNORM, "batch normalisation (nn.BatchNorm2d)", has_weights=True)
def batchnorm2d(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c = spatial("batchnorm2d", inputs[0])[0]
    params = normalize(2 * c) if args["affine"] else 0
    # running_mean, running_var (C each) and num_batches_tracked (one int64), as PyTorch.
    buffers = normalize(2 * c + 1) if args["track_running_stats"] else 0
    n = elements(inputs[0])
    work = normalize(2 * n)  # inference: y = x·a + b with a, b folded per channel
    steps = [
        step(
            "params",
            "parameters",
            "params",
            "2·{C}" if args["affine"] else "0",
            {"C": c},
            params,
            note="a scale γ and a shift β per channel",
        ),
        step(
            "params",
            "buffers",
            "buffers",
            "2·{C} + 1" if args["track_running_stats"] else "0",
            {"C": c},
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
    return Cost(
        output_shape=tuple(inputs[0]),
        params=params,
        buffers=buffers,
        int64_buffers=1 if args["track_running_stats"] else 0,
        other_flops=work,
        # Training-mode backward keeps the input and the batch mean and 1/std (float32).
        saves=(
            Saved("input"),
            Saved("extra", elements=normalize(2 * c), itemsize=4, per_batch=True),
        ),
        steps=tuple(steps),
        args=dict(args),
    )
