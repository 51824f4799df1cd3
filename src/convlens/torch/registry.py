"""The one registry of PyTorch lowerings: for each layer kind, how PyTorch spells it.

A layer kind is its rule (``core/rules/<family>.py``, what the layer costs) plus its
lowering (``torch/lowering/<family>.py``, what it is in PyTorch), registered once each.
A lowering ties together, for one kind:

- the tracer handlers that turn PyTorch calls into rows of the kind (``traced_by``;
  each is registered for its PyTorch functions with ``@handles``);
- the module a description of the kind builds (``build``: the module a PyTorch user
  would write), which the tests run as the oracle;
- random configurations of the kind (``examples``), which the property tests draw and
  check against PyTorch.

The registry is outside the ``lowering`` package, as ``core/registry.py`` is outside
``core/rules``: every family imports it, and it imports the families only when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from torch import nn

    from convlens.torch.tracer import Tracer

Handler = Callable[["Tracer", tuple, dict], Any]
HANDLERS: dict[Any, Handler] = {}
# Handlers that find the batch wherever it is (``Tracer.batch_axis``): the others see only
# tensors whose batch is axis 0 (the tracer falls back to PyTorch's meta kernel otherwise).
ANY_LAYOUT: set[Handler] = set()


def handles(*funcs: Any, any_layout: bool = False) -> Callable[[Handler], Handler]:
    """Register a tracer handler for PyTorch functions; a second one for a function is a
    bug (which would win depends on import order), so it is refused."""

    def decorator(fn: Handler) -> Handler:
        for func in dict.fromkeys(funcs):  # F.conv2d is torch.conv2d: name it once
            if func in HANDLERS:
                raise RuntimeError(f"two trace handlers for {func}")
            HANDLERS[func] = fn
        if any_layout:
            ANY_LAYOUT.add(fn)
        return fn

    return decorator


# Stock modules whose forward is one call of a handled function: module type → how that
# call looks for a module and its input, ``(function, args, kwargs)`` exactly as the stock
# forward hands them to ``__torch_function__``, or None where the forward would do more
# than that one call (it then runs as written). The trace makes the call itself
# (``trace._module_calls``), which skips the module's Python and PyTorch's dispatch
# (``benchmarks/vs_forward.py``'s "dispatch floor"). ``tests/torch/test_module_calls.py``
# holds every entry to what PyTorch's own forward passes.
ModuleCall = Callable[[Any, Any], "tuple[Any, tuple, dict] | None"]
MODULE_CALLS: dict[type, ModuleCall] = {}


def calls(*module_types: type, how: ModuleCall) -> None:
    """Register how the stock ``module_types`` call their one function (exact types: a
    subclass may change its forward)."""
    for module_type in module_types:
        if module_type in MODULE_CALLS:
            raise RuntimeError(f"two module calls for {module_type.__name__}")
        MODULE_CALLS[module_type] = how


def arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    """A PyTorch call's argument, given by position or by name."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


T = TypeVar("T")


class Choices(Protocol):
    """The random choices an ``examples`` function makes. The property tests answer them
    with Hypothesis (which shrinks a failure to a small one); anything else can answer
    them with ``random.Random``: Hypothesis stays a test-only dependency."""

    def integer(self, low: int, high: int) -> int: ...

    def boolean(self) -> bool: ...

    def choice(self, options: Sequence[T]) -> T: ...


# (the kind's arguments, resolved by its rule's schema; the per-sample input shape) → module
Builder = Callable[[Mapping[str, Any], tuple], "nn.Module"]
# A random description (input line included) with at least one layer of the kind.
Examples = Callable[[Choices], str]


@dataclass(frozen=True)
class Lowering:
    """A layer kind in PyTorch: see the module docstring."""

    kind: str
    build: Builder
    examples: Examples
    traced_by: tuple[Handler, ...] = ()
    # The kinds of the rows a trace of the built module has (at least one of them): the
    # kind itself, unless PyTorch spells it with other operations (a depthwise convolution
    # is a grouped conv2d, an SE block five rows) or with none (nn.Identity: no row).
    traced_as: frozenset[str] = frozenset()


_LOWERINGS: dict[str, Lowering] = {}


def lowering(
    kind: str,
    *,
    build: Builder,
    examples: Examples,
    traced_by: Sequence[Handler] = (),
    traced_as: Sequence[str] | None = None,
) -> Lowering:
    """Register the lowering of ``kind`` (once: a duplicate is refused). ``traced_as``
    defaults to the kind itself."""
    if kind in _LOWERINGS:
        raise RuntimeError(f"a lowering for layer kind '{kind}' is already registered")
    if not traced_by and not traced_as:
        raise RuntimeError(f"the lowering of '{kind}' names no handler and no traced kinds")
    recorded = frozenset((kind,) if traced_as is None else traced_as)
    registered = _LOWERINGS[kind] = Lowering(kind, build, examples, tuple(traced_by), recorded)
    return registered


def _load() -> None:
    from convlens.torch import lowering  # noqa: F401  (registers every lowering)


def get_lowering(kind: str) -> Lowering:
    _load()
    try:
        return _LOWERINGS[kind]
    except KeyError:
        raise KeyError(f"no PyTorch lowering for layer kind '{kind}'") from None


def all_lowerings() -> Mapping[str, Lowering]:
    _load()
    return dict(_LOWERINGS)
