"""Normalisations over a sample and products in PyTorch: layer_norm, group_norm, matmul,
attention (rules: core/rules/linalg.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.core.args import coerce_args
from convlens.core.registry import get_rule
from convlens.core.rules.linalg import attention_kernel
from convlens.torch.lowering.common import (
    HeldTensor,
    described,
    expect_channels,
    feature_map,
    flag,
    held_kind,
    held_kind_choice,
    owned_tensor,
    whole,
)
from convlens.torch.probes import copies_input, folds_by_copy
from convlens.torch.registry import Choices, arg, calls, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- layer_norm ---------------------------------------------------------------------------
@handles(F.layer_norm, any_layout=True)
def trace_layer_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, shape = args[0], tuple(int(d) for d in arg(args, kwargs, 1, "normalized_shape"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    layout = t.batch_axis(x)
    if layout is None or layout.axis >= x.dim() - len(shape):
        return NotImplemented  # the normalised axes hold the batch
    return t.record(
        "layer_norm",
        {
            "normalized_shape": shape,
            "elementwise_affine": weight is not None,
            "bias": bias is not None,
            "eps": float(arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
        layout=layout,
    )


def layer_norm_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    options = [
        f"layer_norm ({w}) elementwise_affine={flag(pick)} bias={flag(pick)}",
        f"layer_norm ({c},{h},{w})",
    ]
    return described((c, h, w), pick.choice(options))


lowering(
    "layer_norm",
    traced_by=[trace_layer_norm],
    build=lambda a, s: nn.LayerNorm(
        tuple(whole(d) for d in a["normalized_shape"]), a["eps"], a["elementwise_affine"], a["bias"]
    ),
    examples=layer_norm_examples,
)


# -- group_norm ---------------------------------------------------------------------------
@handles(F.group_norm)
def trace_group_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, groups = args[0], int(arg(args, kwargs, 1, "num_groups"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    if weight is not None:
        expect_channels(t, x, int(weight.shape[0]), "channels")
    return t.record(
        "group_norm",
        {
            "num_groups": groups,
            "affine": weight is not None,
            "eps": float(arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
    )


def group_norm_examples(pick: Choices) -> str:
    groups = pick.integer(1, 3)
    return described(feature_map(pick, groups), f"group_norm {groups} affine={flag(pick)}")


lowering(
    "group_norm",
    traced_by=[trace_group_norm],
    build=lambda a, s: nn.GroupNorm(whole(a["num_groups"]), whole(s[0]), a["eps"], a["affine"]),
    examples=group_norm_examples,
)


# -- matmul -------------------------------------------------------------------------------
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
def trace_matmul(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
    return t.record(
        "matmul",
        {
            "weight": tuple(int(d) for d in weight.shape),
            "weight_first": first,
            "weight_kind": held_kind(owner),
            "copies_input": copies_input(x, weight, first),
        },
        [x],
        [owner] if owner is not None else [],
        own_buffers=False,
        layout=layout,
    )


class Matmul(nn.Module):
    """The product of two outputs."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class WeightMatmul(HeldTensor):
    """x @ weight (or weight @ x) with a parameter, a buffer or a plain constant."""

    def __init__(self, shape: tuple[int, ...], first: bool, kind: str):
        super().__init__(torch.randn(shape) / max(shape[-1], 1) ** 0.5, kind)
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.held(x)
        return torch.matmul(weight, x) if self.first else torch.matmul(x, weight)


def build_matmul(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    if args["weight"] is None:
        return Matmul()
    weight = tuple(whole(d) for d in args["weight"])
    return WeightMatmul(weight, args["weight_first"], args["weight_kind"])


def matmul_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    n = pick.integer(1, 4)
    options = [
        f"matmul weight=({w},{n}) weight_kind={held_kind_choice(pick)}",
        f"matmul weight=({n},{h}) weight_first=true",
        # (x @ a vector is torch.mv and CPU flash attention a kernel FlopCounterMode
        # does not count: tests/torch checks those against hand counts)
        f"relu as a\nview ({c},{w},{h}) as b\nfrom a\nmatmul b",
    ]
    return described((c, h, w), pick.choice(options))


lowering("matmul", traced_by=[trace_matmul], build=build_matmul, examples=matmul_examples)


# -- attention ----------------------------------------------------------------------------
@handles(F.scaled_dot_product_attention, any_layout=True)
def trace_attention(t: Tracer, args: tuple, kwargs: dict) -> Any:
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
        # sdpa_kernel(...) and enable_flash_sdp(False) switch the CPU flash kernel off too,
        # and it takes only q, k, v whose last axis is contiguous (sdp_utils_cpp, 2.13)
        "flash": torch.backends.cuda.flash_sdp_enabled()
        and all(z.stride(-1) == 1 for z in (q, k, v)),
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


class Attention(nn.Module):
    """F.scaled_dot_product_attention with a fixed mask (a buffer or a plain tensor)."""

    def __init__(self, args: Mapping[str, Any]):
        super().__init__()
        self.causal, self.dropout_p, self.flash = (
            args["is_causal"],
            float(args["dropout_p"]),
            args["flash"],
        )
        mask = None
        if args["attn_mask"] is not None:
            shape = tuple(whole(d) for d in args["attn_mask"])
            mask = torch.rand(shape) > 0.3 if args["mask_dtype"] == "bool" else torch.randn(shape)
            if mask.dtype == torch.bool:  # a row of False only would give NaN
                mask[..., 0] = True
        if args["mask_is_buffer"]:
            self.register_buffer("mask", mask)
        else:
            self.mask = mask

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = [SDPBackend.MATH] + ([SDPBackend.FLASH_ATTENTION] if self.flash else [])
        with sdpa_kernel(backends):
            mask = None if self.mask is None else self.mask.to(q.device)  # a plain tensor
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout_p, is_causal=self.causal
            )


def attention_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    options = [
        f"attention k v is_causal={flag(pick)} flash=false",
        f"attention k v flash=false attn_mask=({h},{h})"
        f" mask_dtype={pick.choice(['bool', 'float'])}",
    ]
    return described((c, h, w), "relu as k", "sigmoid as v", "tanh", pick.choice(options))


lowering(
    "attention",
    traced_by=[trace_attention],
    build=lambda a, s: Attention(a),
    examples=attention_examples,
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
calls(nn.Linear, how=lambda m, x: (F.linear, (x, m.weight, m.bias), {}))
calls(
    nn.LayerNorm,
    how=lambda m, x: (
        F.layer_norm,
        (x, m.normalized_shape),
        {"weight": m.weight, "bias": m.bias, "eps": m.eps},
    ),
)
