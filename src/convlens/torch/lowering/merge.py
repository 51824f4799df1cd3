"""Joining outputs in PyTorch: add, mul, concat, stack, concat_tensor (rules:
core/rules/merge.py). ``x + y`` and ``x * y`` are traced by the arithmetic handlers
(``lowering/elementwise.py``), which tell two outputs from a number or a fixed tensor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from convlens.torch.batch_axis import Layout
from convlens.torch.lowering.common import (
    HeldTensor,
    described,
    feature_map,
    held_kind,
    held_kind_choice,
    owned_tensor,
    whole,
)
from convlens.torch.lowering.elementwise import ARITHMETIC
from convlens.torch.registry import Choices, arg, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor, ranks

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


class Merge(nn.Module):
    """Outputs of several layers joined into one: concatenated, stacked, summed or
    multiplied."""

    def __init__(self, kind: str, dim: int = 1):
        super().__init__()
        self.kind, self.dim = kind, dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.kind == "concat":
            return torch.cat(xs, dim=self.dim)
        if self.kind == "stack":
            return torch.stack(xs, dim=self.dim)
        out = xs[0]
        for x in xs[1:]:
            out = out * x if self.kind == "mul" else out + x
        return out


# -- add, mul -----------------------------------------------------------------------------
def add_examples(pick: Choices) -> str:
    c, h, w = feature_map(pick)
    return described((c, h, w), "relu as a", f"conv2d {c} k=1", "add a")


lowering(
    "add",
    traced_by=ARITHMETIC["add"],
    traced_as=["tensor_op", "add"],
    build=lambda a, s: Merge("add"),
    examples=add_examples,
)
lowering(
    "mul",
    traced_by=ARITHMETIC["mul"],
    build=lambda a, s: Merge("mul"),
    examples=lambda pick: described(feature_map(pick), "relu as a", "sigmoid", "mul a"),
)


# -- concat, concat_tensor ----------------------------------------------------------------
@handles(torch.cat, torch.concat, torch.concatenate, any_layout=True)
def trace_cat(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """Outputs joined along an axis other than the batch's (``concat``), or one output
    joined with fixed tensors expanded over the batch (``concat_tensor``: a class token)."""
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = arg(args, kwargs, 1, "dim", 0)
    traced = [x for x in tensors if isinstance(x, ShapeTensor)]
    if not traced or not isinstance(dim, int):
        return NotImplemented
    if not all(isinstance(v, torch.Tensor) for v in tensors):
        return NotImplemented  # PyTorch's own error
    x, rank = traced[0], ranks(tensors)
    layout = t.batch_axis(x)
    axis = None if layout is None else layout.sample_axis(dim, rank[0])
    if layout is None or axis is None or any(r != rank[0] for r in rank):
        return NotImplemented  # along the batch's axis, or PyTorch's own error
    axis += 1  # counted with the batch, as the rules count axes
    if len(traced) == len(tensors):
        if any(t.batch_axis(v) != layout for v in tensors):
            return NotImplemented
        return t.record("concat", {"dim": axis}, tensors, layout=layout)
    if len(traced) == 1:
        return _concat_tensor(t, tensors, x, dim % rank[0], axis, layout)
    return NotImplemented


def _concat_tensor(
    t: Tracer, tensors: list, x: ShapeTensor, dim: int, axis: int, layout: Layout
) -> Any:
    """``torch.cat((cls.expand(N, -1, -1), x), dim=1)``: each fixed part must be the same
    for every sample (expanded: stride 0 along the batch's axis) and one whole parameter,
    buffer or constant."""
    if layout.merged:
        return NotImplemented
    at = next(i for i, v in enumerate(tensors) if v is x)
    kinds, owners, sizes = set(), [], []
    for w in tensors[:at] + tensors[at + 1 :]:
        if (
            not isinstance(w, torch.Tensor)
            or w.dtype != x.dtype
            or (w.stride(layout.axis) != 0 and w.shape[layout.axis] != 1)
        ):
            return NotImplemented  # not one sample's tensor expanded over the batch
        base = w._base if w._base is not None else w
        owner = owned_tensor(t, base)
        if (owner is None and id(base) in t.owned) or (
            owner is not None and owner.numel() * x.shape[layout.axis] != w.numel()
        ):
            return NotImplemented  # a part of a model tensor: its parameters live elsewhere
        kinds.add(held_kind(owner))
        owners.append(owner)
        sizes.append(int(w.shape[dim]))
    if len(kinds) != 1:
        return NotImplemented  # parameters beside constants: no one rule
    spec = {
        "dim": axis,
        "before": tuple(sizes[:at]),
        "after": tuple(sizes[at:]),
        "weight_kind": kinds.pop(),
    }
    weights = [o for o in owners if o is not None]
    return t.record("concat_tensor", spec, [x], weights, own_buffers=False, layout=layout)


lowering(
    "concat",
    traced_by=[trace_cat],
    build=lambda a, s: Merge("concat", whole(a["dim"])),
    examples=lambda pick: described(
        feature_map(pick), "relu as a", f"conv2d {pick.integer(1, 3)} k=1", "concat a"
    ),
)


class ConcatTensor(nn.Module):
    """``torch.cat((*before, x, *after), dim)`` with fixed tensors of one sample's shape
    expanded over the batch, as ViT's class token is (``cls.expand(N, -1, -1)``)."""

    def __init__(self, args: Mapping[str, Any], shape: tuple):
        super().__init__()
        self.dim = whole(args["dim"])
        axis = self.dim - 1

        def part(size: Any) -> nn.Module:
            sample = (*shape[:axis], whole(size), *shape[axis + 1 :])
            return HeldTensor(torch.randn(1, *sample), args["weight_kind"])

        sizes = {k: v if isinstance(v, tuple | list) else (v,) for k, v in args.items()}
        self.before = nn.ModuleList(part(s) for s in sizes["before"])
        self.after = nn.ModuleList(part(s) for s in sizes["after"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def expand(held: nn.Module) -> torch.Tensor:
            # before/after hold only the HeldTensor parts __init__ made
            tensor = cast(HeldTensor, held).held(x)
            return tensor.expand(x.shape[0], *tensor.shape[1:])

        parts = [*map(expand, self.before), x, *map(expand, self.after)]
        return torch.cat(parts, dim=self.dim)


def concat_tensor_examples(pick: Choices) -> str:
    options = [
        f"concat_tensor before=({pick.integer(1, 3)}) dim={pick.integer(1, 3)}"
        f" weight_kind={held_kind_choice(pick)}",
        f"concat_tensor after=({pick.integer(1, 2)},{pick.integer(1, 2)})",
    ]
    return described(feature_map(pick), pick.choice(options))


lowering(
    "concat_tensor",
    traced_by=[trace_cat],
    build=lambda a, s: ConcatTensor(a, s),
    examples=concat_tensor_examples,
)


# -- stack --------------------------------------------------------------------------------
@handles(torch.stack, any_layout=True)
def trace_stack(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """Equal outputs stacked on a new axis; ``torch.stack(xs)`` (dim 0) puts the new axis in
    front of the batch, which moves to axis 1 (smp's FPN then sums over axis 0)."""
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = arg(args, kwargs, 1, "dim", 0)
    if not tensors or not all(isinstance(x, ShapeTensor) for x in tensors):
        return NotImplemented
    x, rank = tensors[0], tensors[0].dim() + 1
    layout = t.batch_axis(x)
    if (
        layout is None
        or not isinstance(dim, int)
        or not -rank <= dim < rank
        or any(t.batch_axis(v) != layout or v.shape != x.shape for v in tensors)
    ):
        return NotImplemented
    d = dim % rank
    out = replace(layout, axis=layout.axis + (d <= layout.axis))
    spec = {"dim": out.sample_axis(d, rank) + 1}  # type: ignore[operator]
    return t.record("stack", spec, tensors, layout=out)


lowering(
    "stack",
    traced_by=[trace_stack],
    build=lambda a, s: Merge("stack", whole(a["dim"])),
    examples=lambda pick: described(feature_map(pick), f"stack dim={pick.integer(1, 4)}"),
)
