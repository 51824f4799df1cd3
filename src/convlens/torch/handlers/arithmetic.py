"""Arithmetic (with a number, a tensor the model holds, or another output) and reductions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from convlens.torch.handlers.registry import Handler, arg, handles, owned_tensor, sample_dim
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def _reduce(op: str) -> Handler:
    """x.sum(dim) or x.mean(dim) over axes other than the batch; a mean over H and W of a
    (N, C, H, W) map is global average pooling."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else kwargs.get("input")
        dims, keepdim = arg(args, kwargs, 1, "dim"), bool(arg(args, kwargs, 2, "keepdim", False))
        if not isinstance(x, ShapeTensor) or dims is None or kwargs.get("dtype") is not None:
            return NotImplemented  # no dim: the batch is reduced too
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        axes = [sample_dim(x, d) for d in dims]
        if not axes or None in axes or len(set(axes)) != len(axes):
            return NotImplemented  # the batch axis, or PyTorch's own error
        if op == "mean" and x.dim() == 4 and set(axes) == {2, 3}:
            return t.record("global_avgpool", {"keepdim": keepdim}, [x])
        return t.record("reduce", {"op": op, "dim": tuple(sorted(axes)), "keepdim": keepdim}, [x])

    return handler


handles(torch.mean, torch.Tensor.mean)(_reduce("mean"))
handles(torch.sum, torch.Tensor.sum)(_reduce("sum"))


def _binary(op: str, inplace: bool = False, reflected: bool = False) -> Handler:
    """x ∘ y for ∘ in + − · /: with a number (``scalar_op``), with a tensor the model holds
    or a constant (``tensor_op``), or of two outputs (``add``, ``mul``). ``reflected``:
    ``x.__rsub__(y)`` is y − x."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if reflected:
            a, b = b, a
        tensors = [v for v in (a, b) if isinstance(v, ShapeTensor)]
        if len(tensors) == 1 and isinstance(b if tensors[0] is a else a, int | float):
            if op == "div" and tensors[0] is b:
                return NotImplemented  # c / x is a reciprocal, which keeps its result
            return t.record("scalar_op", {}, tensors, inplace=inplace)  # x·0.5, x + 1
        if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode"):
            return NotImplemented
        if len(tensors) == 1 and isinstance(b if tensors[0] is a else a, torch.Tensor):
            x = tensors[0]
            return _tensor_op(t, op, x, b if x is a else a, x is b, inplace)
        if (
            len(tensors) != 2
            or op in ("sub", "div")
            or (op == "add" and tuple(a.shape) != tuple(b.shape))
        ):
            return NotImplemented
        return t.record(op, {}, [a, b], inplace=inplace)

    return handler


def _tensor_op(
    t: Tracer, op: str, x: ShapeTensor, w: torch.Tensor, first: bool, inplace: bool
) -> Any:
    """x ∘ w (w ∘ x if ``first``) with w a parameter, a buffer, a whole view of one
    (``self.weight.view(1, -1, 1, 1)``) or a constant, broadcast so that the batch stays on
    axis 0; its parameters are counted here, once."""
    if (
        w.dtype != x.dtype
        or w.dim() > x.dim()
        or (w.dim() == x.dim() and w.shape[0] != 1)
        or (inplace and first)
    ):
        return NotImplemented  # promoted, broadcast over the batch, or w overwritten
    owner = owned_tensor(t, w)
    if owner is None and w._base is not None and id(w._base) in t.owned:
        return NotImplemented  # a part of a model tensor: its parameters live elsewhere
    kind = (
        "constant"
        if owner is None
        else ("parameter" if isinstance(owner, nn.Parameter) else "buffer")
    )
    return t.record(
        "tensor_op",
        {
            "op": op,
            "weight": tuple(int(d) for d in w.shape),
            "weight_first": first,
            "weight_kind": kind,
        },
        [x],
        [owner] if owner is not None else [],
        inplace=inplace,
        own_buffers=False,
    )


handles(torch.add, torch.Tensor.add, torch.Tensor.__add__)(_binary("add"))
handles(torch.Tensor.__radd__)(_binary("add", reflected=True))
handles(torch.Tensor.add_, torch.Tensor.__iadd__)(_binary("add", inplace=True))
handles(torch.mul, torch.Tensor.mul, torch.Tensor.__mul__)(_binary("mul"))
handles(torch.Tensor.__rmul__)(_binary("mul", reflected=True))
handles(torch.Tensor.mul_, torch.Tensor.__imul__)(_binary("mul", inplace=True))
handles(torch.sub, torch.Tensor.sub, torch.Tensor.__sub__)(_binary("sub"))
handles(torch.Tensor.__rsub__)(_binary("sub", reflected=True))
handles(torch.Tensor.sub_, torch.Tensor.__isub__)(_binary("sub", inplace=True))
handles(torch.div, torch.Tensor.div, torch.Tensor.__truediv__)(_binary("div"))
handles(torch.Tensor.__rtruediv__)(_binary("div", reflected=True))
handles(torch.Tensor.div_, torch.Tensor.__itruediv__)(_binary("div", inplace=True))
