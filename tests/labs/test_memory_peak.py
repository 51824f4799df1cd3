"""``lab memory``'s peak: the CPU allocator's bytes during a real step (torch.profiler,
``profile_memory=True``) account for the measured tensors exactly, agree with the
allocator's own running total, and split at the peak into parts that add up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.labs import memory
from convlens.labs.memory import MemoryConfig, measure, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = [
    MemoryConfig("memory_models:small_deeplabv3", (3, 32, 32), 2),
    MemoryConfig("memory_models:small_deeplabv3", (3, 64, 64), 2, ("classifier.*",), True),
    MemoryConfig("memory_models:narrow_unet", (1, 188, 188), 1, ("head.*",), optimizer="sgd"),
    MemoryConfig("zoo:unet_same?base_channels=4&depth=2", (3, 32, 32), 2, optimizer="momentum"),
]


@pytest.mark.parametrize("cfg", CASES, ids=["deeplab", "deeplab-head", "unet-sgd", "unet-same"])
def test_the_allocator_accounts_for_every_measured_tensor(cfg: MemoryConfig) -> None:
    result = run(cfg)
    parts, first, later = result.measured.memory, *result.measured.steps
    held_all_along = parts.params + parts.buffers + result.measured.input
    # what a step starts with is the tensors; what it leaves is what the allocator added
    assert first.start == held_all_along
    assert first.end - first.start == parts.grads + parts.optimizer  # state made in step 1
    assert later.start == held_all_along + parts.optimizer
    assert later.end - later.start == parts.grads  # zero_grad freed them, backward remade them
    for step in (first, later):
        assert sum(step.at_peak.values()) == step.peak
        assert all(value >= 0 for value in step.at_peak.values()), step.at_peak
        assert step.at_peak["grads"] <= parts.grads
        assert step.at_peak["saved_activations"] <= parts.saved_activations
        assert step.at_peak["optimizer"] <= parts.optimizer
        assert sum(step.other_by_op.values()) <= step.at_peak["other"]
        assert step.peak == max(step.start, *step.phase_peaks.values())
        # every saved activation is alive at once when the forward ends
        assert step.phase_peaks["forward"] >= step.start + parts.saved_activations - (
            result.measured.input
        )
    assert result.measured.peak == max(first.peak, later.peak)


def test_the_peak_follows_the_allocators_own_running_total() -> None:
    """The profiler's allocation events carry the CPU allocator's running total; the
    bytes held that the timeline sums from sizes, in time order, move with it exactly."""
    model = memory.build_model("memory_models:small_deeplabv3", 0).train()
    x = torch.rand(2, 3, 32, 32)
    opt = memory.make_optimizer(model, "adam")
    _, timeline = memory._profiled(lambda: memory._step(model, (x,), {}, opt), 0)
    events = timeline.events
    assert len(events) > 100
    base = events[0].counter - events[0].size
    assert [timeline.held[i + 1] for i in range(len(events))] == [e.counter - base for e in events]


class TwoLinear(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Linear(1024, 1024, bias=False), nn.ReLU(), nn.Linear(1024, 1024, bias=False)
        )


def test_a_worked_peak_with_sgd() -> None:
    """x (8, 1024) → Linear → h → ReLU → r → Linear → y; loss = sum(y); plain SGD.

    Autograd saves x (the input) and r; backward makes grad_W2 and grad_r, then
    grad_h = threshold_backward(grad_r, r), frees grad_r and r, then makes grad_W1: the
    peak, where y (kept by the loop until the step ends), grad_h and three 4-byte scalars
    (the loss, the sum of the losses, its gradient of ones) are held besides the weights,
    their gradients and x."""
    weight, activation, scalar = 1024 * 1024 * 4, 8 * 1024 * 4, 4
    result = measure(TwoLinear().train(), [torch.rand(8, 1024)], "sgd")
    later = result.steps[1]
    assert result.memory.saved_activations == 2 * activation  # x and r
    assert later.start == 2 * weight + activation
    assert later.phase_peaks["forward"] == later.start + 2 * activation + scalar  # r, y, loss
    assert later.peak == later.start + 2 * weight + 2 * activation + 3 * scalar
    assert later.phase == "backward"
    assert later.at_peak == {
        "params_and_buffers": 2 * weight,
        "input": activation,
        "optimizer": 0,
        "grads": 2 * weight,
        "saved_activations": 0,  # r is freed once grad_h is made
        "other": 2 * activation + 3 * scalar,  # y, grad_h, the scalars
    }
    assert later.other_by_op["aten::threshold_backward"] == activation  # grad_h
    assert later.other_by_op["aten::mm"] == activation  # y
