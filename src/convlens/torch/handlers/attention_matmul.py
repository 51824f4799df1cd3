"""Matrix products (with a weight or of two outputs) and scaled dot-product attention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.handlers.registry import arg, handles, owned_tensor
from convlens.torch.probes import copies_input
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


@handles(
    torch.matmul,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.bmm,
    torch.mm,
    torch.Tensor.mm,
    torch.mv,
    torch.Tensor.mv,
)
def _matmul(t: Tracer, args: tuple, kwargs: dict) -> Any:
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2", kwargs.get("vec")))
    if isinstance(a, ShapeTensor) and isinstance(b, ShapeTensor):
        if a.dim() < 3 or b.dim() < 3 or a.dim() != b.dim():
            return NotImplemented  # the product would reach the batch axis
        return t.record("matmul", {}, [a, b])
    x, weight = (a, b) if isinstance(a, ShapeTensor) else (b, a)
    if not isinstance(weight, torch.Tensor) or isinstance(weight, ShapeTensor) or weight.dim() > 2:
        return NotImplemented  # a batched weight is expanded and copied: no rule yet
    first, rank = x is b, x.dim() - 1  # per-sample rank of the traced operand
    if (rank < 2 or weight.dim() > rank) if first else (rank < 1 or weight.dim() > max(rank, 2)):
        return NotImplemented  # the product would reach the batch axis: not per sample
    owner = owned_tensor(t, weight)
    kind = (
        "constant"
        if owner is None
        else ("parameter" if isinstance(owner, nn.Parameter) else "buffer")
    )
    return t.record(
        "matmul",
        {
            "weight": tuple(int(d) for d in weight.shape),
            "weight_first": first,
            "weight_kind": kind,
            "copies_input": copies_input(x, weight, first),
        },
        [x],
        [owner] if owner is not None else [],
        own_buffers=False,
    )


@handles(F.scaled_dot_product_attention)
def _attention(t: Tracer, args: tuple, kwargs: dict) -> Any:
    q, k, v = (arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
    mask = arg(args, kwargs, 3, "attn_mask")
    if not all(isinstance(z, ShapeTensor) for z in (q, k, v)) or kwargs.get("enable_gqa"):
        return NotImplemented
    spec: dict[str, Any] = {
        "is_causal": bool(arg(args, kwargs, 5, "is_causal", False)),
        "dropout_p": float(arg(args, kwargs, 4, "dropout_p", 0.0)),
        # sdpa_kernel(...) and enable_flash_sdp(False) switch the CPU flash kernel off too
        "flash": torch.backends.cuda.flash_sdp_enabled(),
    }
    if mask is not None:
        if (
            isinstance(mask, ShapeTensor)
            or not isinstance(mask, torch.Tensor)
            or mask.dtype not in (torch.bool, q.dtype)
        ):
            return NotImplemented  # a mask computed from the input: no rule yet
        if mask.dim() > q.dim() or (mask.dim() == q.dim() and mask.shape[0] != 1):
            return NotImplemented  # a mask per sample: not a fixed operand
        spec.update(
            attn_mask=tuple(int(d) for d in mask.shape),
            mask_dtype="bool" if mask.dtype == torch.bool else "float",
            mask_is_buffer=id(mask) in t.owned
            or (mask._base is not None and id(mask._base) in t.owned),
        )
    return t.record("attention", spec, [q, k, v])
