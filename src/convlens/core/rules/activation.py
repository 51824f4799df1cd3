"""Element-wise activations and dropout, each built by one factory line.

FLOPs: one per element for every activation (a documented simplification:
transcendental functions are not expanded), three for softmax (exp, sum, divide) and for
log_softmax (exp, sum, subtract; the log is one per row).
``saves`` follows what PyTorch's autograd keeps: the output for relu, sigmoid,
tanh, softmax and log_softmax; the input for the others (elu, selu and celu too: their
out-of-place backward reads the input; prelu also its weight, a parameter). Run in place,
relu, leaky_relu, elu, selu and celu keep the (shared) result, while relu6, hardtanh, silu,
mish, hardswish and hardsigmoid make autograd keep a copy of the input they overwrite —
measured on torch 2.13.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import known_equal, normalize
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements
from convlens.core.steps import step


def elementwise(
    kind: str,
    summary: str,
    flops_per_element: int,
    saves: str,
    schema: Schema | None = None,
    copied_in_place: bool = False,
    check: Callable[[Shape, Mapping[str, Any]], None] | None = None,
) -> None:
    """Register an activation: shape unchanged, ``flops_per_element`` FLOPs per element.
    ``check`` refuses (``RuleError``) the arguments PyTorch refuses."""

    def rule(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
        if check is not None:
            check(inputs[0], args)
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


def _celu_alpha(shape: Shape, args: Mapping[str, Any]) -> None:
    if args["alpha"] == 0:
        raise RuleError("celu alpha must not be 0 (CELU divides by it)")


def _hardtanh_bounds(shape: Shape, args: Mapping[str, Any]) -> None:
    if args["min_val"] > args["max_val"]:
        raise RuleError(f"hardtanh min_val={args['min_val']} is above max_val={args['max_val']}")


def _softmax_axis(shape: Shape, args: Mapping[str, Any]) -> None:
    if args["dim"] > len(shape):
        raise RuleError(
            f"dim={args['dim']} is past the last axis of a {len(shape) + 1}-axis tensor "
            f"(batch included: dims 1 … {len(shape)})"
        )


SOFTMAX_AXIS = Schema((Arg("dim", "int", 1, minimum=1, help="axis, counted with the batch"),))

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
elementwise(
    "selu",
    "scaled exponential linear unit (self-normalising networks)",
    1,
    "input",
)
elementwise(
    "celu",
    "continuously differentiable exponential linear unit",
    1,
    "input",
    Schema(
        (
            Arg(
                "alpha",
                "float",
                1.0,
                positional=True,
                help="scale for x < 0 (not 0: CELU divides by it)",
            ),
        )
    ),
    check=_celu_alpha,
)
elementwise(
    "hardtanh",
    "x clamped to [min_val, max_val] (nn.Hardtanh; relu6 is hardtanh 0 6)",
    1,
    "input",
    Schema(
        (
            Arg("min_val", "float", -1.0, help="lower bound"),
            Arg("max_val", "float", 1.0, help="upper bound, not below min_val"),
        )
    ),
    copied_in_place=True,
    check=_hardtanh_bounds,
)
elementwise("mish", "x·tanh(softplus(x)) (YOLOv4)", 1, "input", copied_in_place=True)
elementwise(
    "softplus",
    "log(1 + exp(β·x))/β, x itself where β·x > threshold",
    1,
    "input",
    Schema(
        (
            Arg("beta", "float", 1.0, positional=True, help="sharpness β"),
            Arg("threshold", "float", 20.0, help="β·x above which the result is x"),
        )
    ),
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
    SOFTMAX_AXIS,
    check=_softmax_axis,
)
elementwise(
    "log_softmax",
    "log of softmax over the channels (dim 1), as classifiers feed NLLLoss",
    3,
    "output",
    SOFTMAX_AXIS,
    check=_softmax_axis,
)
elementwise("identity", "no-op, useful as a named point in a graph", 0, "")
elementwise("scalar_op", "arithmetic with a constant (x·a, x + a, x − a, x / a)", 1, "")

PRELU = Schema(
    (
        Arg(
            "num_parameters",
            "int",
            1,
            positional=True,
            help="learned slopes: 1 shared, or one per channel (axis 1)",
        ),
    )
)


@register_rule(
    "prelu",
    PRELU,
    "max(0, x) + a·min(0, x) with learned slopes a (nn.PReLU)",
    has_weights=True,
)
def prelu(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, slopes = tuple(inputs[0]), args["num_parameters"]
    assumed: tuple[str, ...] = ()
    if slopes != 1:
        if not shape:
            raise RuleError(
                f"prelu num_parameters={slopes} needs a channel axis; the input is a scalar"
            )
        same = known_equal(slopes, shape[0])
        if same is False:
            raise RuleError(f"prelu num_parameters={slopes} must be 1 or the channels ({shape[0]})")
        if same is None:
            assumed = (f"assumes num_parameters={slopes} equals the channels ({shape[0]})",)
    n = elements(shape)
    return Cost(
        output_shape=shape,
        params=slopes,
        param_tensors=1,
        other_flops=n,
        saves=(Saved("input"),),  # and the slopes, a parameter
        warnings=assumed,
        steps=(
            step("params", "parameters", "params", "{a}", {"a": slopes}, slopes),
            step("flops", "prelu FLOPs", "FLOPs", "1·{N}", {"N": n}, n),
        ),
        args=dict(args),
    )


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
