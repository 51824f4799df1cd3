"""What a network computes inside: feature maps of chosen layers, and learned kernels."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret.sources import find_layer


def activations(model: nn.Module, pixels: torch.Tensor, layers: list[str]) -> dict[str, np.ndarray]:
    """Layer name → its output for one image (3, H, W), as (C, h, w) float32."""
    modules = {name: find_layer(model, name) for name in layers}
    found: dict[str, np.ndarray] = {}
    handles = []
    for name, module in modules.items():

        def hook(_m: nn.Module, _i: object, output: object, name: str = name) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                shape = getattr(output, "shape", type(output).__name__)
                raise ArgumentError(f"--layer {name} outputs {shape}, not N×C×H×W feature maps.")
            found[name] = output[0].detach().float().numpy().copy()

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(pixels[None])
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in layers if name not in found]
    if missing:
        raise ArgumentError(f"--layer {missing[0]} is never run by the model's forward.")
    return {name: found[name] for name in layers}


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
