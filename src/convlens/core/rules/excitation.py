"""Squeeze-and-excitation (Hu et al. 2018), as torchvision's SqueezeExcitation builds it:
global average pool → 1×1 conv C→C/r → ReLU → 1×1 conv C/r→C → sigmoid → scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import floordiv, normalize
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import spatial
from convlens.core.steps import step

SE = Schema((Arg("r", "int", 16, positional=True, help="channel reduction ratio"),))


@register_rule("se", SE, "squeeze-and-excitation block with reduction r", has_weights=True)
def se(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    c, h, w = spatial("se", inputs[0])
    squeezed = floordiv(c, args["r"])  # C/r, rounded down
    if squeezed == 0:
        raise RuleError(f"reduction r={args['r']} leaves no channels from {c}")
    params = normalize(2 * c * squeezed + squeezed + c)
    macs = normalize(2 * c * squeezed)
    n = normalize(c * h * w)
    work = normalize(n + squeezed + c + n)  # pool, ReLU, sigmoid, scale
    values = {"C": c, "C_r": squeezed}
    return Cost(
        output_shape=(c, h, w),
        params=params,
        param_tensors=4,  # two convolutions, each with a bias
        macs=macs,
        bias_flops=normalize(squeezed + c),
        other_flops=work,
        connections=normalize(macs + squeezed + c),
        rf_global=True,  # every output is gated by a statistic of the whole input
        # The scale keeps x and the gate; the convs keep the pooled vector and the ReLU output.
        saves=(Saved("input"), Saved("extra", elements=normalize(2 * c + squeezed))),
        steps=(
            step(
                "params",
                "squeezed channels",
                "C_r",
                "⌊{C}/{r}⌋",
                {"C": c, "r": args["r"]},
                squeezed,
            ),
            step(
                "params",
                "parameters",
                "params",
                "2·{C}·{C_r} + {C_r} + {C}",
                values,
                params,
                note="two 1×1 convolutions with biases",
            ),
            step("macs", "multiply-accumulates", "MACs", "2·{C}·{C_r}", values, macs),
        ),
        args=dict(args),
    )
