"""What a model is called with: positional and keyword inputs, nested in dicts, lists and
tuples as far as the model needs (``forward(batch)`` with ``batch["image"]``).

A *leaf* is a tensor or a size (a tuple or list of ints, the batch first); everything else
(numbers, strings, None) is passed through as it is. The first leaf is the main input: its
axis 0 is the batch and receptive fields are measured on it. The dtype of the activations is
the first floating leaf tensor's, else the model's first floating parameter's (float32 for a
model without one).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from convlens.core.records import SampleShape
from convlens.errors import ArgumentError

Path = tuple[Any, ...]  # keys and indices from the top: ("args", 0, "image")


@dataclass(frozen=True)
class Leaf:
    """One tensor input: where it sits, its full shape (batch first) and dtype if given."""

    path: Path
    shape: tuple[int, ...]
    dtype: torch.dtype | None  # None: given as a size

    @property
    def name(self) -> str:
        """``input_1`` for the second positional input, ``mask`` for a keyword, and the
        path below it for nested ones (``input.mask``, ``input_1.0``)."""
        where, *rest = self.path
        head = (
            ("input" if rest[0] == 0 else f"input_{rest[0]}") if where == "args" else str(rest[0])
        )
        return ".".join([head, *(str(p) for p in rest[1:])])


@dataclass(frozen=True)
class ModelInputs:
    """The call's structure, with a ``Leaf`` at every tensor position."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    leaves: tuple[Leaf, ...]

    @property
    def batch(self) -> int:
        return self.leaves[0].shape[0]

    def build(self, make: Callable[[Leaf], Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with ``make(leaf)`` at every leaf."""
        args = tuple(_fill(a, make) for a in self.args)
        return args, {k: _fill(v, make) for k, v in self.kwargs.items()}


def _fill(value: Any, make: Callable[[Leaf], Any]) -> Any:
    """``value`` with ``make(leaf)`` at every leaf. A module-level function, not a closure
    that calls itself: such a closure is a reference cycle, and it would keep ``make`` — and
    the whole trace behind it, every traced tensor — alive until Python's cyclic garbage
    collector ran (a full pass costs ~0.1 s with torch loaded)."""
    if isinstance(value, Leaf):
        return make(value)
    if isinstance(value, dict):
        return {k: _fill(v, make) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_fill(v, make) for v in value)
    return value


def is_size(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    )


def _leaves(value: Any, path: Path, found: list[Leaf]) -> Any:
    """``value`` with a ``Leaf`` for every tensor or size in it (appended to ``found``)."""
    if isinstance(value, torch.Tensor):
        leaf = Leaf(path, tuple(int(d) for d in value.shape), value.dtype)
    elif is_size(value):
        if any(d <= 0 for d in value):
            raise ArgumentError(f"input {_where(path)}: sizes must be positive, got {tuple(value)}")
        leaf = Leaf(path, tuple(value), None)
    elif isinstance(value, Mapping):
        return {k: _leaves(v, (*path, k), found) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        return type(value)(_leaves(v, (*path, i), found) for i, v in enumerate(value))
    else:
        return value
    found.append(leaf)
    return leaf


def _where(path: Path) -> str:
    return "".join(f"[{p!r}]" for p in path[1:]) or "0"


def _by_keyword(model: Any, keys: Sequence[str]) -> bool:
    """A dict is keyword inputs when ``forward`` takes those names (or ``**kwargs``), and
    one positional input (``forward(batch)``) otherwise."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return True
    params = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return all(k in names for k in keys)


def model_inputs(model: Any, value: Any, batch: int = 1) -> ModelInputs:
    """``input=`` / ``input_size=`` as the user gave it → the call's structure.

    A tensor or a size is the one positional input (a size of three, C×H×W, gets the batch
    in front); a list or tuple of them is several positional inputs; a dict is keyword
    inputs when ``forward`` takes those names, else one positional input. Anything may
    nest inside dicts, lists and tuples.
    """
    found: list[Leaf] = []
    if isinstance(value, torch.Tensor) or is_size(value):
        args: tuple[Any, ...] = (_leaves(value, ("args", 0), found),)
        # One sample, C×H×W (or any --input shape): the batch goes in front
        if len(found[0].shape) == 3 or isinstance(value, SampleShape):
            found[0] = Leaf(found[0].path, (batch, *found[0].shape), found[0].dtype)
            args = (found[0],)
        kwargs: dict[str, Any] = {}
    elif isinstance(value, Mapping):
        if not value:
            raise ArgumentError("the input dict is empty: give at least one tensor or size")
        if _by_keyword(model, list(value)):
            args, kwargs = (), {k: _leaves(v, ("kwargs", k), found) for k, v in value.items()}
        else:
            args, kwargs = (_leaves(value, ("args", 0), found),), {}
    elif isinstance(value, list | tuple) and value:
        args, kwargs = tuple(_leaves(v, ("args", i), found) for i, v in enumerate(value)), {}
    else:
        raise ArgumentError(
            "input must be a tensor, a size (N, C, H, W), or a list, tuple or dict of them; "
            f"got {type(value).__name__}"
        )
    if not found:
        raise ArgumentError("the input holds no tensor and no size: nothing to trace")
    if len(found[0].shape) not in (3, 4, 5):
        raise ArgumentError(
            f"the first input ({found[0].name}) must be (N, C, H, W); got {found[0].shape} "
            "(or (N, C, L) for a signal, (N, C, D, H, W) for a volume or clip)"
        )
    return ModelInputs(args, kwargs, tuple(found))


FLOAT_NAMES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
}


def activation_dtype(model: nn.Module, inputs: ModelInputs) -> torch.dtype:
    """The first floating input tensor's dtype, else the model's first floating
    parameter's, else float32."""
    for leaf in inputs.leaves:
        if leaf.dtype is not None and leaf.dtype.is_floating_point:
            return leaf.dtype
    for tensor in model.parameters():
        if tensor.dtype.is_floating_point:
            return tensor.dtype
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    if dtype not in FLOAT_NAMES:
        raise ArgumentError(
            f"activations of dtype {dtype} are not supported; use one of "
            f"{', '.join(FLOAT_NAMES.values())}"
        )
    return FLOAT_NAMES[dtype]
