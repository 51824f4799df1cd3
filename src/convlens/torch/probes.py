"""Autograd probes: what backward really keeps, asked of PyTorch on meta tensors with the
traced tensor's strides (a strided input is copied by some kernels, and the copy is kept)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def copies_input(x: torch.Tensor, weight: torch.Tensor, first: bool) -> bool:
    """Whether autograd keeps a copy of ``x`` rather than ``x`` in ``weight @ x`` or
    ``x @ weight`` (torch.matmul folds a non-contiguous operand into a matrix with a copy)."""

    def product(probe: torch.Tensor) -> Any:
        w = torch.empty(tuple(weight.shape), device="meta", requires_grad=True)
        return torch.matmul(w, probe) if first else torch.matmul(probe, w)

    if not first and is_contiguous(x):  # folded by a view: x itself is kept
        return False
    return keeps_copy(x, product)


def is_contiguous(x: torch.Tensor) -> bool:
    with torch._C.DisableTorchFunctionSubclass():
        return x.is_contiguous()


def keeps_copy(x: torch.Tensor, op: Callable[[torch.Tensor], Any]) -> bool:
    """Whether autograd keeps a copy of ``x`` rather than ``x`` (or a view of it) when
    ``op`` runs on it with a weight that needs a gradient: asked of PyTorch itself, on a
    meta tensor with ``x``'s strides."""
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty_strided(tuple(x.shape), x.stride(), device="meta", requires_grad=True)
        kept: list[torch.Tensor] = []

        def keep(saved: torch.Tensor) -> torch.Tensor:
            kept.append(saved)
            return saved

        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(keep, lambda s: s),
        ):
            op(probe)
        own = probe.untyped_storage()._cdata
        return not any(s.untyped_storage()._cdata == own for s in kept)


def folds_by_copy(x: torch.Tensor, batch: tuple[int, ...]) -> bool:
    """Whether torch.matmul copies ``x`` (…, n, k) when it expands its axes in front to
    ``batch`` and folds them into one for bmm — which backward then keeps instead of x.
    Asked of PyTorch's own view rules, on a meta tensor with x's strides."""
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty_strided(tuple(x.shape), x.stride(), device="meta")
        n, k = x.shape[-2:]
        folded = probe.expand(*batch, n, k).reshape(-1, n, k)
        return folded.untyped_storage()._cdata != probe.untyped_storage()._cdata


def same_order_strides(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """Dense strides that keep the memory order of ``strides`` — what an element-wise
    kernel gives its output for a strided input (``torch.empty_like``'s
    ``preserve_format``, computed here: PyTorch's own Python reference for it imports
    SymPy on first use, ~0.3 s)."""
    order = sorted(range(len(shape)), key=lambda i: -strides[i])  # outermost first, stable
    out = [0] * len(shape)
    step = 1
    for i in reversed(order):
        out[i] = step
        step *= max(int(shape[i]), 1)
    return tuple(out)
