"""Training memory, measured against predicted: one real training step on the CPU beside
convlens's analysis of the same model, frozen the same way.

What a step holds is measured from the tensors themselves — the parameters, their ``.grad``,
everything in ``optimizer.state`` (Adam's per-parameter ``step`` tensors included) and the
activations autograd saves for backward (unique storages seen by ``saved_tensors_hooks``, the
model's own parameters and buffers left out) — and must equal ``analyze``'s figures to the
byte. The peak is measured from PyTorch's CPU allocator: under ``torch.profiler`` with
``profile_memory=True`` every allocation and free of a tensor storage is recorded with its
address, size and time, so the bytes held at every instant of the step are known exactly,
and at the peak they can be split into what is held there (see ``docs/labs/memory.md``).

Two steps run: the first creates the optimizer state, the second is every later step (the
state exists from its start, ``zero_grad`` has freed the gradients).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.profiler import record_function

from convlens.core.memory import TrainingMemory, training_memory
from convlens.errors import ArgumentError
from convlens.labs.runtime import finetune

OPTIMIZERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    # convlens's optimizer names (``analyze --optimizer``); the rates do not change memory
    "sgd": lambda params: torch.optim.SGD(params, lr=1e-3),
    "momentum": lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3),
}
PHASES = ("forward", "backward", "optimizer_step")
_MARK = "convlens::"  # record_function names: the phases, and one mark per saved storage
_SAVED = _MARK + "saved"
OTHER_OPS = 5  # operations listed under the peak's "other"


@dataclass(frozen=True)
class MemoryConfig:
    model: str  # zoo:NAME?arg=value or package.module:factory
    input: tuple[int, int, int]  # C, H, W of one sample
    batch: int = 2  # BatchNorm in training mode needs more than one value per channel
    train_only: tuple[str, ...] = ()  # globs over parameter names; () trains everything
    freeze_bn: bool = False  # BatchNorm layers whose parameters are frozen use running stats
    optimizer: str = "adam"
    seed: int = 0
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default


# -----------------------------------------------------------------------------
# one step, measured from its tensors


@dataclass
class _Step:
    """What one step left behind: the storages autograd saved (address → bytes, in the
    order it saved them) and the optimizer."""

    saved: dict[int, int] = field(default_factory=dict)
    optimizer: torch.optim.Optimizer | None = None


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the unique storages behind ``tensors``, as the allocator holds them."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def _owned(model: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}


def make_optimizer(model: nn.Module, name: str) -> torch.optim.Optimizer | None:
    """``name`` over the trainable parameters (None when nothing trains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS[name](params) if params else None


def _step(
    model: nn.Module, args: tuple, kwargs: dict, optimizer: torch.optim.Optimizer | None
) -> _Step:
    """Forward (autograd on), a loss summing every output (it saves nothing itself),
    backward, one optimizer step. Every phase is a ``record_function`` range and every newly
    saved storage a mark, so a profile can tell them apart."""
    owned = _owned(model)
    step = _Step(optimizer=optimizer)

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in owned and ptr not in step.saved and storage.nbytes() > 0:
            step.saved[ptr] = storage.nbytes()
            with record_function(_SAVED):  # when it was saved: it is alive from here
                pass
        return t

    with record_function(_MARK + "forward"):
        with saved_tensors_hooks(pack, lambda t: t):
            output = model(*args, **kwargs)
        losses = [t.float().sum() for t in _tensors(output) if t.requires_grad]
    if losses:  # nothing trains when no output depends on a trainable parameter
        with record_function(_MARK + "backward"):
            sum(losses).backward()  # type: ignore[union-attr]
        if optimizer is not None:
            with record_function(_MARK + "optimizer_step"):
                optimizer.step()
    del output, losses  # the step ends holding only gradients and optimizer state
    return step


def _optimizer_state(optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    states = optimizer.state.values() if optimizer is not None else []
    return [t for s in states for t in s.values() if isinstance(t, torch.Tensor)]


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in model.parameters() if p.grad is not None]


def _parts(model: nn.Module, step: _Step) -> TrainingMemory:
    return TrainingMemory(
        params=storage_bytes(model.parameters()),
        buffers=storage_bytes(model.buffers()),
        grads=storage_bytes(_grads(model)),
        optimizer=storage_bytes(_optimizer_state(step.optimizer)),
        saved_activations=sum(step.saved.values()),
    )


def training_step(
    model: nn.Module, *args: Any, optimizer: str = "adam", **kwargs: Any
) -> TrainingMemory:
    """What one real training step of ``model`` on ``args`` holds, by part (no profiler)."""
    step = _step(model, args, kwargs, make_optimizer(model, optimizer))
    return _parts(model, step)


# -----------------------------------------------------------------------------
# the allocator's view: a profile of one step


@dataclass(frozen=True)
class StepPeak:
    """Bytes the CPU allocator held during one step. ``start``: what the step began with
    (parameters, buffers, the input batch, and from the second step on the optimizer
    state); ``peak``: the most held at once, in ``phase``; ``at_peak``: what was held at
    that instant, by part (``other``: gradients of activations, the output and loss,
    temporaries of the operations), and the largest of ``other`` by operation; ``end``:
    what the step left (adds the gradients and, in the first, the optimizer state)."""

    start: int
    peak: int
    phase: str
    phase_peaks: dict[str, int]
    at_peak: dict[str, int]
    other_by_op: dict[str, int]  # the largest of ``other``, by the operation that made it
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "peak": self.peak,
            "peak_phase": self.phase,
            **{f"{name}_peak": value for name, value in self.phase_peaks.items()},
            "at_peak": dict(self.at_peak),
            "other_by_op": dict(self.other_by_op),
            "end": self.end,
        }


@dataclass(frozen=True)
class _Event:
    time: int  # ns, the profiler's clock
    ptr: int
    size: int  # bytes; negative for a free
    op: str  # the operation that allocated or freed it
    counter: int  # the allocator's own running total after it (tests hold ``held`` to it)


@dataclass(frozen=True)
class _Life:
    ptr: int
    size: int
    op: str
    begin: int  # index of its allocation event
    end: int  # index of its free event, or len(events) when still held at the end


def _is_allocator_call(name: str) -> bool:
    return name.startswith(("aten::empty", "[memory]"))


class _Timeline:
    """The allocations and frees of one profiled step in time order, the ``convlens::``
    ranges by name, and the bytes held after each event. The event tree
    (``kineto_results.experimental_event_tree``) is what ``torch.profiler``'s own memory
    timeline reads: each allocation event carries its address and size."""

    def __init__(self, profile: Any, start: int) -> None:
        self.events: list[_Event] = []
        self.marks: dict[str, list[tuple[int, int]]] = {}
        stack = [(e, "") for e in profile.profiler.kineto_results.experimental_event_tree()]
        while stack:
            event, op = stack.pop()
            if not _is_allocator_call(event.name):
                op = event.name  # name an allocation by the operation that asked for it
            stack.extend((child, op) for child in event.children)
            fields = event.extra_fields
            if hasattr(fields, "alloc_size"):
                if fields.device.type == "cpu":
                    self.events.append(
                        _Event(
                            event.start_time_ns,
                            fields.ptr,
                            fields.alloc_size,
                            op,
                            fields.total_allocated,
                        )
                    )
            elif event.name.startswith(_MARK):
                spans = self.marks.setdefault(event.name[len(_MARK) :], [])
                spans.append((event.start_time_ns, event.end_time_ns))
        self.events.sort(key=lambda e: e.time)  # stable: ties keep the tree's order
        for spans in self.marks.values():
            spans.sort()
        self.held = [start]  # held[i]: bytes after the first i events
        for e in self.events:
            self.held.append(self.held[-1] + e.size)
        self.lives: list[_Life] = []
        opened: dict[int, int] = {}
        for i, e in enumerate(self.events):
            if e.size > 0:
                opened[e.ptr] = i
            elif e.ptr in opened:  # frees of blocks older than the profile are left out
                self.lives.append(self._life(opened.pop(e.ptr), i))
        self.lives += [self._life(i, len(self.events)) for i in opened.values()]
        self._by_ptr: dict[int, list[_Life]] = {}
        for life in self.lives:
            self._by_ptr.setdefault(life.ptr, []).append(life)

    def _life(self, begin: int, end: int) -> _Life:
        e = self.events[begin]
        return _Life(e.ptr, e.size, e.op, begin, end)

    def phase_peak(self, phase: str) -> int:
        """The most held during ``phase`` (what it started with, if it allocated nothing)."""
        begin, end = self.marks.get(phase, [(0, -1)])[0]
        before = sum(1 for e in self.events if e.time < begin)
        inside = [self.held[i + 1] for i, e in enumerate(self.events) if begin <= e.time <= end]
        return max(inside, default=self.held[before])

    def phase_at(self, index: int) -> str:
        """The phase during which the first ``index`` events had happened."""
        if index == 0:
            return "start"
        when = self.events[index - 1].time
        for phase in PHASES:
            if any(begin <= when <= end for begin, end in self.marks.get(phase, [])):
                return phase
        return "between phases"

    def life(self, ptr: int, seen: int | None = None) -> _Life | None:
        """The allocation at ``ptr`` that was live at time ``seen`` (by default: the one
        still held at the end); None when it predates the profile."""
        n = len(self.events)
        for life in self._by_ptr.get(ptr, []):
            if seen is None:
                if life.end == n:
                    return life
            elif self.events[life.begin].time <= seen and (
                life.end == n or self.events[life.end].time >= seen
            ):
                return life
        return None


def _held_at(lives: Iterable[_Life | None], index: int) -> list[_Life]:
    """Those of ``lives`` held after the first ``index`` events."""
    return [life for life in lives if life is not None and life.begin < index <= life.end]


def _storage_lives(tensors: Iterable[torch.Tensor], timeline: _Timeline) -> list[_Life | None]:
    ptrs = {t.untyped_storage().data_ptr() for t in tensors}
    return [timeline.life(ptr) for ptr in ptrs]


def _step_peak(
    timeline: _Timeline,
    held_before: dict[str, int],
    step: _Step,
    grads: list[torch.Tensor],
    new_state: list[torch.Tensor],
) -> StepPeak:
    """The step's peak, and what was held there: ``held_before`` (held all along), the
    gradients and new optimizer state already made, the saved activations not yet freed,
    and the rest, by the operation that allocated it."""
    held = timeline.held
    index = max(range(len(held)), key=held.__getitem__)  # the first highest point
    saved_at = [begin for begin, _ in timeline.marks.get("saved", [])]
    parts = {
        "optimizer": _held_at(_storage_lives(new_state, timeline), index),
        "grads": _held_at(_storage_lives(grads, timeline), index),
        "saved_activations": _held_at(
            (timeline.life(ptr, seen=when) for ptr, when in zip(step.saved, saved_at, strict=True)),
            index,
        ),
    }
    at_peak = dict(held_before)
    for name, lives in parts.items():
        at_peak[name] = at_peak.get(name, 0) + sum(life.size for life in lives)
    at_peak["other"] = held[index] - sum(at_peak.values())
    known = {life.begin for lives in parts.values() for life in lives}
    other: dict[str, int] = {}
    for life in _held_at(timeline.lives, index):
        if life.begin not in known:
            other[life.op] = other.get(life.op, 0) + life.size
    return StepPeak(
        start=held[0],
        peak=held[index],
        phase=timeline.phase_at(index),
        phase_peaks={phase: timeline.phase_peak(phase) for phase in PHASES},
        at_peak=at_peak,
        other_by_op=dict(sorted(other.items(), key=lambda kv: -kv[1])[:OTHER_OPS]),
        end=held[-1],
    )


def _profiled(run: Callable[[], _Step], start: int) -> tuple[_Step, _Timeline]:
    """``run()`` under ``torch.profiler`` with ``profile_memory=True``; the cyclic garbage
    collector is paused so that nothing allocated before the profile is freed inside it
    (the allocator could not say its size)."""
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # no kineto start/stop lines on stderr
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step = run()
    finally:
        if was_enabled:
            gc.enable()
    return step, _Timeline(prof, start)


@dataclass(frozen=True)
class Measurement:
    """What the real steps held: by part (from the tensors, first step) and at the
    allocator's peak (both steps)."""

    memory: TrainingMemory
    input: int  # bytes of the input batch
    steps: tuple[StepPeak, ...]

    @property
    def peak(self) -> int:
        return max(s.peak for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.memory.to_dict(),
            "peak": self.peak,
            "input": self.input,
            "steps": [s.to_dict() for s in self.steps],
        }


def measure(model: nn.Module, inputs: Sequence[torch.Tensor], optimizer: str) -> Measurement:
    """Two real training steps of ``model`` (its modes and ``requires_grad`` as they are),
    each profiled: the first makes the optimizer state, the second is every later one."""
    args = tuple(inputs)
    opt = make_optimizer(model, optimizer)
    held = {
        "params_and_buffers": storage_bytes([*model.parameters(), *model.buffers()]),
        "input": storage_bytes(args),
    }
    first, timeline = _profiled(lambda: _step(model, args, {}, opt), sum(held.values()))
    memory = _parts(model, first)
    steps = [_step_peak(timeline, held, first, _grads(model), _optimizer_state(opt))]
    if opt is not None:
        opt.zero_grad(set_to_none=True)  # as every training loop does before its forward
    held["optimizer"] = memory.optimizer
    later, timeline = _profiled(lambda: _step(model, args, {}, opt), sum(held.values()))
    steps.append(_step_peak(timeline, held, later, _grads(model), []))
    return Measurement(memory=memory, input=held["input"], steps=tuple(steps))


# -----------------------------------------------------------------------------
# the lab: a model from a SPEC, frozen as asked, predicted and measured


@dataclass(frozen=True)
class MemoryComparison:
    config: MemoryConfig
    predicted: TrainingMemory
    measured: Measurement
    dtype: str
    params: int  # parameter count, all
    trainable_params: int
    eval_batchnorms: int  # BatchNorm layers in eval mode while the rest trains
    batchnorms: int  # BatchNorm layers in the model
    partial: tuple[str, ...]  # operations the analysis could not count (empty: complete)

    @property
    def equal(self) -> dict[str, bool]:
        parts = ("params", "grads", "optimizer", "saved_activations", "buffers", "total")
        return {p: getattr(self.predicted, p) == getattr(self.measured.memory, p) for p in parts}

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model,
            "input": [c.batch, *c.input],
            "dtype": self.dtype,
            "optimizer": c.optimizer,
            "train_only": list(c.train_only),
            "freeze_bn": c.freeze_bn,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "batchnorms": self.batchnorms,
            "eval_batchnorms": self.eval_batchnorms,
            "predicted": {**self.predicted.to_dict(), "partial": list(self.partial)},
            "measured": self.measured.to_dict(),
            "equal": self.equal,
        }


def build_model(spec: str, seed: int) -> nn.Module:
    """``zoo:NAME?arg=value`` or ``package.module:factory``, with real initial weights."""
    from convlens.api import is_model_reference, model_from_reference

    if not is_model_reference(spec):
        from convlens.zoo import list_models

        hint = f" (did you mean zoo:{spec}?)" if spec in list_models() else ""
        raise ArgumentError(f"SPEC '{spec}' is neither zoo:NAME nor package.module:factory{hint}.")
    torch.manual_seed(seed)
    model, _ = model_from_reference(spec, real=True)
    return model


def freeze(model: nn.Module, train_only: Sequence[str], freeze_bn: bool) -> list[str]:
    """Train only what ``train_only`` matches and, with ``freeze_bn``, keep the BatchNorm
    layers whose parameters are frozen in eval mode — as ``lab classify train`` does
    (``labs.runtime.finetune``). Puts the model in training mode; returns those layers."""
    if train_only:
        finetune.train_only(model, train_only)
    frozen_bn = finetune.frozen_batchnorms(model) if freeze_bn else []
    if freeze_bn and not frozen_bn:
        raise ArgumentError(
            "--freeze-bn keeps the BatchNorm layers whose parameters are frozen in eval mode, "
            "but every BatchNorm layer here trains (or there is none): freeze some with "
            "--train-only."
        )
    finetune.train_mode(frozen_bn)(model)
    return frozen_bn


def _analyze(model: nn.Module, shape: tuple[int, ...], optimizer: str) -> Any:
    import convlens

    return convlens.analyze(model, input_size=shape, optimizer=optimizer)


def predict(model: nn.Module, cfg: MemoryConfig) -> Any:
    """``analyze``'s report for one step of ``model`` as it is frozen and moded now; an input
    too small for the model's valid convolutions names a size that works."""
    from convlens.errors import ConvlensError

    shape = (cfg.batch, *cfg.input)
    try:
        return _analyze(model, shape, cfg.optimizer)
    except ConvlensError as err:
        works = _larger_input_that_works(model, cfg)
        if works is None:
            raise
        fails = (works[0], works[1] - 1, works[2] - 1)
        raise ArgumentError(
            f"--input {_shape_text(cfg.input)} is too small for {cfg.model}: {err}; "
            f"--input {_shape_text(works)} works ({_shape_text(fails)} does not)."
        ) from None


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _larger_input_that_works(model: nn.Module, cfg: MemoryConfig) -> tuple[int, int, int] | None:
    """The least growth g of both H and W for which the analysis traces, found by doubling
    g, then bisecting (a boundary: g works, g − 1 does not); None when even 32× fails."""
    from convlens.errors import ConvlensError

    c, h, w = cfg.input

    def traces(g: int) -> bool:
        try:
            _analyze(model, (1, c, h + g, w + g), cfg.optimizer)
            return True
        except ConvlensError:
            return False

    low, high = 0, 1
    while not traces(high):
        low, high = high, 2 * high
        if high > 32 * max(h, w):
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if traces(middle) else (middle, high)
    return (c, h + high, w + high)


def _available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _measure(model: nn.Module, x: torch.Tensor, optimizer: str) -> Measurement:
    """``measure``, with a model that fails on this input reported in one line."""
    try:
        return measure(model, [x], optimizer)
    except (RuntimeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ""
        if "more than 1 value per channel" in message:
            hint = (
                " (BatchNorm in training mode needs more than one value per channel: use "
                "--batch 2 or more, or --freeze-bn with --train-only)"
            )
        raise ArgumentError(
            f"the real training step of {_shape_text((x.shape[0], *x.shape[1:]))} through the "
            f"model failed: {message}{hint}"
        ) from None


def run(cfg: MemoryConfig) -> MemoryComparison:
    """Build the model, freeze it as asked, then ``compare``."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ArgumentError(f"--optimizer '{cfg.optimizer}' is not one of {', '.join(OPTIMIZERS)}.")
    if cfg.batch < 1:
        raise ArgumentError(f"--batch must be at least 1, got {cfg.batch}.")
    if cfg.threads < 0:
        raise ArgumentError(f"--threads must be 0 (torch's default) or more, got {cfg.threads}.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, cfg.seed)
    freeze(model, cfg.train_only, cfg.freeze_bn)
    return compare(model, cfg)


def compare(model: nn.Module, cfg: MemoryConfig) -> MemoryComparison:
    """Predict one step of ``model`` as it is now (``requires_grad``, each module's
    training flag) with ``analyze``, then run and measure it."""
    report = predict(model, cfg)
    need, available = int(report.totals.training_bytes), _available_bytes()
    if available is not None and need > available:
        raise ArgumentError(
            f"one training step of {cfg.model} at {_shape_text((cfg.batch, *cfg.input))} needs "
            f"at least {need:,} bytes (predicted) but {available:,} are available; use a "
            "smaller --batch or --input."
        )
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    generator = torch.Generator().manual_seed(cfg.seed)
    x = torch.rand((cfg.batch, *cfg.input), generator=generator).to(dtype)  # (N, C, H, W)
    measured = _measure(model, x, cfg.optimizer)
    batchnorms = [m for m in model.modules() if isinstance(m, finetune.BATCHNORMS)]
    return MemoryComparison(
        config=cfg,
        predicted=training_memory(report),
        measured=measured,
        dtype=str(dtype).removeprefix("torch."),
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        eval_batchnorms=sum(not m.training for m in batchnorms),
        batchnorms=len(batchnorms),
        partial=tuple(report.totals.unsupported),
    )
