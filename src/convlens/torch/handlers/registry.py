"""The handler registry: which PyTorch function becomes which convlens rule, and the small
helpers every handler family shares (argument lookup, axes, the model's own tensors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from convlens.errors import ConvlensError

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer

Handler = Callable[["Tracer", tuple, dict], Any]
HANDLERS: dict[Any, Handler] = {}
# Handlers that find the batch wherever it is (``Tracer.batch_axis``): the others see only
# tensors whose batch is axis 0 (the tracer falls back to PyTorch's meta kernel otherwise).
ANY_LAYOUT: set[Handler] = set()


def handles(*funcs: Any, any_layout: bool = False) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        for func in dict.fromkeys(funcs):  # F.conv2d is torch.conv2d: name it once
            if func in HANDLERS:
                raise RuntimeError(f"two trace handlers for {func}")
            HANDLERS[func] = fn
        if any_layout:
            ANY_LAYOUT.add(fn)
        return fn

    return decorator


def arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def per_axis(value: Any, axes: int) -> tuple[int, ...]:
    """``3`` or ``(3,)`` → (3, 3, 3) for three axes; a tuple of ``axes`` values as it is."""
    if isinstance(value, int):
        return (value,) * axes
    values = tuple(int(v) for v in value)
    return values * axes if len(values) == 1 else values


# -- handlers: PyTorch functions → convlens rules ------------------------------------------
def expect_channels(t: Tracer, x: Any, expected: int, what: str, axis: int = 1) -> None:
    """A layer's weights fix its input size: say so rather than count a wrong input."""
    got = int(x.shape[axis]) if x.dim() > axis else None
    if got != expected:
        raise ConvlensError(
            f"{t.where()} expects {expected} {what} but its input has shape "
            f"{tuple(x.shape)} (check --input or the layer before it)"
        )


def owned_tensor(t: Tracer, tensor: torch.Tensor) -> torch.Tensor | None:
    """The model's parameter or buffer that ``tensor`` is (or is a whole view of, like
    ``self.weight.t()``), or None."""
    if id(tensor) in t.owned:
        return tensor
    base = tensor._base
    if base is not None and id(base) in t.owned and base.numel() == tensor.numel():
        return base
    return None
