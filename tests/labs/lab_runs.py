"""Helpers shared by the lab tests: a real Ctrl-C after a given step, and two runs compared
bit for bit."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from convlens.labs.runtime import loop
from convlens.labs.runtime.loop import Position, RunResult


def interrupted_at(
    train: Callable[..., RunResult], cfg: Any, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> RunResult:
    """Train ``cfg`` with a real Ctrl-C (SIGINT through the real handler) after global
    step ``stop_at``."""
    seen: list[Position] = []

    def ctrl_c(position: Position) -> None:
        seen.append(position)
        if len(seen) == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop, "_after_step", ctrl_c)
    try:
        return train(cfg, progress_bar=False)
    finally:
        monkeypatch.setattr(loop, "_after_step", lambda position: None)


def assert_same_run(a: RunResult, b: RunResult, keys: Sequence[str]) -> None:
    """Bit-identical final weights and identical metrics (the columns ``keys``)."""
    assert a.model is not None and b.model is not None
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert [{k: m[k] for k in keys} for m in a.metrics] == [
        {k: m[k] for k in keys} for m in b.metrics
    ]
