"""What several lowering families share: reading a traced call, turning resolved arguments
into module arguments, modules holding a fixed tensor, and random example inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from convlens.core.numbers import is_numeric
from convlens.errors import ConvlensError
from convlens.torch.registry import Choices
from convlens.torch.shape_tensor import ShapeTensor, meta_tensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- tracing ------------------------------------------------------------------------------
def pair(value: Any) -> tuple[int, int]:
    """A PyTorch size argument (int, or a sequence of one or two) as (height, width)."""
    if isinstance(value, int):
        return (value, value)
    first = int(value[0])
    return (first, first) if len(value) == 1 else (first, int(value[1]))


def per_axis(value: Any, axes: int) -> tuple[int, ...]:
    """``3`` or ``(3,)`` → (3, 3, 3) for three axes; a tuple of ``axes`` values as it is."""
    if isinstance(value, int):
        return (value,) * axes
    values = tuple(int(v) for v in value)
    return values * axes if len(values) == 1 else values


def expect_channels(t: Tracer, x: Any, expected: int, what: str, axis: int = 1) -> None:
    """A layer's weights fix its input size: say so rather than count a wrong input."""
    got = int(x.shape[axis]) if x.dim() > axis else None
    if got != expected:
        raise ConvlensError(
            f"{t.where()} expects {expected} {what} but its input has shape "
            f"{tuple(x.shape)} (check --input or the layer before it)"
        )


def indices_beside(t: Tracer, record: Callable[[], Any]) -> Any:
    """A row whose PyTorch call also gives int64 indices (max pooling's ``return_indices``,
    ``torch.max(x, dim)``): ``record()`` makes the row of the values, and the indices come
    back beside it, as PyTorch's pair. They are the tensor the row's training already counts,
    not a row of their own. Run for real, the call runs once here and the row holds its
    values. ``NotImplemented`` from ``record`` is handed on."""
    real_indices = None
    if t.device != "meta":
        assert t.pending is not None
        func, call_args, call_kwargs = t.pending
        values, real_indices = func(*call_args, **call_kwargs)
        t.pending = (lambda *a, **k: values, (), {})
    out = record()
    if out is NotImplemented:
        return NotImplemented
    if real_indices is None:
        indices = meta_tensor(tuple(out.shape), torch.int64)
    else:
        indices = real_indices.as_subclass(ShapeTensor)
    t.register(indices, t.node(out))
    return out, indices


def owned_tensor(t: Tracer, tensor: torch.Tensor) -> torch.Tensor | None:
    """The model's parameter or buffer that ``tensor`` is (or is a whole view of, like
    ``self.weight.t()``), or None."""
    if id(tensor) in t.owned:
        return tensor
    base = tensor._base
    if base is not None and id(base) in t.owned and base.numel() == tensor.numel():
        return base
    return None


def held_kind(owner: torch.Tensor | None) -> str:
    """How the model holds a fixed operand: ``parameter``, ``buffer`` or ``constant``."""
    if owner is None:
        return "constant"
    return "parameter" if isinstance(owner, nn.Parameter) else "buffer"


# -- building -----------------------------------------------------------------------------
def whole(value: Any) -> int:
    """A size a module needs as a number: a symbolic one cannot be built."""
    if not is_numeric(value):
        raise ConvlensError(f"cannot build a module with symbolic size {value}: use --set")
    return int(value)


def whole_pair(value: Any) -> tuple[int, int]:
    return (whole(value[0]), whole(value[1]))


def whole_tuple(value: Any) -> tuple[int, ...]:
    """An axis or size given as one value or as several."""
    return tuple(whole(v) for v in (value if isinstance(value, tuple | list) else (value,)))


def padded(module: nn.Module, pads: tuple) -> nn.Module:
    """Symmetric padding goes to the layer; asymmetric ('same', even kernel) to ZeroPad2d."""
    top, bottom, left, right = (whole(p) for p in pads)
    if top == bottom and left == right:
        return module
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), module)


class HeldTensor(nn.Module):
    """A module holding one tensor the way ``kind`` says: a parameter, a buffer, or a plain
    attribute (a constant, which the model does not own)."""

    def __init__(self, value: torch.Tensor, kind: str):
        super().__init__()
        if kind == "parameter":
            self.weight = nn.Parameter(value)
        elif kind == "buffer":
            self.register_buffer("weight", value)
        else:
            self.constant = value

    def held(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight if hasattr(self, "weight") else self.constant.to(x.device)


# -- random examples ----------------------------------------------------------------------
def feature_map(pick: Choices, groups: int | None = None) -> tuple[int, int, int]:
    """A random C×H×W input; C a multiple of ``groups`` (of 1, 2 or 3 if not given)."""
    channels = (groups or pick.integer(1, 3)) * pick.integer(1, 3)
    return channels, pick.integer(1, 12), pick.integer(1, 12)


def described(shape: tuple[int, ...], *lines: str) -> str:
    """A description: the input line, then ``lines``."""
    return "\n".join([f"input {'x'.join(str(d) for d in shape)}", *lines])


def flag(pick: Choices) -> str:
    """A random boolean as the description language spells it."""
    return "true" if pick.boolean() else "false"


def size_text(pick: Choices, low: int, high: int) -> tuple[str, tuple[int, int]]:
    """A random size or pair, as written (``3`` or ``(3,2)``) and as (height, width)."""
    a = pick.integer(low, high)
    if pick.boolean():
        return str(a), (a, a)
    b = pick.integer(low, high)
    return f"({a},{b})", (a, b)


def held_kind_choice(pick: Choices) -> str:
    return pick.choice(["parameter", "buffer", "constant"])


def axes_text(pick: Choices, axes: int, low: int, high: int) -> tuple[str, tuple[int, ...]]:
    """One value for every axis (``3``) or one per axis (``(1,3,3)``), as written and as
    a tuple."""
    first = pick.integer(low, high)
    if axes == 1 or pick.boolean():
        return str(first), (first,) * axes
    values = (first, *(pick.integer(low, high) for _ in range(axes - 1)))
    return "(" + ",".join(map(str, values)) + ")", values


def signal_or_volume(pick: Choices, axes: int, channels: int) -> tuple[int, ...]:
    """A random (C, L) signal or (C, D, H, W) volume: long signals (1 … 24), small volumes
    (1 … 7 per axis: a 3-D forward is costly)."""
    high = 24 if axes == 1 else 7
    return (channels, *(pick.integer(1, high) for _ in range(axes)))


def with_gradient(pick: Choices, shape: tuple[int, ...], line: str) -> tuple[str, ...]:
    """``line``, or half the time a 1×1 convolution then ``line``: a layer without weights
    right after the input keeps nothing for backward (its input needs no gradient), so
    only the second form holds its saved tensors to autograd's."""
    if not pick.boolean():
        return (line,)
    return (f"conv{len(shape) - 1}d {shape[0]} k=1", line)
