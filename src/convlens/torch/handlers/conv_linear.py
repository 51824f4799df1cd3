"""Convolutions (plain and transposed) and linear layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from convlens.torch.handlers.registry import arg, expect_channels, handles, pair, per_axis
from convlens.torch.probes import is_contiguous, keeps_copy

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def _computed(t: Tracer, weight: torch.Tensor) -> bool:
    """A weight that is no storage of the model's (computed in the forward, like LeNet-5's
    dense C3 kernel, or a constant): backward keeps it, so it counts as an activation. A
    view of a parameter (``self.weight.view(…)``) shares the parameter's storage: not one."""
    base = weight._base
    return id(weight) not in t.owned and (base is None or id(base) not in t.owned)


@handles(F.conv2d, torch.conv2d)
def _conv2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    padding = arg(args, kwargs, 4, "padding", 0)
    groups = int(arg(args, kwargs, 6, "groups", 1))
    expect_channels(t, x, int(weight.shape[1]) * groups, "input channels")
    spec = {
        "out_channels": int(weight.shape[0]),
        "kernel_size": pair(weight.shape[2:]),
        "stride": pair(arg(args, kwargs, 3, "stride", 1)),
        "padding": padding if isinstance(padding, str) else pair(padding),
        "dilation": pair(arg(args, kwargs, 5, "dilation", 1)),
        "groups": int(arg(args, kwargs, 6, "groups", 1)),
        "bias": bias is not None,
        "derived_weight": _computed(t, weight),
    }
    return t.record("conv2d", spec, [x], [weight, bias])


@handles(F.conv_transpose2d, torch.conv_transpose2d)
def _conv_transpose2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    groups = int(arg(args, kwargs, 6, "groups", 1))
    expect_channels(t, x, int(weight.shape[0]), "input channels")
    spec = {
        "out_channels": int(weight.shape[1]) * groups,
        "kernel_size": pair(weight.shape[2:]),
        "stride": pair(arg(args, kwargs, 3, "stride", 1)),
        "padding": pair(arg(args, kwargs, 4, "padding", 0)),
        "output_padding": pair(arg(args, kwargs, 5, "output_padding", 0)),
        "groups": groups,
        "dilation": pair(arg(args, kwargs, 7, "dilation", 1)),
        "bias": bias is not None,
        "derived_weight": _computed(t, weight),
    }
    return t.record("conv_transpose2d", spec, [x], [weight, bias])


def _conv_nd(axes: int) -> Any:
    """F.conv1d / F.conv3d on a batched (N, C, L) or (N, C, D, H, W) input."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        padding = arg(args, kwargs, 4, "padding", 0)
        groups = int(arg(args, kwargs, 6, "groups", 1))
        expect_channels(t, x, int(weight.shape[1]) * groups, "input channels")
        spec = {
            "out_channels": int(weight.shape[0]),
            "kernel_size": tuple(int(k) for k in weight.shape[2:]),
            "stride": per_axis(arg(args, kwargs, 3, "stride", 1), axes),
            "padding": padding if isinstance(padding, str) else per_axis(padding, axes),
            "dilation": per_axis(arg(args, kwargs, 5, "dilation", 1), axes),
            "groups": groups,
            "bias": bias is not None,
            "derived_weight": _computed(t, weight),
        }
        return t.record(f"conv{axes}d", spec, [x], [weight, bias])

    return handler


def _conv_transpose_nd(axes: int) -> Any:
    """F.conv_transpose1d / F.conv_transpose3d on a batched input."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if x.dim() == axes + 1:  # unbatched: PyTorch's own kernel gives the shape
            return NotImplemented
        groups = int(arg(args, kwargs, 6, "groups", 1))
        expect_channels(t, x, int(weight.shape[0]), "input channels")
        spec = {
            "out_channels": int(weight.shape[1]) * groups,
            "kernel_size": tuple(int(k) for k in weight.shape[2:]),
            "stride": per_axis(arg(args, kwargs, 3, "stride", 1), axes),
            "padding": per_axis(arg(args, kwargs, 4, "padding", 0), axes),
            "output_padding": per_axis(arg(args, kwargs, 5, "output_padding", 0), axes),
            "groups": groups,
            "dilation": per_axis(arg(args, kwargs, 7, "dilation", 1), axes),
            "bias": bias is not None,
            "derived_weight": _computed(t, weight),
        }
        return t.record(f"conv_transpose{axes}d", spec, [x], [weight, bias])

    return handler


handles(F.conv1d, torch.conv1d)(_conv_nd(1))
handles(F.conv3d, torch.conv3d)(_conv_nd(3))
handles(F.conv_transpose1d, torch.conv_transpose1d)(_conv_transpose_nd(1))
handles(F.conv_transpose3d, torch.conv_transpose3d)(_conv_transpose_nd(3))


@handles(F.linear, torch._C._nn.linear, any_layout=True)
def _linear(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    layout = t.batch_axis(x)
    if layout is None or layout.axis == x.dim() - 1:
        return NotImplemented  # the features are the batch's axis
    expect_channels(t, x, int(weight.shape[1]), "input features", axis=x.dim() - 1)
    # F.linear folds a ≥ 3-D input into rows with reshape: a strided one (after a
    # transpose) is copied, and backward keeps that copy instead of the input. A
    # contiguous or 2-D input is kept as it is: no need to ask PyTorch (which would load
    # its meta decompositions, ~0.8 s on first use).
    copies = (
        x.dim() >= 3
        and not is_contiguous(x)
        and keeps_copy(
            x,
            lambda probe: F.linear(
                probe,
                torch.empty(tuple(weight.shape), device="meta", requires_grad=True),
                None if bias is None else torch.empty(tuple(bias.shape), device="meta"),
            ),
        )
    )
    return t.record(
        "linear",
        {
            "out_features": int(weight.shape[0]),
            "bias": bias is not None,
            "copies_input": copies,
            "derived_weight": _computed(t, weight),
        },
        [x],
        [weight, bias],
        layout=layout,
    )
