"""What a network computes inside: feature maps of chosen layers, and learned kernels."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret.methods import captured_output
from convlens.interpret.sources import find_layer


def activations(model: nn.Module, pixels: torch.Tensor, layers: list[str]) -> dict[str, np.ndarray]:
    """Layer name → its output for one image (3, H, W), as (C, h, w) float32."""
    with torch.no_grad(), contextlib.ExitStack() as stack:
        boxes = {
            name: stack.enter_context(captured_output(find_layer(model, name), f"--layer {name}"))
            for name in layers
        }
        model(pixels[None])
    return {name: box.output[0].float().numpy().copy() for name, box in boxes.items()}


def kernels(model: nn.Module, layer: str) -> np.ndarray:
    """(out_channels, in_channels / groups, kh, kw) float32 weights of a convolution."""
    module = find_layer(model, layer)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ArgumentError(
            f"--layer {layer} is a {type(module).__name__}, not a 2-D convolution with a "
            "4-D weight."
        )
    return weight.detach().float().numpy().copy()
