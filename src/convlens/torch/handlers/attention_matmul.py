"""Matrix products (with a weight or of two outputs) and scaled dot-product attention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.core.args import coerce_args
from convlens.core.registry import get_rule
from convlens.core.rules.linalg import attention_kernel
from convlens.torch.handlers.registry import arg, handles, owned_tensor
from convlens.torch.probes import copies_input, folds_by_copy
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
    any_layout=True,
)
def _matmul(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """Products of two outputs (``q @ k.transpose(-2, -1)``, ``attn @ v``) whose batch is
    one of the broadcast axes in front, or of an output and a fixed weight whose batch is
    not an axis the product sums over."""
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2", kwargs.get("vec")))
    if isinstance(a, ShapeTensor) and isinstance(b, ShapeTensor):
        layout = t.batch_axis(a)
        if (
            layout is None
            or t.batch_axis(b) != layout
            or a.dim() < 3
            or a.dim() != b.dim()
            or layout.axis >= a.dim() - 2
        ):
            return NotImplemented  # the product would reach the batch axis
        batch = tuple(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        spec = {"copies_input": folds_by_copy(a, batch), "copies_other": folds_by_copy(b, batch)}
        return t.record("matmul", {k: v for k, v in spec.items() if v}, [a, b], layout=layout)
    x, weight = (a, b) if isinstance(a, ShapeTensor) else (b, a)
    if not isinstance(x, ShapeTensor):
        return NotImplemented  # neither operand is traced (only another argument is)
    if not isinstance(weight, torch.Tensor) or isinstance(weight, ShapeTensor) or weight.dim() > 2:
        return NotImplemented  # a batched weight is expanded and copied: no rule yet
    layout = t.batch_axis(x)
    first = x is b
    if layout is None or layout.axis >= x.dim() - (2 if first else 1):
        return NotImplemented  # the product sums over the batch's axis
    rank = x.dim() - (0 if layout.merged else 1)  # per-sample rank of the traced operand
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
        layout=layout,
    )


@handles(F.scaled_dot_product_attention, any_layout=True)
def _attention(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """F.scaled_dot_product_attention on q, k, v whose batch is one of the axes in front
    (timm's ``qkv.unbind(0)`` parts, Swin's windows merged with the batch)."""
    q, k, v = (arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
    mask = arg(args, kwargs, 3, "attn_mask")
    if not all(isinstance(z, ShapeTensor) for z in (q, k, v)) or kwargs.get("enable_gqa"):
        return NotImplemented
    layout = t.batch_axis(q)
    if (
        layout is None
        or any(t.batch_axis(z) != layout or z.dim() != q.dim() for z in (k, v))
        or layout.axis >= q.dim() - 2
    ):
        return NotImplemented  # the batch's axis is not one in front of (L, E)
    spec: dict[str, Any] = {
        "is_causal": bool(arg(args, kwargs, 5, "is_causal", False)),
        "dropout_p": float(arg(args, kwargs, 4, "dropout_p", 0.0)),
        # sdpa_kernel(...) and enable_flash_sdp(False) switch the CPU flash kernel off too
        "flash": torch.backends.cuda.flash_sdp_enabled(),
    }
    if layout.merged:
        spec["batch_merged"] = True
    if mask is not None:
        if (
            isinstance(mask, ShapeTensor)
            or not isinstance(mask, torch.Tensor)
            or mask.dtype not in (torch.bool, q.dtype)
        ):
            return NotImplemented  # a mask computed from the input: no rule yet
        at = layout.axis - (q.dim() - mask.dim())  # the mask's axis on the batch's
        if mask.dim() > q.dim() or (
            at >= 0 and (mask.shape[at] != 1 or (layout.axis > 0 and not layout.merged))
        ):
            return NotImplemented  # a mask per sample: not a fixed operand
        spec.update(
            attn_mask=tuple(int(d) for d in mask.shape),
            mask_dtype="bool" if mask.dtype == torch.bool else "float",
            mask_is_buffer=id(mask) in t.owned
            or (mask._base is not None and id(mask._base) in t.owned),
        )
    # CPU flash attention writes its output as (N, L, H, E) and returns it transposed to
    # (N, H, L, E) (sdp_utils, torch 2.13): a later transpose(1, 2).reshape is then a view.
    flash = (
        q.dim() == 4
        and attention_kernel(
            t.shapes[t.node(q)],
            t.shapes[t.node(k)],
            t.shapes[t.node(v)],
            coerce_args("attention", get_rule("attention").schema, spec),
        )
        == "flash"
    )
    order = (0, 2, 1, 3) if flash else None
    if not flash:  # the math kernel's attn @ v folds v like torch.matmul does
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        if folds_by_copy(v, tuple(batch)):
            spec["copies_value"] = True
    return t.record("attention", spec, [q, k, v], layout=layout, order=order)
