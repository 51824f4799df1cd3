"""What one real training step holds, measured by the package's own ``lab memory``
(``convlens.labs.memory.training_step``), and ``analyze``'s prediction of it."""

from __future__ import annotations

from typing import Any

from convlens.core.memory import TrainingMemory, training_memory
from convlens.labs.memory import OPTIMIZERS, training_step

__all__ = ["OPTIMIZERS", "predicted", "training_step"]


def predicted(report: Any) -> TrainingMemory:
    memory = training_memory(report)
    assert memory.total == report.totals.training_bytes
    return memory
