"""Element-wise activations and dropout, each built by one factory line.

FLOPs: one per element for every activation (a documented simplification:
transcendental functions are not expanded), three for softmax (exp, sum, divide).
``saves`` follows what PyTorch's autograd keeps: the output for relu, sigmoid,
tanh and softmax; the input for the others (elu too: its out-of-place backward reads the
input). Run in place, relu, leaky_relu and elu keep the (shared) result, while relu6, silu,
hardswish and hardsigmoid make autograd keep a copy of the input they overwrite — measured
on torch 2.13.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import normalize
from convlens.core.registry import Cost, Saved, Shape, register_rule
from convlens.core.rules.common import elements
from convlens.core.steps import step


def elementwise(
    kind: str,
    summary: str,
    flops_per_element: int,
    saves: str,
    schema: Schema | None = None,
    copied_in_place: bool = False,
) -> None:
    """Register an activation: shape unchanged, ``flops_per_element`` FLOPs per element."""

    def rule(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
        n = elements(inputs[0])
        work = normalize(flops_per_element * n)
        return Cost(
            output_shape=tuple(inputs[0]),
            other_flops=work,
            saves=(Saved(saves, copied_in_place=copied_in_place),) if saves else (),
            steps=(
                step(
                    "flops", f"{kind} FLOPs", "FLOPs", f"{flops_per_element}·{{N}}", {"N": n}, work
                ),
            ),
            args=dict(args),
        )

    register_rule(kind, schema or Schema(), summary)(rule)


elementwise("relu", "rectified linear unit max(0, x)", 1, "output")
elementwise("relu6", "min(max(0, x), 6) (MobileNetV2)", 1, "input", copied_in_place=True)
elementwise(
    "leaky_relu",
    "max(x, a·x)",
    1,
    "input",
    Schema((Arg("negative_slope", "float", 0.01, positional=True, help="slope a for x < 0"),)),
)
elementwise(
    "elu",
    "exponential linear unit",
    1,
    "input",
    Schema((Arg("alpha", "float", 1.0, positional=True, help="scale for x < 0"),)),
)
elementwise("sigmoid", "logistic sigmoid", 1, "output")
elementwise("tanh", "hyperbolic tangent", 1, "output")
elementwise("gelu", "Gaussian error linear unit", 1, "input")
elementwise("silu", "x·sigmoid(x) (swish)", 1, "input", copied_in_place=True)
elementwise("hardswish", "x·relu6(x + 3)/6 (MobileNetV3)", 1, "input", copied_in_place=True)
elementwise("hardsigmoid", "relu6(x + 3)/6", 1, "input", copied_in_place=True)
elementwise(
    "softmax",
    "softmax over the channels (dim 1)",
    3,
    "output",
    Schema((Arg("dim", "int", 1, minimum=1, help="axis, counted with the batch"),)),
)
elementwise("identity", "no-op, useful as a named point in a graph", 0, "")
elementwise("scalar_op", "arithmetic with a constant (x·a, x + a, x − a, x / a)", 1, "")

DROPOUT = Schema(
    (
        Arg("p", "float", 0.5, positional=True, interval=(0, 1), help="probability of zeroing"),
        Arg(
            "channelwise",
            "bool",
            False,
            help="zero whole channels (nn.Dropout2d, Dropout1d): one mask value per channel",
        ),
    )
)


@register_rule("dropout", DROPOUT, "dropout (identity at inference)")
def dropout(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    if args["p"] == 0:  # PyTorch returns the input itself: nothing kept, nothing new
        return Cost(output_shape=tuple(inputs[0]), alias=True, args=dict(args))
    # Training keeps the scaled random mask (same dtype as the activations): one value
    # per element, or per channel (N×C×1×1) when whole channels are dropped.
    mask = inputs[0][0] if args["channelwise"] else elements(inputs[0])
    return Cost(
        output_shape=tuple(inputs[0]),
        saves=(Saved("extra", elements=mask),),
        args=dict(args),
    )
