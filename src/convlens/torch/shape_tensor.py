"""The shape tensor: a meta tensor (no data, free to create) that reports every operation
performed on it to the running trace, which answers with convlens's own rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from convlens.core.numbers import plain_ints


class ShapeTensor(torch.Tensor):
    """A meta tensor that reports every operation on it to the active tracer."""

    tracer: ClassVar[Any] = None  # the running trace's Tracer (set and cleared by ``trace``)

    @classmethod
    def __torch_function__(
        cls,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        tracer = ShapeTensor.tracer
        if tracer is None:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        return tracer.on_call(func, tuple(args), dict(kwargs or {}))


_META = torch.device("meta")

# One plain meta tensor per (shape, dtype) met so far, for ``meta_tensor`` to wrap.
_TEMPLATES: dict[tuple[tuple[int, ...], torch.dtype], torch.Tensor] = {}
_MOST_TEMPLATES = 4096  # a session's distinct output shapes: a few hundred per input size


def meta_tensor(shape: Sequence[int], dtype: torch.dtype) -> ShapeTensor:
    """A new shape tensor of ``shape``: a fresh tensor wrapping the storage of a meta
    template kept per shape and dtype. Every traced row makes one, and wrapping costs less
    than allocating (``torch.empty``, then ``as_subclass``'s alias); a meta storage holds no
    data, so sharing it shares nothing. Like ``torch.empty``'s, the tensor is no view."""
    if type(shape) is not tuple or not plain_ints(shape):
        shape = tuple(int(d) for d in shape)
    template = _TEMPLATES.get((shape, dtype))
    if template is None:
        if len(_TEMPLATES) >= _MOST_TEMPLATES:
            _TEMPLATES.clear()
        template = _TEMPLATES[(shape, dtype)] = torch.empty(shape, dtype=dtype, device=_META)
    return torch.Tensor._make_subclass(ShapeTensor, template)


def ranks(tensors: Sequence[torch.Tensor]) -> list[int]:
    """The number of axes of each tensor, read without dispatching to the tracer (every
    ``x.dim()`` on a shape tensor is a ``__torch_function__`` call: DenseNet's
    ``torch.cat`` of up to 48 feature maps would pay it 48 times)."""
    with torch._C.DisableTorchFunctionSubclass():
        return [t.dim() for t in tensors]
