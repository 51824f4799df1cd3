"""What autograd really keeps: unique activation storages seen by saved_tensors_hooks."""

from __future__ import annotations

import torch
from torch import nn


def saved_bytes(model: nn.Module, *inputs: torch.Tensor) -> int:
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in owned and storage.nbytes() > 0:
            storages[storage.data_ptr()] = storage.nbytes()
        # Detached: a saved output kept as itself holds its own grad_fn, a cycle through C++
        # that gc cannot free when no backward runs (pytorch/pytorch#115255); every model
        # measured here, weights and activations, would stay in the process for good.
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*inputs)
    return sum(storages.values())
