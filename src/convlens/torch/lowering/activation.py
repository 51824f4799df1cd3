"""Activations in PyTorch, and the other kinds that keep the shape element by element:
softmax, identity, scalar_op, dropout (rules: core/rules/activation.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
)
from convlens.torch.lowering.elementwise import ALL_ARITHMETIC
from convlens.torch.registry import Choices, Examples, Handler, arg, calls, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def on_feature_map(line: str) -> Examples:
    """Examples of a kind that takes any C×H×W input: ``line`` after a random one."""
    return lambda pick: described(feature_map(pick), line)


def _activation(kind: str, extra: Callable[[tuple, dict], dict] | None = None) -> Handler:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, inplace = args[0], bool(kwargs.get("inplace", False))
        spec = extra(args, kwargs) if extra else {}
        return t.record(kind, spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)

    return handler


# -- relu, relu6 --------------------------------------------------------------------------
@handles(F.relu_, torch.relu_, torch.Tensor.relu_, any_layout=True)
def trace_relu_inplace(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record("relu", {}, [args[0]], inplace=True, layout=t.batched_layout(args[0]))


lowering(
    "relu",
    traced_by=[
        handles(F.relu, torch.relu, any_layout=True)(_activation("relu")),
        trace_relu_inplace,
    ],
    build=lambda a, s: nn.ReLU(),
    examples=on_feature_map("relu"),
)


@handles(F.hardtanh, any_layout=True)
def trace_hardtanh(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """nn.ReLU6 is F.hardtanh(x, 0, 6): a relu6 row; other bounds a hardtanh row."""
    low, high = arg(args, kwargs, 1, "min_val", -1.0), arg(args, kwargs, 2, "max_val", 1.0)
    inplace = bool(arg(args, kwargs, 3, "inplace"))
    x = args[0]
    kind, spec = (
        ("relu6", {})
        if (low, high) == (0.0, 6.0)
        else ("hardtanh", {"min_val": float(low), "max_val": float(high)})
    )
    return t.record(kind, spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)


lowering(
    "relu6",
    traced_by=[trace_hardtanh],
    build=lambda a, s: nn.ReLU6(),
    examples=on_feature_map("relu6"),
)


def hardtanh_examples(pick: Choices) -> str:
    low, high = pick.choice([(-1.0, 1.0), (-2.0, 0.5), (0.0, 1.0), (-0.5, 3.0)])
    return described(feature_map(pick), f"hardtanh min_val={low} max_val={high}")


lowering(
    "hardtanh",
    traced_by=[trace_hardtanh],
    build=lambda a, s: nn.Hardtanh(float(a["min_val"]), float(a["max_val"])),
    examples=hardtanh_examples,
)


# -- activations with no options, or one number -------------------------------------------
def _activation_lowering(
    kind: str,
    funcs: tuple[Any, ...],
    build: Callable[[Mapping[str, Any]], nn.Module],
    line: str | None = None,
    extra: Callable[[tuple, dict], dict] | None = None,
) -> None:
    handler = handles(*funcs, any_layout=True)(_activation(kind, extra))
    lowering(
        kind,
        traced_by=[handler],
        build=lambda a, s: build(a),
        examples=on_feature_map(line or kind),
    )


_activation_lowering(
    "sigmoid", (torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid), lambda a: nn.Sigmoid()
)
_activation_lowering("tanh", (torch.tanh, torch.Tensor.tanh, F.tanh), lambda a: nn.Tanh())
_activation_lowering("gelu", (F.gelu,), lambda a: nn.GELU())
_activation_lowering("silu", (F.silu,), lambda a: nn.SiLU())
_activation_lowering("hardswish", (F.hardswish,), lambda a: nn.Hardswish())
_activation_lowering("hardsigmoid", (F.hardsigmoid,), lambda a: nn.Hardsigmoid())
_activation_lowering(
    "elu",
    (F.elu,),
    lambda a: nn.ELU(float(a["alpha"])),
    extra=lambda a, k: {"alpha": float(arg(a, k, 1, "alpha", 1.0))},
)
_activation_lowering(
    "selu",
    (F.selu,),
    lambda a: nn.SELU(),
    extra=lambda a, k: {},
)
_activation_lowering(
    "celu",
    (F.celu,),
    lambda a: nn.CELU(float(a["alpha"])),
    line="celu 0.5",
    extra=lambda a, k: {"alpha": float(arg(a, k, 1, "alpha", 1.0))},
)
_activation_lowering("mish", (F.mish,), lambda a: nn.Mish())
_activation_lowering(
    "softplus",
    (F.softplus,),
    lambda a: nn.Softplus(float(a["beta"]), float(a["threshold"])),
    line="softplus 2 threshold=3",
    extra=lambda a, k: {
        "beta": float(arg(a, k, 1, "beta", 1.0)),
        "threshold": float(arg(a, k, 2, "threshold", 20.0)),
    },
)
_activation_lowering(
    "leaky_relu",
    (F.leaky_relu,),
    lambda a: nn.LeakyReLU(float(a["negative_slope"])),
    line="leaky_relu 0.2",
    extra=lambda a, k: {"negative_slope": float(arg(a, k, 1, "negative_slope", 0.01))},
)


# -- softmax, log_softmax -----------------------------------------------------------------
def _softmax_like(kind: str) -> Handler:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, dim = args[0], arg(args, kwargs, 1, "dim")
        axis = t.sample_axis(x, -1 if dim is None else dim)
        if axis is None or kwargs.get("dtype") is not None:
            return NotImplemented  # over the batch: not per sample
        return t.record(kind, {"dim": axis}, [x], layout=t.batched_layout(x))

    return handler


trace_softmax = handles(F.softmax, torch.softmax, torch.Tensor.softmax, any_layout=True)(
    _softmax_like("softmax")
)
trace_log_softmax = handles(
    F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax, any_layout=True
)(_softmax_like("log_softmax"))

lowering(
    "softmax",
    traced_by=[trace_softmax],
    build=lambda a, s: nn.Softmax(dim=whole(a["dim"])),
    examples=on_feature_map("softmax"),
)
lowering(
    "log_softmax",
    traced_by=[trace_log_softmax],
    build=lambda a, s: nn.LogSoftmax(dim=whole(a["dim"])),
    examples=on_feature_map("log_softmax"),
)


# -- prelu: learned slopes ------------------------------------------------------------------
@handles(torch.prelu)  # F.prelu is torch.prelu
def trace_prelu(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight = args[0], arg(args, kwargs, 1, "weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() > 1:
        return NotImplemented
    slopes = int(weight.numel())
    if slopes != 1:
        expect_channels(t, x, slopes, "channels (one PReLU slope each)")
    return t.record("prelu", {"num_parameters": slopes}, [x], [weight])


def prelu_examples(pick: Choices) -> str:
    shape = feature_map(pick)
    return described(shape, pick.choice(["prelu", f"prelu {shape[0]}"]))


lowering(
    "prelu",
    traced_by=[trace_prelu],
    build=lambda a, s: nn.PReLU(whole(a["num_parameters"])),
    examples=prelu_examples,
)


# -- identity: a copy -----------------------------------------------------------------------
@handles(torch.Tensor.contiguous, any_layout=True)
def trace_contiguous(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A no-op on a contiguous tensor; a copy (an identity row) of a strided view."""
    x = args[0]
    with torch._C.DisableTorchFunctionSubclass():
        if x.is_contiguous(memory_format=kwargs.get("memory_format", torch.contiguous_format)):
            return x
    return t.record("identity", {}, [x], layout=t.batched_layout(x))


@handles(torch.clone, torch.Tensor.clone, any_layout=True)
def trace_clone(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A copy: an identity row, as a copying ``contiguous`` is."""
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, ShapeTensor):
        return NotImplemented
    return t.record("identity", {}, [x], layout=t.batched_layout(x))


lowering(
    "identity",
    # nn.Identity hands back its input: no operation, so a trace of it has no row
    traced_by=[trace_contiguous, trace_clone],
    traced_as=[],
    build=lambda a, s: nn.Identity(),
    examples=on_feature_map("identity"),
)


# -- scalar_op: x ∘ a number --------------------------------------------------------------
class ScalarOp(nn.Module):
    """x · a with a constant a: one operation per element, as the rule counts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5


lowering(
    "scalar_op",
    traced_by=ALL_ARITHMETIC,
    build=lambda a, s: ScalarOp(),
    examples=on_feature_map("scalar_op"),
)


# -- dropout ------------------------------------------------------------------------------
def _dropout(channelwise: bool) -> Handler:
    """F.dropout, or (``channelwise``) F.dropout1d/2d/3d, which zero whole channels."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if channelwise and t.batch_axis(x) != STANDARD:
            return NotImplemented  # whole channels of a tensor whose batch moved
        spec: dict[str, Any] = {"p": float(arg(args, kwargs, 1, "p", 0.5))}
        if channelwise:
            spec["channelwise"] = True
        inplace = bool(arg(args, kwargs, 3, "inplace", False))
        return t.record("dropout", spec, [x], inplace=inplace, layout=t.batched_layout(x), like=x)

    return handler


def build_dropout(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    if not args["channelwise"]:
        return nn.Dropout(float(args["p"]))
    # whole channels of a (C, L) signal, a (C, H, W) map or a (C, D, H, W) volume
    channelwise = {2: nn.Dropout1d, 3: nn.Dropout2d, 4: nn.Dropout3d}.get(len(shape), nn.Dropout1d)
    return channelwise(float(args["p"]))


def dropout_examples(pick: Choices) -> str:
    """Of an image; or whole channels of a signal (nn.Dropout1d) or a volume (nn.Dropout3d)."""
    if pick.integer(0, 2) == 0:
        shape = signal_or_volume(pick, pick.choice([1, 3]), pick.integer(1, 4))
        return described(shape, "dropout 0.4 channelwise=true")
    line = pick.choice(["dropout 0.3", f"dropout 0.4 channelwise={flag(pick)}"])
    return described(feature_map(pick), line)


lowering(
    "dropout",
    traced_by=[
        handles(F.dropout, any_layout=True)(_dropout(channelwise=False)),
        handles(F.dropout1d, F.dropout2d, F.dropout3d, any_layout=True)(_dropout(channelwise=True)),
    ],
    build=build_dropout,
    examples=dropout_examples,
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
def _inplace_call(func: Any) -> Any:
    return lambda m, x: (func, (x,), {"inplace": m.inplace})


calls(nn.ReLU, how=_inplace_call(F.relu))
calls(nn.Hardswish, how=_inplace_call(F.hardswish))
calls(nn.Hardsigmoid, how=_inplace_call(F.hardsigmoid))
calls(nn.SiLU, how=_inplace_call(F.silu))
calls(
    nn.ReLU6,
    nn.Hardtanh,
    how=lambda m, x: (
        F.hardtanh,
        (x,),
        {"min_val": m.min_val, "max_val": m.max_val, "inplace": m.inplace},
    ),
)
calls(
    nn.LeakyReLU,
    how=lambda m, x: (
        F.leaky_relu,
        (x,),
        {"negative_slope": m.negative_slope, "inplace": m.inplace},
    ),
)
calls(nn.Mish, how=_inplace_call(F.mish))
calls(nn.SELU, how=_inplace_call(F.selu))
calls(nn.CELU, how=lambda m, x: (F.celu, (x,), {"alpha": m.alpha, "inplace": m.inplace}))
calls(nn.Softplus, how=lambda m, x: (F.softplus, (x, m.beta, m.threshold), {}))
calls(nn.PReLU, how=lambda m, x: (torch.prelu, (x, m.weight), {}))
calls(
    nn.LogSoftmax,
    how=lambda m, x: (F.log_softmax, (x,), {"dim": m.dim, "_stacklevel": 5, "dtype": None}),
)
calls(nn.Sigmoid, how=lambda m, x: (torch.sigmoid, (x,), {}))
calls(nn.Tanh, how=lambda m, x: (torch.tanh, (x,), {}))
calls(nn.GELU, how=lambda m, x: (F.gelu, (x,), {"approximate": m.approximate}))
calls(
    nn.Dropout,
    how=lambda m, x: (F.dropout, (x,), {"p": m.p, "training": m.training, "inplace": m.inplace}),
)
calls(
    nn.Softmax, how=lambda m, x: (F.softmax, (x,), {"dim": m.dim, "_stacklevel": 5, "dtype": None})
)
