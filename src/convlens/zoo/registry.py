"""The model registry: entries are data, filled by ``@register_model``.

Modelled on timm's ``_registry.py`` / ``_factory.py``: a factory function is
decorated once with its citation and the published figures it is checked
against; ``create_model`` validates keyword arguments against the factory's
signature and builds the module. Duplicate names are refused, as
``torch.utils.flop_counter.register_flop_formula`` refuses duplicate formulas.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from convlens.errors import ArgumentError

F = TypeVar("F", bound=Callable[..., Any])

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Citation:
    """Where an architecture was published."""

    authors: str
    title: str
    venue: str
    year: int
    label: str = ""  # how tables name the authors when surnames do not fit (a course)

    def short(self) -> str:
        """ "He et al.", "Simonyan & Zisserman", "LeCun et al." — for tables."""
        if self.label:
            return self.label
        names = [n.strip() for part in self.authors.split(",") for n in part.split(" and ")]
        surnames = [n.split()[-1] for n in names if n]
        if len(surnames) == 1:
            return surnames[0]
        if len(surnames) == 2:
            return f"{surnames[0]} & {surnames[1]}"
        return f"{surnames[0]} et al."

    def __str__(self) -> str:
        return f"{self.authors}. {self.title}. {self.venue}, {self.year}."


@dataclass(frozen=True)
class Argument:
    """One keyword argument of a factory: name, default and one-line help."""

    name: str
    default: Any
    help: str = ""


class Quantity(StrEnum):
    """What a published figure measures, so a test and ``zoo show`` can measure the rebuild."""

    PARAMS = "params"  # sum(p.numel() for p in model.parameters())
    MODULE_PARAMS = "module_params"  # the same, of the submodule named ``module``
    MACS = "macs"  # conv + linear multiply-accumulates at the default input
    FLOPS = "flops"  # 2 × MACS (the convention of Darknet and FlopCounterMode)
    OUTPUT_SIZE = "output_size"  # elements of the first output, batch excluded
    OUTPUT_DIM = "output_dim"  # dimension ``dim`` of the first output, batch excluded


@dataclass(frozen=True)
class PublishedFigure:
    """A figure from the paper (or torchvision) and how closely the rebuild must match it.

    ``rel_tolerance`` is 0 for an exact match; papers that round ("4.2 M") get
    the tolerance their rounding implies, and ``note`` says why. ``arguments``
    are the factory arguments under which the figure holds (e.g. auxiliary
    heads on); ``module`` and ``dim`` qualify ``MODULE_PARAMS`` and ``OUTPUT_DIM``.
    """

    value: float
    quantity: Quantity = Quantity.PARAMS
    rel_tolerance: float = 0.0
    note: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    module: str = ""
    dim: int = 0

    def matches(self, measured: float) -> bool:
        if self.rel_tolerance == 0:
            return measured == self.value
        return abs(measured - self.value) <= self.rel_tolerance * abs(self.value)


@dataclass(frozen=True)
class ModelEntry:
    """Everything the zoo knows about one architecture.

    ``default_input`` is (C, H, W): the input at which the published figures
    hold. ``exact_params`` is the rebuild's exact count at the default
    arguments (the tests check it). ``output_shapes`` lists the output shape(s)
    at ``default_input`` without the batch dimension, in the order the module
    returns them (a dict output lists its values in key order).
    """

    name: str
    factory: Callable[..., Any]
    citation: Citation
    default_input: Shape
    exact_params: int
    output_shapes: tuple[Shape, ...]
    published: Mapping[str, PublishedFigure] = field(default_factory=dict)
    notes: str = ""
    arguments: tuple[Argument, ...] = ()
    small_input: Shape = ()
    description: str | None = None

    @property
    def year(self) -> int:
        return self.citation.year

    def argument_defaults(self) -> dict[str, Any]:
        return {arg.name: arg.default for arg in self.arguments}


_REGISTRY: dict[str, ModelEntry] = {}


def _arguments_from_signature(
    factory: Callable[..., Any], helps: Mapping[str, str]
) -> tuple[Argument, ...]:
    arguments = []
    for param in inspect.signature(factory).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = None if param.default is param.empty else param.default
        arguments.append(Argument(param.name, default, helps.get(param.name, "")))
    unknown = set(helps) - {arg.name for arg in arguments}
    if unknown:
        raise ValueError(
            f"help given for unknown arguments {sorted(unknown)} of {factory.__name__}"
        )
    return tuple(arguments)


def register_model(
    name: str,
    *,
    citation: Citation,
    default_input: Shape,
    exact_params: int,
    output_shapes: tuple[Shape, ...],
    published: Mapping[str, PublishedFigure] | None = None,
    notes: str = "",
    argument_help: Mapping[str, str] | None = None,
    small_input: Shape | None = None,
    description: str | None = None,
) -> Callable[[F], F]:
    """Register a factory under ``name``; refuses a name already taken.

    ``small_input`` is a cheap input for real-forward tests where the default
    is expensive (``None``: the default input is cheap enough).
    """

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(
            name=name,
            factory=factory,
            citation=citation,
            default_input=tuple(default_input),
            exact_params=exact_params,
            output_shapes=tuple(tuple(s) for s in output_shapes),
            published=MappingProxyType(dict(published or {})),
            notes=" ".join(notes.split()),
            arguments=_arguments_from_signature(factory, argument_help or {}),
            small_input=tuple(small_input or default_input),
            description=description,
        )
        return factory

    return decorator


def _ensure_loaded() -> None:
    # The model modules register themselves on import.
    import convlens.zoo.models  # noqa: F401


def _natural_key(name: str) -> list[str | int]:
    # resnet18 < resnet34 < resnet101: digit runs compare as numbers.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, in natural order."""
    _ensure_loaded()
    names = [name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern)]
    return sorted(names, key=_natural_key)


def _unknown(name: str) -> ArgumentError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ArgumentError(
        f"unknown model '{name}'.{hint} Run 'convlens zoo list' to see the {len(_REGISTRY)} models."
    )


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; an ``ArgumentError`` suggests the closest name."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def _check_names(entry: ModelEntry, kwargs: Mapping[str, Any]) -> None:
    known = [arg.name for arg in entry.arguments]
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            accepted = ", ".join(known) if known else "none"
            raise ArgumentError(
                f"model '{entry.name}' has no argument '{key}'.{hint} "
                f"Its arguments are: {accepted}."
            )


def create_model(name: str, **kwargs: Any) -> Any:
    """Build the ``nn.Module`` registered as ``name`` with keyword arguments.

    Arguments are checked against the factory's signature first, so a typo
    gives a clear message instead of a ``TypeError`` deep inside a constructor.
    Building never downloads anything: there are no pretrained weights here.
    """
    entry = get_entry(name)
    _check_names(entry, kwargs)
    try:
        return entry.factory(**kwargs)
    except (ValueError, TypeError, RuntimeError) as err:  # RuntimeError: torch's own checks
        raise ArgumentError(f"cannot build model '{name}' with {kwargs}: {err}") from err


_KINDS = {bool: "true or false", int: "an integer", float: "a number", tuple: "integers a,b,c"}


def _coerce(text: str, default: Any) -> Any:
    """One textual value converted to the type of the argument's default."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, tuple):
        return tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    return text


def _check_size(name: str, key: str, text: str, value: Any, default: Any) -> None:
    """Every integer argument in the zoo is a size or a count (classes, channels, rates):
    refused here, before torch is asked for a tensor of negative size. Zero is a size only
    where the default itself is zero (``yolov2``'s ``passthrough_channels=0``: none)."""
    if isinstance(value, bool | float | str):
        return
    sizes = value if isinstance(value, tuple) else (value,)
    zero_allowed = 0 in (default if isinstance(default, tuple) else (default,))
    if any(v < 0 or (v == 0 and not zero_allowed) for v in sizes):
        least = "zero or more" if zero_allowed else "positive"
        raise ArgumentError(f"argument '{key}' of model '{name}' must be {least}, got {text!r}.")


def coerce_arguments(name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Text arguments (``zoo:NAME?num_classes=10``, ``--width_mult 0.5``) → typed kwargs.

    Each value takes the type of the factory argument's default: bool (true/false),
    int, float, or a tuple of ints written ``12,24,36``. Unknown names and bad
    values raise ``ArgumentError`` naming the argument.
    """
    entry = get_entry(name)
    defaults = entry.argument_defaults()
    typed: dict[str, Any] = {}
    for key, text in raw.items():
        _check_names(entry, {key: text})
        default = defaults[key]
        try:
            typed[key] = _coerce(text, default)
        except ValueError:
            kind = _KINDS.get(type(default), "a value")
            raise ArgumentError(
                f"argument '{key}' of model '{name}' takes {kind} (default {default!r}), "
                f"got {text!r}."
            ) from None
        _check_size(name, key, text, typed[key], default)
    return typed


@dataclass(frozen=True)
class CatalogRow:
    """One line of ``convlens zoo list``: what the list shows, without building anything."""

    name: str
    paper: str
    year: int
    params: int
    default_input: Shape


def catalog_rows() -> tuple[CatalogRow, ...]:
    """The rows of ``zoo list`` from the live registry (this imports the models, so torch).

    ``convlens.zoo.catalog`` keeps a copy so that listing needs no torch; a test checks the
    copy against this, and ``python -m convlens.zoo.catalog`` rewrites it.
    """
    rows = []
    for name in list_models():
        entry = get_entry(name)
        paper = f"{entry.citation.short()}: {entry.citation.title}"
        rows.append(CatalogRow(name, paper, entry.year, entry.exact_params, entry.default_input))
    return tuple(rows)
