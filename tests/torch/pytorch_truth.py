"""A traced model's report held to PyTorch itself: parameters and buffers (``numel``), MACs
(``FlopCounterMode`` / 2, attention through PyTorch's math kernel, which it counts), the
output of a real forward, and the activations a training forward saves."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import convlens
from tests.torch.saved import saved_bytes


def flop_counter_macs(model: nn.Module, *inputs: Any) -> tuple[int, Any]:
    """MACs as FlopCounterMode counts them (it counts nothing for the CPU flash attention
    kernel, so attention runs through the math one), and the output, in eval mode."""
    training = model.training
    model.eval()
    try:
        with (
            FlopCounterMode(display=False) as counter,
            torch.no_grad(),
            sdpa_kernel(SDPBackend.MATH),
        ):
            out = model(*inputs)
    finally:
        model.train(training)
    return counter.get_total_flops() // 2, out


def check_against_pytorch(model: nn.Module, x: torch.Tensor, **options: Any) -> Any:
    """Analyse ``model`` (in train mode, as a training step sees it) and hold every count
    to PyTorch; returns the report for pattern-specific checks."""
    torch.manual_seed(0)
    model.train()
    report = convlens.analyze(model, input=x, **options)
    assert report.totals.unsupported == (), report.totals.unsupported
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.buffers == sum(b.numel() for b in model.buffers())
    macs, out = flop_counter_macs(model, x)
    assert report.totals.macs == macs
    last = [r for r in report.layers if r.kind != "params_only"][-1]
    assert (x.shape[0], *last.output_shape) == tuple(out.shape)
    model.train()
    assert report.totals.saved_activation_bytes == saved_bytes(model, x)
    return report
