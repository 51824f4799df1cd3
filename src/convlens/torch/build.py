"""Build a runnable ``nn.Module`` from a described ``Network``.

This is how tests hold the engine to PyTorch itself (shapes from a real forward,
parameters from ``numel``, MACs from ``FlopCounterMode``, receptive fields from
gradients, saved activations from ``saved_tensors_hooks``), and how a user turns
a sketch into code. Each kind's module (the one PyTorch users would write) comes from its
lowering (``torch/lowering/<family>.py``); this module only wires them into the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from convlens.core.args import coerce_args
from convlens.core.records import LayerSpec, Network
from convlens.core.registry import get_rule
from convlens.errors import ConvlensError
from convlens.torch.lowering.common import whole
from convlens.torch.registry import get_lowering


@runtime_checkable
class _HasInplace(Protocol):
    """A module that can run in place (``nn.ReLU(inplace=True)``, ``nn.Dropout``)."""

    inplace: bool


class DescribedNetwork(nn.Module):
    """Runs the layers of a ``Network`` in order; ``layers[name]`` is each module.

    Shapes between layers come from PyTorch itself (a forward on the meta device),
    never from convlens's rules, so the module can serve as an independent oracle.
    """

    def __init__(self, network: Network):
        super().__init__()
        self.network = network
        self.layers = nn.ModuleDict()
        meta = {network.input_name: torch.empty(1, *map(whole, network.input_shape), device="meta")}
        for spec in network.layers:
            args = coerce_args(spec.kind, get_rule(spec.kind).schema, spec.args)
            if args.get("like"):
                args = {**args, "size": tuple(meta[args["like"]].shape[2:4])}
            module = self._module(spec, args, tuple(meta[spec.inputs[0]].shape[1:]))
            if spec.inplace and isinstance(module, _HasInplace):
                module.inplace = True
            self.layers[_key(spec.name)] = module
            # eval: a BatchNorm on a 1×1 map with batch 1 is fine for a shape pass
            meta[spec.name] = module.to("meta").eval()(*(meta[i] for i in spec.inputs))
            module = self._module(spec, args, tuple(meta[spec.inputs[0]].shape[1:]))
            if spec.inplace and isinstance(module, _HasInplace):
                module.inplace = True
            if spec.frozen:
                module.requires_grad_(False)
            self.layers[_key(spec.name)] = module

    @staticmethod
    def _module(spec: LayerSpec, args: Mapping[str, Any], shape: tuple) -> nn.Module:
        try:
            build = get_lowering(spec.kind).build
        except KeyError:
            raise ConvlensError(f"no PyTorch module for layer kind '{spec.kind}'") from None
        return build(args, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {self.network.input_name: x}
        name = self.network.input_name
        for spec in self.network.layers:
            name = spec.name
            outputs[name] = self.layers[_key(name)](*(outputs[i] for i in spec.inputs))
        return outputs[name]


def _key(name: str) -> str:
    return name.replace(".", "__")


def build_module(network: Network) -> DescribedNetwork:
    return DescribedNetwork(network)
