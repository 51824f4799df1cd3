"""The public Python API: ``analyze``, ``explain`` and ``compare``.

``source`` may be a path to a ``.cnn`` file, description text, a ``Network``, an
``nn.Module``, ``"zoo:NAME?arg=value"`` or ``"package.module:factory"``. Symbols are
given as keyword arguments: ``analyze("colour.cnn", k=3, NF=32)``.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from convlens.core.analyze import Options, Report, analyze_network
from convlens.core.conventions import DTYPE_BYTES, OPTIMIZER_STATES, Convention
from convlens.core.records import Network, SampleShape
from convlens.errors import ArgumentError


@dataclass(frozen=True)
class AnalysisReport(Report):
    """A ``Report`` with the conveniences of the Python API: JSON, Markdown, a Jupyter table.

    They live here, not on the core's ``Report``, so the analysis core never imports the
    renderers."""

    @classmethod
    def of(cls, report: Report) -> AnalysisReport:
        return cls(**{f.name: getattr(report, f.name) for f in fields(report)})

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        from convlens.render.json import report_to_dict

        return report_to_dict(self, depth)

    def to_json(self, indent: int = 2, depth: int | None = None) -> str:
        from convlens.render.json import render_json

        return render_json(self, indent, depth)

    def to_markdown(self, depth: int | None = None) -> str:
        from convlens.render.markdown import render_markdown

        return render_markdown(self, depth)

    def _repr_html_(self) -> str:
        from convlens.render.html import render_html

        return render_html(self)


def is_module(source: Any) -> bool:
    """An ``nn.Module`` instance (checked without importing torch); not the class itself."""
    return (
        not isinstance(source, type)
        and hasattr(source, "named_modules")
        and hasattr(source, "forward")
    )


def is_model_reference(source: Any) -> bool:
    """``zoo:NAME…`` or ``package.module:attr`` (not a description file or text)."""
    if not isinstance(source, str) or "\n" in source:
        return False
    return source.startswith("zoo:") or (
        ":" in source and not source.endswith(".cnn") and not Path(source).exists()
    )


def _query_item(part: str) -> tuple[str, str]:
    """``arg=value`` → (arg, value); a bare ``flag`` → (flag, "true")."""
    key, equals, value = part.partition("=")
    return (key, value) if equals else (key, "true")


def model_from_reference(reference: str, real: bool = False) -> tuple[Any, tuple[int, ...] | None]:
    """``zoo:NAME?arg=value`` or ``package.module:attr`` → (module, default input or None)."""
    if reference.startswith("zoo:"):
        from convlens.zoo import create_model, get_entry
        from convlens.zoo.registry import coerce_arguments

        name, _, query = reference[4:].partition("?")
        raw = dict(_query_item(part) for part in query.split("&") if part)
        entry = get_entry(name)
        kwargs = coerce_arguments(name, raw)

        if real:  # a real forward needs real weights
            return create_model(name, **kwargs), tuple(entry.default_input)
        with uninitialised_weights():  # counting needs shapes, not values
            return create_model(name, **kwargs), tuple(entry.default_input)
    module_name, _, attr = reference.partition(":")
    module = _import_module(module_name, reference)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ArgumentError(
            f"module '{module_name}' has no attribute '{attr}' (from '{reference}')"
        ) from None
    if not is_module(obj):
        _check_callable_without_arguments(obj, reference)
        try:
            obj = obj()
        except Exception as err:
            raise ArgumentError(
                f"calling '{reference}' failed: {type(err).__name__}: {err}"
            ) from None
    if not is_module(obj):
        raise ArgumentError(f"'{reference}' is neither an nn.Module nor a factory returning one")
    return obj, None


def _import_module(module_name: str, reference: str) -> Any:
    """Import ``module_name`` with the current directory importable, as ``python -m`` does."""
    import importlib
    import os
    import sys

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.split(".")[0] == err.name.split(".")[0]:
            raise ArgumentError(
                f"cannot import module '{module_name}' (from '{reference}'): no "
                f"'{err.name}' in the current directory ({os.getcwd()}) or on the "
                "Python path; run convlens from the folder that holds it, or add that "
                "folder to PYTHONPATH"
            ) from None
        raise ArgumentError(
            f"cannot import module '{module_name}' (from '{reference}'): "
            f"{type(err).__name__}: {err}"
        ) from None
    except Exception as err:
        raise ArgumentError(
            f"cannot import module '{module_name}' (from '{reference}'): "
            f"{type(err).__name__}: {err}"
        ) from None


def _check_callable_without_arguments(obj: Any, reference: str) -> None:
    """A class or factory that needs arguments gets one sentence saying which, not a
    ``TypeError`` from deep inside; ``module:factory`` must be callable as ``factory()``."""
    import inspect

    if not callable(obj):
        raise ArgumentError(
            f"'{reference}' is a {type(obj).__name__}, neither an nn.Module nor a factory "
            "returning one"
        )
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature: just call them
        return
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        module_name, _, attr = reference.partition(":")
        what = "class" if isinstance(obj, type) else "function"
        raise ArgumentError(
            f"'{reference}' is a {what} that needs arguments ({', '.join(required)}) and "
            f"convlens calls it with none: give a function that builds the model, e.g. "
            f"'def make(): return {attr}(...)' in {module_name}, as {module_name}:make"
        )


@contextlib.contextmanager
def uninitialised_weights() -> Iterator[None]:
    """Build modules without running ``torch.nn.init`` (their weights stay uninitialised).

    Counting needs only shapes. Building under ``torch.device("meta")`` would do too, but
    its first use in a process imports ~500 modules (≈ 1 s, longer than the analysis);
    CPU memory that is allocated but never written costs nothing until touched.
    """
    from torch.nn import init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    for n in names:
        setattr(init, n, _keep)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)


def _keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


def trace_network(
    model: Any, inputs: Any, device: str = "meta", batch: int = 1
) -> tuple[Network, Mapping[str, Any], int, str]:
    """The traced ``Network``, the rule results the tracer already computed, the batch
    and the activations' dtype (see ``convlens.torch.inputs`` for what ``inputs`` may be)."""
    from convlens.torch.trace import trace

    result = trace(model, inputs, device=device, batch=batch)
    return result.network, result.costs, result.batch, result.dtype


def check_device(device: str) -> None:
    """Refuse a device this PyTorch cannot use before any model is built on it."""
    if device not in ("meta", "cpu", "cuda"):
        raise ArgumentError(f"--device must be meta, cpu or cuda; got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else "without a GPU here"
            raise ArgumentError(
                f"--device cuda: this PyTorch ({torch.__version__}) is {build}; use "
                "--device cpu for a real forward, or the default meta to trace by shape"
            )


def load_model(
    source: Any, inputs: Any = None, device: str = "meta", batch: int = 1
) -> tuple[Network, Mapping[str, Any], int, str]:
    """A traced model (``nn.Module``, ``zoo:NAME``, ``module:factory``), its costs, batch
    and dtype."""
    check_device(device)
    if is_model_reference(source):
        model, default = model_from_reference(source, real=device != "meta")
        if inputs is None and default is None:
            raise ArgumentError(f"'{source}' needs an input size, e.g. --input 3x224x224")
        if device == "cuda":
            model = model.to("cuda")
        network, costs, n, dtype = trace_network(
            model, inputs if inputs is not None else default, device, batch
        )
        return replace(network, name=source, source=source), costs, n, dtype
    if inputs is None:
        raise ArgumentError(
            "analysing an nn.Module needs input_size=(N, C, H, W) or input=a tensor"
        )
    return trace_network(source, inputs, device, batch)


def load_network(
    source: Any,
    bindings: dict[str, Any] | None = None,
    strict: bool = True,
    input_size: Any = None,
    device: str = "meta",
) -> Network:
    """A ``Network`` from a path, description text, an ``nn.Module``, ``zoo:NAME`` or
    ``package.module:factory``, or a ``Network`` itself."""
    from convlens.spec import parse_file, parse_text

    if isinstance(source, Network):
        return source
    if is_model_reference(source) or is_module(source):
        return load_model(source, input_size, device)[0]
    if isinstance(source, Path):
        return parse_file(source, bindings, strict)
    if isinstance(source, str):
        if "\n" in source or source.lstrip().startswith("input "):
            return parse_text(source, "<text>", "network", bindings, strict)
        return parse_file(source, bindings, strict)
    raise ArgumentError(
        f"cannot analyse a {type(source).__name__}: give a .cnn path, description text or a Network"
    )


_OTHER_FORMS = "(a signal takes two, C x L; a volume or clip four, C x D x H x W)"


def parse_shape(text: str, spatial_axes: tuple[int, ...] = (1, 2, 3)) -> tuple[int, ...]:
    """``3x224x224`` (or ``3×224×224``, as convlens prints shapes) → (3, 224, 224); one
    sample: ``1x16000`` a signal (C x L), ``3x16x112x112`` a clip (C x D x H x W)."""
    others = f" {_OTHER_FORMS}" if spatial_axes != (2,) else ""
    try:
        dims = tuple(int(p) for p in re.split("[x×,]", text.lower()))
    except ValueError:
        raise ArgumentError(
            f"--input must look like 3x224x224 (C x H x W), got {text!r}{others}"
        ) from None
    if len(dims) - 1 not in spatial_axes or any(d <= 0 for d in dims):
        raise ArgumentError(f"--input must be three positive sizes C x H x W, got {text!r}{others}")
    return SampleShape(dims)


def make_options(
    batch: Any = 1,
    dtype: str | None = "float32",
    optimizer: str = "adam",
    convention: str | Convention = Convention.FULL,
    frozen: tuple[str, ...] | list[str] = (),
    freeze_bn: bool = False,
) -> Options:
    dtype = dtype or "float32"
    if dtype not in DTYPE_BYTES:
        raise ArgumentError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if optimizer not in OPTIMIZER_STATES:
        raise ArgumentError(
            f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, got {optimizer!r}"
        )
    try:
        convention = Convention(convention)
    except ValueError:
        raise ArgumentError(
            f"convention must be one of {', '.join(c.value for c in Convention)}"
            f", got {convention!r}"
        ) from None
    if isinstance(batch, int) and batch <= 0:
        raise ArgumentError(f"batch must be positive, got {batch}")
    return Options(
        batch=batch,
        dtype=dtype,
        optimizer=optimizer,
        convention=convention,
        frozen=tuple(frozen),
        freeze_bn=freeze_bn,
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic-GC pass during an analysis (or the rendering of a large report): with
    torch imported, one full pass over its large heap costs ~0.1 s, as long as the whole
    analysis of a ResNet-50, and passes over a 100,000-layer report cost seconds. The
    records hold no cycles; collection resumes (as it was) afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyze(
    source: Any,
    input: Any = None,
    batch: int = 1,
    dtype: str | None = None,
    optimizer: str = "adam",
    convention: str = "full",
    frozen: tuple[str, ...] | list[str] = (),
    input_size: Any = None,
    device: str = "meta",
    freeze_bn: bool = False,
    **symbols: Any,
) -> AnalysisReport:
    """Analyse a description or a model: per-layer shapes, parameters, MACs/FLOPs,
    receptive field and memory.

    ``source``: a ``.cnn`` path or text, an ``nn.Module`` (with ``input_size=(N, C, H, W)``
    or ``input=`` a tensor), ``"zoo:NAME?arg=value"`` or ``"package.module:factory"``.
    Modules are traced by shape alone; ``device="cpu"`` or ``"cuda"`` runs a real forward
    instead (same records, each rule's shape checked against the result). ``dtype``: a
    model's own (its first floating input's, else its parameters') unless given.
    ``freeze_bn``: every BatchNorm stays in eval mode while the rest trains (its running
    statistics are used, so backward keeps no batch statistics).
    """
    options = {"optimizer": optimizer, "convention": convention, "frozen": frozen}
    with gc_paused():
        report = _analyze(
            source, input, batch, dtype, options, freeze_bn, input_size, device, symbols
        )
    return AnalysisReport.of(report)


def _analyze(
    source: Any,
    input: Any,
    batch: int,
    dtype: str | None,
    options: dict[str, Any],
    freeze_bn: bool,
    input_size: Any,
    device: str,
    symbols: dict[str, Any],
) -> Report:
    if is_module(source) or is_model_reference(source):
        given = input_size if input_size is not None else input
        if isinstance(given, str):
            given = parse_shape(given)
        network, costs, n, traced_dtype = load_model(source, given, device, batch)
        return analyze_network(
            network, make_options(n, dtype or traced_dtype, freeze_bn=freeze_bn, **options), costs
        )
    network = load_network(source, symbols)
    if input is not None:
        shape = parse_shape(input) if isinstance(input, str) else tuple(input)
        network = replace(network, input_shape=shape)
    return analyze_network(network, make_options(batch, dtype, freeze_bn=freeze_bn, **options))


def explain(
    source: Any, layer: int | str | None = None, what: str = "all", **kwargs: Any
) -> list[Any]:
    """The worked steps behind a layer's numbers (or the memory totals)."""
    from convlens.explain.derivation import derivation

    report = source if isinstance(source, Report) else analyze(source, **kwargs)
    return derivation(report, layer, what)


def compare(a: Any, b: Any, **kwargs: Any) -> Any:
    """Two designs side by side, with ratios of their totals."""
    from convlens.core.compare import compare_reports

    left = a if isinstance(a, Report) else analyze(a, **kwargs)
    right = b if isinstance(b, Report) else analyze(b, **kwargs)
    return compare_reports(left, right)
