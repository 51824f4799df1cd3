"""Analysis time against one forward pass of the same model, in one process.

Issue 16 asks that analysing a model cost no more than running it once. On the small,
many-layered nets the forward is cheap and convlens's time per traced row shows, so
those are the models measured; ratios within one run are what to read (the machine is
shared), not absolute times. Every figure is a median over rounds that each time one call
of every measure, so a drift in the machine's speed hits them all alike. ``--clock cpu``
(the default) times the process's CPU time with one torch thread, which other jobs on the
cores disturb far less than the wall clock.

Two convlens figures: ``warm`` is a repeated analysis of the same model, whose layers' rule
results and receptive fields the process remembers (``core/memo.py``); ``new model`` clears
both memos before each call, as the first analysis of a model in a process that has
analysed others would run.

Where the warm time goes: ``tracing`` is ``trace()`` alone (the rest of the warm figure is
the analyser), and ``dispatch floor`` is what PyTorch itself charges for running the model
on a meta tensor that reports every operation — a tensor subclass whose
``__torch_function__`` does nothing but hand back its input, every module's forward
wrapped as the trace wraps it, and the stock modules the trace calls directly doing
nothing. No tracer of this design can be cheaper than that floor.

``skeleton tracer`` adds the least any tracer must do on top of the floor to produce a
report: every operation and every directly called stock module gets a fresh output tensor
(a meta tensor wrapping a template, as ``torch.shape_tensor.meta_tensor`` makes them) and
one row, and every row one ``LayerRecord``. It runs no rule and knows no shapes (each
output keeps its input's shape), names nothing and counts nothing: a lower bound on the
tracer plus the analyser, against which issue 16's time budget can be set.

    python benchmarks/vs_forward.py [--repeats 5] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any, ClassVar

import torch

import convlens
from convlens.core.frozen import quick
from convlens.core.memo import RF_RESULTS, RULE_RESULTS
from convlens.core.records import LayerRecord
from convlens.torch.registry import MODULE_CALLS
from convlens.torch.trace import trace
from convlens.torch.tracer import PASSTHROUGH
from convlens.zoo import create_model

MODELS = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "densenet121")
SIZE = (1, 3, 224, 224)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def interleaved(
    measures: dict[str, Callable[[Callable[[], float]], float]], repeats: int, clock: str
) -> dict[str, float]:
    """The median seconds of each measure, taken round-robin — one of each per round — so
    that a drift in the shared machine's speed (a third or more within minutes) hits all
    of them alike and their ratios hold. A measure is given the clock and returns the
    seconds of its timed part (set-up left out)."""
    now = CLOCKS[clock]
    times: dict[str, list[float]] = {key: [] for key in measures}
    for _ in range(repeats):
        for key, measure in measures.items():
            times[key].append(measure(now))
    return {key: statistics.median(values) for key, values in times.items()}


def timed(call: Callable[[], Any]) -> Callable[[Callable[[], float]], float]:
    def measure(now: Callable[[], float]) -> float:
        start = now()
        call()
        return now() - start

    return measure


def _first_of(cls: type, args: tuple, kwargs: dict | None) -> Any:
    """The first tensor of class ``cls`` among a call's arguments (in lists too)."""
    values = [*args, *(kwargs or {}).values()]
    flat = [v for a in values for v in (a if isinstance(a, list | tuple) else (a,))]
    return next(v for v in flat if isinstance(v, cls))


class _Reporting(torch.Tensor):
    """A meta tensor whose every operation reaches Python and does nothing: metadata reads
    answer as they are, anything else hands back the first such tensor among its inputs
    (lists of tensors and keyword arguments included)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in PASSTHROUGH:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        return _first_of(cls, args, kwargs)


def _wrapper(
    direct_result: Callable[[torch.nn.Module, Any], Any],
) -> Callable[[torch.nn.Module, Any], Any]:
    """Wraps a module's forward as the trace does: the module pushed on a stack while it
    runs, and a stock module the trace calls directly (``registry.MODULE_CALLS``) handing
    back ``direct_result(module, x)`` instead of running."""
    stack: list[torch.nn.Module] = []

    def wrapped(module: torch.nn.Module, forward: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            stack.append(module)
            try:
                return forward(*args, **kwargs)
            finally:
                stack.pop()

        def direct(x: Any) -> Any:
            stack.append(module)
            stack.pop()
            return direct_result(module, x)

        return direct if type(module) in MODULE_CALLS else call

    return wrapped


def dispatch_floor(model: torch.nn.Module) -> Callable[[Callable[[], float]], float]:
    """The model's forward on a ``_Reporting`` tensor, every module's forward wrapped as
    the trace wraps it (the module pushed on a stack while it runs), and the stock modules
    the trace calls directly (``registry.MODULE_CALLS``) handing back their input without
    running: what PyTorch charges for the module calls and the remaining operations."""
    x = torch.empty(SIZE, device="meta").as_subclass(_Reporting)
    modules = list({id(m): m for m in model.modules()}.values())
    wrapped = _wrapper(lambda module, x: x)

    def measure(now: Callable[[], float]) -> float:
        for module in modules:
            module.__dict__["forward"] = wrapped(module, module.forward)
        try:
            with torch.no_grad():
                start = now()
                model(x)
                return now() - start
        finally:
            for module in modules:
                del module.__dict__["forward"]

    return measure


class _Skeleton(torch.Tensor):
    """A meta tensor whose every operation (metadata reads apart) makes a fresh tensor of
    the first such input's shape and one row in ``_Skeleton.rows``."""

    rows: ClassVar[list[tuple[Any, tuple[int, ...]]]] = []
    templates: ClassVar[dict[tuple[int, ...], torch.Tensor]] = {}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in PASSTHROUGH:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        return _skeleton_row(func, _first_of(cls, args, kwargs))


def _skeleton_row(kind: Any, x: _Skeleton) -> _Skeleton:
    with torch._C.DisableTorchFunctionSubclass():
        shape = tuple(x.shape)
    template = _Skeleton.templates.get(shape)
    if template is None:
        template = _Skeleton.templates[shape] = torch.empty(shape, device="meta")
    out = torch.Tensor._make_subclass(_Skeleton, template)
    _Skeleton.rows.append((kind, shape))
    return out


_RECORD_FIELDS = dict.fromkeys(LayerRecord.__dataclass_fields__, 0)


def skeleton_tracer(model: torch.nn.Module) -> Callable[[Callable[[], float]], float]:
    """The floor's module calls (wrapping included, inside the clock as a trace sets it
    up), plus a fresh output tensor and a row per operation and a record per row."""
    modules = list({id(m): m for m in model.modules()}.values())
    wrapped = _wrapper(lambda module, x: _skeleton_row(type(module), x))

    def measure(now: Callable[[], float]) -> float:
        _Skeleton.rows = []
        start = now()
        for module in modules:
            module.__dict__["forward"] = wrapped(module, module.forward)
        try:
            x = torch.Tensor._make_subclass(_Skeleton, torch.empty(SIZE, device="meta"))
            with torch.no_grad():
                model(x)
        finally:
            for module in modules:
                del module.__dict__["forward"]
        records = [quick(LayerRecord, **_RECORD_FIELDS) for _ in _Skeleton.rows]
        seconds = now() - start
        assert len(records) == len(_Skeleton.rows) > 0
        return seconds

    return measure


def one_forward(model: torch.nn.Module) -> Callable[[Callable[[], float]], float]:
    x = torch.zeros(SIZE)

    def measure(now: Callable[[], float]) -> float:
        with torch.no_grad():
            start = now()
            model(x)
            return now() - start

    return measure


def new_model(model: torch.nn.Module) -> Callable[[Callable[[], float]], float]:
    """An analysis with both memos emptied first (outside the clock)."""

    def measure(now: Callable[[], float]) -> float:
        RULE_RESULTS.clear()
        RF_RESULTS.clear()
        start = now()
        convlens.analyze(model, input_size=SIZE)
        return now() - start

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.clock} time, median of {args.repeats} rounds (interleaved), 1 torch thread\n")
    print("| model (1×3×224×224) | rows | convlens warm | per row | of which tracing "
          "| dispatch floor | skeleton tracer | convlens, new model | one forward (no grad) "
          "| convlens / forward (warm, new model) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in MODELS:
        model = create_model(name).eval()
        rows = len(convlens.analyze(model, input_size=SIZE).layers)  # warm-ups, untimed
        with torch.no_grad():
            model(torch.zeros(SIZE))
        seconds = interleaved(
            {
                "warm": timed(lambda m=model: convlens.analyze(m, input_size=SIZE)),
                "tracing": timed(lambda m=model: trace(m, SIZE)),
                "floor": dispatch_floor(model),
                "skeleton": skeleton_tracer(model),
                "new": new_model(model),
                "forward": one_forward(model),
            },
            args.repeats,
            args.clock,
        )
        warm, new, forward = seconds["warm"], seconds["new"], seconds["forward"]
        print(f"| {name} | {rows} | {warm * 1e3:.1f} ms | {warm / rows * 1e6:.0f} µs | "
              f"{seconds['tracing'] * 1e3:.1f} ms | {seconds['floor'] * 1e3:.1f} ms | "
              f"{seconds['skeleton'] * 1e3:.1f} ms | "
              f"{new * 1e3:.1f} ms | {forward * 1e3:.1f} ms | "
              f"{warm / forward:.2f}, {new / forward:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
