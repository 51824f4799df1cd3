"""What one training step holds, by part, as ``analyze`` predicts it.

One record for whoever puts the prediction beside a measurement (``convlens lab memory``):
the parts are the ones a real step holds — the parameters, their ``.grad``, everything in
``optimizer.state`` (Adam's per-parameter ``step`` tensors included), the activations
autograd saves for backward — and the model's buffers. ``tests/torch/test_training_memory.py``
holds each part to a real step, to the byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convlens.core.numbers import Dim, normalize, to_json


@dataclass(frozen=True)
class TrainingMemory:
    params: Dim
    grads: Dim
    optimizer: Dim
    saved_activations: Dim
    buffers: Dim

    @property
    def total(self) -> Dim:
        return normalize(
            self.params + self.grads + self.optimizer + self.saved_activations + self.buffers
        )

    def to_dict(self) -> dict[str, Any]:
        """Bytes by part, with ``total``: the keys of ``lab memory``'s JSON."""
        parts = ("params", "grads", "optimizer", "saved_activations", "buffers", "total")
        return {name: to_json(getattr(self, name)) for name in parts}


def training_memory(report: Any) -> TrainingMemory:
    """The training-memory parts of a ``Report`` (its ``training_bytes`` is their total)."""
    t = report.totals
    return TrainingMemory(
        params=t.param_bytes,
        grads=t.grad_bytes,
        optimizer=t.optimizer_bytes,
        saved_activations=t.saved_activation_bytes,
        buffers=t.buffer_bytes,
    )
