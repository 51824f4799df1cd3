"""What one real training step holds, measured from the tensors themselves: parameters,
``.grad``, ``optimizer.state`` and the activations autograd saves (unique storages seen by
``saved_tensors_hooks``, the model's own parameters and buffers left out)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from convlens.core.memory import TrainingMemory, training_memory

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=1e-3),
    "momentum": lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3),
}


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


def _bytes(tensors: Any) -> int:
    """Unique storages, as the allocator holds them."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def training_step(
    model: nn.Module, *args: Any, optimizer: str = "adam", **kwargs: Any
) -> TrainingMemory:
    """Forward (autograd on), a loss summing every output, backward and one optimizer step
    over all the model's parameters (frozen ones get no gradient and so no state)."""
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in owned and storage.nbytes() > 0:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    params = list(model.parameters())
    step = OPTIMIZERS[optimizer](params) if params else None
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(*args, **kwargs)
    losses = [t.float().sum() for t in _tensors(output) if t.requires_grad]
    if losses:  # nothing to train when no output depends on a trainable parameter
        sum(losses).backward()  # type: ignore[union-attr]
        if step is not None:
            step.step()
    states = step.state.values() if step is not None else []
    state = [t for s in states for t in s.values() if isinstance(t, torch.Tensor)]
    return TrainingMemory(
        params=_bytes(model.parameters()),
        buffers=_bytes(model.buffers()),
        grads=_bytes(p.grad for p in model.parameters() if p.grad is not None),
        optimizer=_bytes(state),
        saved_activations=sum(saved.values()),
    )


def predicted(report: Any) -> TrainingMemory:
    memory = training_memory(report)
    assert memory.total == report.totals.training_bytes
    return memory
