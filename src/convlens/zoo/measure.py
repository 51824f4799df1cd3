"""Measure a zoo model the way its published figures are stated.

Everything here builds on the meta device (no memory, no weights, no
download) unless told otherwise. MACs are ``FlopCounterMode``'s total / 2:
convolutions (transposed included) and matrix products only — no bias,
BatchNorm, activation or pooling work. This is a stand-in until convlens's
own analysis replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from convlens.zoo.registry import ModelEntry, PublishedFigure, Quantity, create_model, get_entry

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Measurement:
    """Parameters, output shapes (batch excluded) and MACs of one build at one input."""

    params: int
    output_shapes: tuple[Shape, ...]
    macs: int | None
    input_shape: Shape


def count_params(model: nn.Module) -> int:
    """Unique parameters (``parameters()`` already yields a shared tensor once)."""
    return sum(p.numel() for p in model.parameters())


def flatten_output_shapes(output: Any) -> tuple[Shape, ...]:
    """Shapes of a tensor / tuple / list / dict output, in order, without the batch dimension."""
    if isinstance(output, torch.Tensor):
        return (tuple(output.shape[1:]),)
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return tuple(shape for item in output for shape in flatten_output_shapes(item))
    raise TypeError(f"cannot read shapes from an output of type {type(output).__name__}")


def build(name: str, device: str | torch.device = "meta", **kwargs: Any) -> nn.Module:
    """``create_model`` on ``device`` (meta by default), in eval mode."""
    with torch.device(device):
        model = create_model(name, **kwargs)
    return model.eval()


def forward_shapes(model: nn.Module, input_shape: Shape, batch: int = 1) -> tuple[Shape, ...]:
    """Output shapes of a forward on an empty input on the model's device."""
    device = next(model.parameters()).device
    with torch.no_grad():
        x = torch.empty((batch, *input_shape), device=device)
        return flatten_output_shapes(model(x))


def count_macs(model: nn.Module, input_shape: Shape) -> int:
    """Conv + linear multiply-accumulates for one image (FlopCounterMode total / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty((1, *input_shape), device=device))
    return counter.get_total_flops() // 2


def measure(
    name: str, input_shape: Shape | None = None, *, macs: bool = True, **kwargs: Any
) -> Measurement:
    """Build ``name`` on the meta device; measure it at ``input_shape`` (default: its own)."""
    entry = get_entry(name)
    shape = tuple(input_shape) if input_shape else entry.default_input
    model = build(name, **kwargs)
    total = count_macs(model, shape) if macs else None
    outputs = forward_shapes(model, shape)
    return Measurement(count_params(model), outputs, total, shape)


def measure_figure(entry: ModelEntry, figure: PublishedFigure) -> float:
    """The rebuild's value of the quantity a published figure states, at the default input."""
    model = build(entry.name, **dict(figure.arguments))
    if figure.quantity is Quantity.PARAMS:
        return count_params(model)
    if figure.quantity is Quantity.MODULE_PARAMS:
        return count_params(model.get_submodule(figure.module))
    if figure.quantity is Quantity.MACS:
        return count_macs(model, entry.default_input)
    if figure.quantity is Quantity.FLOPS:
        return 2 * count_macs(model, entry.default_input)
    first = forward_shapes(model, entry.default_input)[0]
    if figure.quantity is Quantity.OUTPUT_SIZE:
        size = 1
        for d in first:
            size *= d
        return size
    if figure.quantity is Quantity.OUTPUT_DIM:
        return first[figure.dim]
    raise ValueError(f"no measurement for quantity {figure.quantity!r}")
