"""Counting conventions, named and printed with every report.

MACs are stored; FLOPs are always derived through one of these conventions,
because the existing tools disagree (fvcore calls one multiply-add one flop,
``torch.utils.flop_counter`` calls it two) and never say which they use.
"""

from __future__ import annotations

from enum import StrEnum

from convlens.core.numbers import Dim, normalize


class Convention(StrEnum):
    FULL = "full"
    MAC2 = "2mac"
    MAC1 = "mac"


DESCRIPTIONS: dict[Convention, str] = {
    Convention.FULL: "FLOPs = 2 × MACs + bias additions + normalisation, activation, pooling, "
    "interpolation and element-wise work (per kind, see docs/conventions.md)",
    Convention.MAC2: "FLOPs = 2 × MACs of convolutions and linear layers only "
    "(torch.utils.flop_counter's convention)",
    Convention.MAC1: "FLOPs = MACs of convolutions and linear layers only (fvcore's convention)",
}

MACS_DEFINITION = (
    "MACs = multiply-accumulates of convolutions (incl. transposed, grouped, "
    "depthwise) and linear layers, bias excluded"
)


def flops(convention: Convention, macs: Dim, bias_flops: Dim, other_flops: Dim) -> Dim:
    if convention is Convention.FULL:
        return normalize(2 * macs + bias_flops + other_flops)
    if convention is Convention.MAC2:
        return normalize(2 * macs)
    return macs


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# Optimizer state per trainable parameter, in parameter-sized copies (SGD's momentum
# buffer; Adam's exp_avg and exp_avg_sq), as ``optimizer.state`` holds them after a step.
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
# Bytes of state per trainable parameter *tensor*: PyTorch 2.x's Adam keeps its step count
# as a float32 tensor for each parameter.
OPTIMIZER_TENSOR_BYTES = {"sgd": 0, "momentum": 0, "adam": 4, "adamw": 4}
