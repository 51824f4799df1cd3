"""An analysis leaves no reference cycles behind: the trace and every tensor it made are
freed as soon as the report is the only thing left. A cycle would keep them all alive until
Python's cyclic collector runs — a full pass costs about 0.1 s with torch loaded, and the
more such garbage an analysis leaves, the sooner the next one pays it."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

import convlens
from convlens.zoo import create_model


@pytest.fixture
def collect_cycles() -> Iterator[Callable[[Callable[[], Any]], Counter[str]]]:
    """What ``call`` (run twice first, so that one-off caches are filled) leaves to the
    cyclic collector: the types of the objects only it could free."""
    before = gc.get_debug()

    def cycles(call: Callable[[], Any]) -> Counter[str]:
        call()
        call()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds, kept for us to read
        try:
            call()
            gc.collect()
            return Counter(type(o).__name__ for o in gc.garbage)
        finally:
            gc.set_debug(before)
            gc.garbage.clear()

    yield cycles


class _DictInput(nn.Module):
    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        return inputs["a"] + inputs["b"][0]


@pytest.mark.parametrize(
    ("name", "train", "size"),
    [
        ("lenet5", False, (1, 1, 32, 32)),  # a weight computed in the forward: the fallback
        ("mobilenet_v3_small", True, (2, 3, 32, 32)),  # stock modules called directly
        ("efficientnet_b0", True, (2, 3, 32, 32)),  # stochastic depth's constant masks
    ],
)
def test_a_zoo_model_leaves_no_cycles(
    collect_cycles: Callable[[Callable[[], Any]], Counter[str]],
    name: str,
    train: bool,
    size: tuple[int, ...],
) -> None:
    model = create_model(name).train(train)
    assert collect_cycles(lambda: convlens.analyze(model, input_size=size)) == Counter()


def test_nested_inputs_and_a_real_forward_leave_no_cycles(
    collect_cycles: Callable[[Callable[[], Any]], Counter[str]],
) -> None:
    sizes = {"a": (1, 3, 8, 8), "b": [(1, 3, 8, 8)]}
    assert collect_cycles(lambda: convlens.analyze(_DictInput(), input_size=sizes)) == Counter()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    real = collect_cycles(lambda: convlens.analyze(model, input_size=(1, 3, 8, 8), device="cpu"))
    assert real == Counter()
