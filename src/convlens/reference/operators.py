"""One registration per reference operator: everything convlens knows about it.

``reference.run``, ``convlens op`` (its choices, the options each operator takes and the
check against PyTorch) all read ``OPERATORS``; adding an operator is one ``Operator(...)``
here next to its forward and backward functions. The PyTorch equivalent is a function of
``torch`` and ``torch.nn.functional`` passed in by the caller, so this package still
imports only NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convlens.reference import explain as ex
from convlens.reference.conv import conv2d_backward, conv2d_forward
from convlens.reference.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from convlens.reference.misc import (
    batch_norm_backward,
    batch_norm_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    upsample_backward,
    upsample_forward,
)
from convlens.reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

Array = np.ndarray
# (x, weight, bias, params) in the batched layout → (output, what the backward needs)
Forward = Callable[[Array, Array | None, Array | None, dict[str, Any]], tuple[Array, Any]]
# (x, output, cache, weight, bias, params) → the forward's worked steps
Steps = Callable[[Array, Array, Any, Array | None, Array | None, dict[str, Any]], tuple]
# (grad_output, cache, x, the forward's steps) → the backward's worked steps
BackwardSteps = Callable[[Array, Any, Array, tuple], tuple]
# (torch, F, x, weight, bias, params, running statistics) → (output, "function name")
TorchEquivalent = Callable[[Any, Any, Any, Any, Any, dict[str, Any], dict[str, Any]], tuple]


@dataclass(frozen=True)
class Operator:
    """A reference operator: its NumPy forward and backward, its worked steps, the
    options ``convlens op`` accepts for it, and the PyTorch call it must agree with.

    ``weight``: what its weight is — ``"filter"`` (convolutions: textbook filter matrices
    are expanded to a full weight), ``"affine"`` (batch norm's γ and β, one per channel),
    ``"matrix"`` (linear's W), or ``None`` (no weight or bias).
    """

    name: str
    forward: Forward
    backward: Callable[[Array, Any], Any]
    torch_equivalent: TorchEquivalent
    options: frozenset[str] = frozenset()
    weight: str | None = None
    steps: Steps | None = None
    backward_steps: BackwardSteps | None = None
    # hyper-parameters of a small problem (a 2×3×5×5 input): what the registry's tests run
    example: dict[str, Any] = field(default_factory=dict)


OPERATORS: dict[str, Operator] = {}


def register(operator: Operator) -> Operator:
    OPERATORS[operator.name] = operator
    return operator


def get_operator(name: str) -> Operator:
    from convlens.errors import ArgumentError

    if name not in OPERATORS:
        raise ArgumentError(f"unknown operator {name!r}; expected one of {', '.join(OPERATORS)}.")
    return OPERATORS[name]


def _conv2d_torch(torch: Any, F: Any, x: Any, w: Any, b: Any, p: dict, _running: dict) -> tuple:
    pad = p["padding"]
    if isinstance(pad, tuple) and isinstance(pad[0], tuple):  # (top, bottom), (left, right)
        (top, bottom), (left, right) = pad
        x, pad = F.pad(x, (left, right, top, bottom)), 0
    return F.conv2d(x, w, b, p["stride"], pad, p["dilation"], p["groups"]), "conv2d"


register(
    Operator(
        "conv2d",
        example={"stride": 2, "padding": 1, "dilation": 1, "groups": 1},
        forward=lambda x, w, b, p: conv2d_forward(x, w, b, **p),  # type: ignore[arg-type]
        backward=conv2d_backward,
        torch_equivalent=_conv2d_torch,
        options=frozenset({"weight", "bias", "stride", "padding", "dilation", "groups"}),
        weight="filter",
        steps=lambda x, out, cache, w, b, p: ex.conv2d_steps(out, cache, b),
        backward_steps=lambda grad, cache, x, steps: sum(ex.conv2d_backward_steps(grad, cache), ()),
    )
)

register(
    Operator(
        "conv_transpose2d",
        example={"stride": 2, "padding": 1, "output_padding": 1, "groups": 1, "dilation": 1},
        forward=lambda x, w, b, p: conv_transpose2d_forward(x, w, b, **p),  # type: ignore[arg-type]
        backward=conv_transpose2d_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (
            F.conv_transpose2d(
                x, w, b, p["stride"], p["padding"], p["output_padding"], p["groups"], p["dilation"]
            ),
            "conv_transpose2d",
        ),
        options=frozenset(
            {"weight", "bias", "stride", "padding", "output_padding", "dilation", "groups"}
        ),
        weight="filter",
        steps=lambda x, out, cache, w, b, p: ex.conv_transpose2d_steps(cache),
        backward_steps=lambda grad, cache, x, steps: sum(
            ex.conv_transpose2d_backward_steps(grad, cache), ()
        ),
    )
)

register(
    Operator(
        "max_pool2d",
        example={"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1, "ceil_mode": True},
        forward=lambda x, w, b, p: max_pool2d_forward(x, **p),
        backward=max_pool2d_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (F.max_pool2d(x, **p), "max_pool2d"),
        options=frozenset({"kernel", "stride", "padding", "dilation", "ceil_mode"}),
        steps=lambda x, out, cache, w, b, p: ex.max_pool2d_steps(x, out, cache),
        backward_steps=lambda grad, cache, x, steps: ex.max_pool2d_backward_steps(grad, cache),
    )
)

register(
    Operator(
        "avg_pool2d",
        example={
            "kernel_size": 2,
            "stride": 2,
            "padding": 1,
            "ceil_mode": False,
            "count_include_pad": False,
        },
        forward=lambda x, w, b, p: avg_pool2d_forward(x, **p),
        backward=avg_pool2d_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (F.avg_pool2d(x, **p), "avg_pool2d"),
        options=frozenset({"kernel", "stride", "padding", "ceil_mode", "count_include_pad"}),
        steps=lambda x, out, cache, w, b, p: ex.avg_pool2d_steps(x, out, cache),
        backward_steps=lambda grad, cache, x, steps: ex.avg_pool2d_backward_steps(grad, cache),
    )
)

register(
    Operator(
        "global_avg_pool",
        forward=lambda x, w, b, p: global_avg_pool_forward(x),
        backward=global_avg_pool_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (
            F.adaptive_avg_pool2d(x, 1),
            "adaptive_avg_pool2d",
        ),
        steps=lambda x, out, cache, w, b, p: ex.global_avg_pool_steps(x, out),
        backward_steps=lambda grad, cache, x, steps: ex.global_avg_pool_backward_steps(
            grad, x.shape
        ),
    )
)


def _upsample_torch(torch: Any, F: Any, x: Any, w: Any, b: Any, p: dict, _running: dict) -> tuple:
    extra = {"align_corners": p["align_corners"]} if p["mode"] == "bilinear" else {}
    y = F.interpolate(x, size=p["size"], scale_factor=p["scale_factor"], mode=p["mode"], **extra)
    return y, "interpolate"


register(
    Operator(
        "upsample",
        example={"size": None, "scale_factor": 2.0, "mode": "bilinear", "align_corners": False},
        forward=lambda x, w, b, p: upsample_forward(x, **p),
        backward=upsample_backward,
        torch_equivalent=_upsample_torch,
        options=frozenset({"size", "scale", "mode", "align_corners"}),
        steps=lambda x, out, cache, w, b, p: ex.upsample_steps(x, out, cache.rows, cache.cols),
        backward_steps=lambda grad, cache, x, steps: ex.upsample_backward_steps(
            grad, tuple(s for s in steps if isinstance(s, ex.InterpStep))
        ),
    )
)

register(
    Operator(
        "relu",
        forward=lambda x, w, b, p: relu_forward(x),
        backward=relu_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (F.relu(x), "relu"),
        steps=lambda x, out, cache, w, b, p: ex.relu_steps(x, out),
        backward_steps=lambda grad, cache, x, steps: ex.relu_backward_steps(grad, cache),
    )
)


def _batch_norm_steps(
    x: Array, out: Array, cache: Any, gamma: Array | None, beta: Array | None, params: dict
) -> tuple:
    """The statistics batch_norm_forward normalised with: the batch's, or the running ones."""
    training = bool(params.get("training", False))
    if training:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # biased, as the forward
    else:
        mean = np.asarray(params["running_mean"], dtype=float)
        var = np.asarray(params["running_var"], dtype=float)
    eps = float(params.get("eps", 1e-5))
    return ex.batch_norm_steps(x, out, mean, var, gamma, beta, training, eps)


register(
    Operator(
        "batch_norm",
        example={
            "running_mean": None,
            "running_var": None,
            "training": True,
            "momentum": 0.1,
            "eps": 1e-5,
        },
        forward=lambda x, w, b, p: batch_norm_forward(
            x,
            p.get("running_mean"),
            p.get("running_var"),
            w,
            b,
            training=bool(p.get("training", False)),
            momentum=p.get("momentum", 0.1),
            eps=p.get("eps", 1e-5),
        ),
        backward=batch_norm_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (
            F.batch_norm(
                x,
                running["running_mean"],
                running["running_var"],
                w,
                b,
                training=p["training"],
                momentum=p["momentum"],
                eps=p["eps"],
            ),
            "batch_norm",
        ),
        options=frozenset(
            {"weight", "bias", "running_mean", "running_var", "training", "momentum", "eps"}
        ),
        weight="affine",
        steps=_batch_norm_steps,
    )
)

register(
    Operator(
        "linear",
        forward=lambda x, w, b, p: linear_forward(x, w, b),  # type: ignore[arg-type]
        backward=linear_backward,
        torch_equivalent=lambda torch, F, x, w, b, p, running: (F.linear(x, w, b), "linear"),
        options=frozenset({"weight", "bias"}),
        weight="matrix",
        steps=lambda x, out, cache, w, b, p: ex.linear_steps(cache.x, cache.weight, b, out),
    )
)
