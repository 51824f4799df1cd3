"""The training loop every lab shares: a run folder, seeded per-epoch order, atomic
per-epoch checkpoints, bit-identical resume, Ctrl-C that loses at most the current epoch,
metrics, Rich progress and DDP.

A lab hands ``fit`` a ``Recipe``: its model and optimizer, a ``step`` that computes the
loss of one batch of training indices, an ``evaluate`` that returns the epoch's metrics,
and hooks for its log line, plots and summary. The batch order of epoch e is a function of
(seed, e) alone, so a resumed run draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.runtime import files
from convlens.labs.runtime.distributed import (
    DEVICES,
    SINGLE,
    Dist,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    detect_distributed,
    init_distributed,
    pick_device,
    wrap_model,
)

# (net, training indices of this process's slice (B/W,), epoch) → (mean loss, sums to add up
# over the epoch, e.g. {"correct": n}); the runtime does zero_grad, backward and the step.
StepFn = Callable[[nn.Module, torch.Tensor, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]
# net → sums to add up over the epoch, called between backward and the optimizer step: it
# sees this step's gradients (e.g. their norms per layer) and may change them (clipping).
AfterBackwardFn = Callable[[nn.Module], dict[str, torch.Tensor]]


@dataclass
class Position:
    """Where training stands: ``step`` steps of ``epoch`` (0-based) are done."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0  # sum of this epoch's step losses so far (float64)
    seconds: float = 0.0  # training time spent in this epoch so far
    sums: dict[str, float] = field(default_factory=dict)  # the step's other sums so far


def epoch_generator(seed: int, epoch: int, *stream: int) -> torch.Generator:
    """A generator seeded from (seed, epoch[, stream]) alone, so a resumed run draws the same."""
    entropy = [seed, epoch, *stream]
    state = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(state)


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of training images in ``epoch``: a function of (seed, epoch) only."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


def epoch_flips(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Which training images are mirrored in ``epoch`` (bool (n,)): a function of (seed, epoch)."""
    return torch.rand(n, generator=epoch_generator(seed, epoch, 1)) < 0.5


SCHEDULES = ("constant", "cosine", "onecycle")


def scheduled_rate(schedule: str, lr: float, step: int, total: int, warmup: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``.

    constant; cosine from ``lr`` to 0; onecycle: linear from lr/p up to ``lr`` over the
    first p = ``warmup`` · ``total`` steps, then linearly down towards 0 (the last step
    gets lr / (total − p + 1)). A pure function of the
    step, so a resumed run sets exactly the rate it would have had.
    """
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
    if schedule == "onecycle":
        peak = max(1, round(warmup * total))
        if step < peak:
            return lr * (step + 1) / peak
        return lr * (total - step) / (total - peak + 1)  # peak − 1 was the top
    return lr


class StopFlag:
    """Ctrl-C asks to stop at the next consistent point (after a whole optimizer step).

    The first Ctrl-C restores Python's handler, so a second one interrupts at once; the
    last checkpoint on disk is then still whole (checkpoints are written atomically).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    @contextlib.contextmanager
    def installed(self, enabled: bool) -> Iterator[StopFlag]:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle) if enabled else None
        except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
            self._previous = None
        try:
            yield self
        finally:
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)


def _after_step(position: Position) -> None:
    """Hook called after every optimizer step (tests replace it to simulate Ctrl-C)."""


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step_fn: StepFn,
    order: torch.Tensor,  # (N,) permutation of the training images
    batch_size: int,
    position: Position,
    dist: Dist = SINGLE,
    stop: StopFlag | None = None,
    progress: Any = None,
    task: Any = None,
    lr_at: Callable[[int], float] | None = None,  # step of this epoch → learning rate
    train_mode: Callable[[nn.Module], Any] | None = None,
    after_backward: AfterBackwardFn | None = None,
) -> Position:
    """Train from ``position`` to the end of the epoch (or until ``stop`` is requested).

    Step s uses images ``order[s*B:(s+1)*B]``; this process takes its slice
    ``[rank*B/W, (rank+1)*B/W)`` of them. An incomplete last batch is dropped (each
    epoch has a new order, so every image is seen). DDP averages gradients over
    processes, i.e. the global-batch mean.
    """
    (train_mode or nn.Module.train)(model)
    steps = len(order) // batch_size
    local = batch_size // dist.world_size
    loss_sum = torch.tensor(position.loss_sum, dtype=torch.float64)
    sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in position.sums.items()}
    started = time.perf_counter()
    step = position.step
    while step < steps and not (stop and stop.requested):
        start = step * batch_size + dist.rank * local
        index = order[start : start + local]  # (B/W,)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        loss, extra = step_fn(model, index, position.epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            extra = {**extra, **after_backward(model)}
        optimizer.step()
        loss_sum += loss.detach().double().cpu()
        for key, value in extra.items():
            sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64)) + value.double().cpu()
        step += 1
        if progress is not None and (step % 10 == 0 or step == steps):
            elapsed = time.perf_counter() - started
            speed = (step - position.step) * batch_size / max(elapsed, 1e-9)
            progress.update(task, completed=step, loss=loss.item(), speed=speed)
        _after_step(Position(position.epoch, step, float(loss_sum), 0.0))
    return Position(
        position.epoch,
        step,
        float(loss_sum),
        position.seconds + time.perf_counter() - started,
        {k: float(v) for k, v in sums.items()},
    )


def make_progress(console: Any, enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:>6.0f} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def default_console() -> Any:
    from convlens.cli.console import stderr

    return stderr


# -----------------------------------------------------------------------------
# a run


@dataclass
class RunResult:
    """What ``fit`` returns; ``interrupted`` is True when Ctrl-C stopped it."""

    out: Path
    config: Any
    metrics: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    position: Position = field(default_factory=Position)
    train_seconds: float = 0.0
    model: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the lab adds (a palette)

    @property
    def final(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}

    @property
    def finished(self) -> bool:
        return not self.interrupted and len(self.metrics) >= self.config.epochs


@dataclass(frozen=True)
class LabInfo:
    """How a lab names itself in messages and which config fields a resume may change."""

    name: str  # the command group: convlens lab NAME train --resume RUN
    what: str  # "a colourization run folder"
    may_change: frozenset[str] = frozenset({"data", "epochs", "device", "threads", "out"})

    def resume_command(self, out: Path) -> str:
        return f"convlens lab {self.name} train --resume {out}"

    def run_checkpoint(self, out: Path, epochs: int, finished: bool) -> dict[str, Any]:
        """The checkpoint of run ``out``, read once; with ``finished``, refused as
        ``finished_checkpoint`` refuses it (a run to evaluate must have finished)."""
        if finished:
            return self.finished_checkpoint(out, epochs)
        return files.load_checkpoint(out / files.CHECKPOINT)

    def finished_checkpoint(self, out: Path, epochs: int) -> dict[str, Any]:
        """The checkpoint of run ``out``, refused if it holds fewer than ``epochs``:
        evaluating a run that stopped early would print an unfinished model's numbers as
        the run's."""
        checkpoint = files.load_checkpoint(out / files.CHECKPOINT)
        done = Position(**checkpoint["position"]).epoch
        if done < epochs:
            raise ArgumentError(
                f"{out}: the run stopped after {done} of {epochs} epochs; "
                f"finish it with {self.resume_command(out)}"
            )
        return checkpoint


def scheduled_lab(lab: LabInfo, schedule: str) -> tuple[LabInfo, str]:
    """Under a schedule other than ``constant`` the epochs fix every step's rate, so a
    resume may not change them: the lab without ``epochs`` in ``may_change``, and the note
    ``open_run`` adds to its refusal."""
    if schedule == "constant":
        return lab, ""
    changed = dataclasses.replace(lab, may_change=lab.may_change - {"epochs"})
    return changed, f" (not epochs, which fix the {schedule} schedule)"


@dataclass(frozen=True)
class Opened:
    """A run folder checked and ready: where it runs, and its checkpoint when resuming."""

    dist: Dist
    device: torch.device
    checkpoint: dict[str, Any] | None


def check_common(cfg: Any) -> None:
    """The checks every lab's config needs (fields epochs, batch_size, lr, device, threads)."""
    if cfg.device not in DEVICES:
        raise ArgumentError(f"--device: '{cfg.device}' is not one of {', '.join(DEVICES)}.")
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            flag = name.replace("_", "-")
            raise ArgumentError(f"--{flag} must be at least 1 (got {getattr(cfg, name)}).")
    if cfg.threads < 0:
        raise ArgumentError(
            f"--threads must be 0 (torch's default) or a positive count (got {cfg.threads})."
        )
    if not cfg.lr > 0:
        raise ArgumentError(f"--lr must be positive (got {cfg.lr}).")


def open_run(cfg: Any, lab: LabInfo, resume: bool, note: str = "") -> Opened:
    """Decide, before anything is written, whether this is a new run or a continued one.

    Without ``resume`` the folder must not hold a run already (nothing is overwritten by
    accident); with it, the saved configuration must agree except in ``lab.may_change``.
    Every rank checks before rank 0 writes anything.
    """
    out = Path(cfg.out)
    dist = detect_distributed()
    device = pick_device(cfg.device, dist)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if dist.enabled and cfg.batch_size % dist.world_size:
        raise ArgumentError(
            f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
            f"({dist.world_size}): each process takes an equal slice of every global batch."
        )
    checkpoint = None
    if resume:
        saved = files.read_saved_config(out, lab.what, "--resume")
        wrong = files.config_differences(saved, cfg, lab.may_change)
        if wrong:
            raise ArgumentError(
                f"--resume: {out} was made with a different configuration ({'; '.join(wrong)}). "
                f"Only {', '.join(sorted(lab.may_change - {'out'}))} may change on resume"
                f"{note}; start a new run in another --out folder instead."
            )
        if (out / files.CHECKPOINT).exists():
            checkpoint = files.load_checkpoint(out / files.CHECKPOINT)
    elif (out / files.CONFIG).exists() or (out / files.CHECKPOINT).exists():
        raise ArgumentError(
            f"--out: {out} already holds a run. Continue it with --resume {out}, or choose "
            "another --out folder (nothing there is overwritten)."
        )
    return Opened(dist, device, checkpoint)


class _TensorBoard:
    """Event files when ``tensorboard`` is importable; otherwise does nothing."""

    def __init__(self, folder: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self.writer = SummaryWriter(str(folder / "tensorboard"))

    def log(self, row: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _no_hook(*args: Any) -> None:
    return None


@dataclass
class Recipe:
    """Everything a lab hands ``fit``. ``evaluate`` returns the epoch's metrics after
    ``train_loss`` (and the per-epoch sums of ``step`` and ``after_backward`` divided by
    the images seen, named in ``per_image``, or by the steps, named in ``per_step``);
    ``after_epoch`` and ``summary`` run on rank 0 only."""

    lab: LabInfo
    config: Any  # the lab's config dataclass: out, epochs, batch_size, seed, ...
    model: nn.Module  # on the device, not yet wrapped for DDP
    optimizer: torch.optim.Optimizer
    step: StepFn
    evaluate: Callable[[nn.Module, Dist], dict[str, float]]
    n_train: int
    describe: Callable[[Dist, torch.device], str]  # the first line, after "training MODEL: "
    epoch_line: Callable[[dict[str, float]], str]  # an epoch's numbers, between epoch and time
    lr_at: Callable[[int], float] | None = None  # global step → learning rate
    train_mode: Callable[[nn.Module], Any] | None = None  # e.g. keep frozen BatchNorm in eval
    per_image: dict[str, str] = field(default_factory=dict)  # step sum → metric (÷ images)
    after_backward: AfterBackwardFn | None = None  # its sums join the step's
    per_step: dict[str, str] = field(default_factory=dict)  # step sum → metric (÷ steps)
    files: dict[str, Callable[[Path], Any]] = field(default_factory=dict)  # written at start
    folders: tuple[str, ...] = ()
    after_epoch: Callable[[int, list[dict[str, float]]], Any] = _no_hook
    summary: Callable[[list[dict[str, float]], float], dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fit(
    recipe: Recipe,
    opened: Opened,
    console: Any = None,
    progress_bar: bool = True,
) -> RunResult:
    """Train ``recipe`` into its run folder from the start or from ``opened.checkpoint``.

    Returns the metrics; under torchrun every rank returns them, rank 0 alone writes
    files and prints.
    """
    cfg, lab, model, optimizer = recipe.config, recipe.lab, recipe.model, recipe.optimizer
    dist, device, checkpoint = opened.dist, opened.device, opened.checkpoint
    console = console or default_console()
    out = Path(cfg.out)
    init_distributed(dist, device)
    metrics: list[dict[str, float]] = []
    position = Position()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        position = Position(**checkpoint["position"])
        metrics = [dict(m) for m in checkpoint["metrics"]]
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    net = wrap_model(model, dist, device)
    config_dict = _asdict(cfg)

    barrier(dist)  # every rank has read what it needs before rank 0 writes anything
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        files.atomic_json(out / files.CONFIG, config_dict)
        for name, write in recipe.files.items():
            files.atomic_write(out / name, write)
        for folder in recipe.folders:
            (out / folder).mkdir(exist_ok=True)
    tensorboard = _TensorBoard(out, dist.is_main)

    def log(text: str) -> None:
        if dist.is_main:
            console.print(text, markup=False, highlight=False)

    where = f" at epoch {position.epoch + 1}, step {position.step}" if checkpoint else ""
    verb = "resuming" if checkpoint else "training"
    log(f"{verb} {getattr(cfg, 'model', lab.name)}{where}: {recipe.describe(dist, device)}")

    steps = recipe.n_train // cfg.batch_size
    stop = StopFlag()
    progress = make_progress(console, enabled=progress_bar and dist.is_main)
    saved: Position | None = position if checkpoint is not None else None  # last on disk
    killed = False
    try:
        with stop.installed(enabled=not dist.enabled), progress or contextlib.nullcontext():
            while position.epoch < cfg.epochs:
                epoch = position.epoch
                task = None
                if progress is not None:
                    task = progress.add_task(
                        f"epoch {epoch + 1}/{cfg.epochs}",
                        total=steps,
                        completed=position.step,
                        loss=float("nan"),
                        speed=0.0,
                    )
                lr_at = _epoch_rates(recipe.lr_at, epoch * steps)
                position = run_epoch(
                    net,
                    optimizer,
                    recipe.step,
                    epoch_permutation(cfg.seed, epoch, recipe.n_train),
                    cfg.batch_size,
                    position,
                    dist,
                    stop,
                    progress,
                    task,
                    lr_at,
                    recipe.train_mode,
                    recipe.after_backward,
                )
                if position.step < steps:  # stopped by Ctrl-C in the middle of the epoch
                    break
                broadcast_buffers(model, dist)
                keys = [*recipe.per_image, *recipe.per_step]
                reduced = all_reduce_sum(
                    [position.loss_sum, *(position.sums.get(k, 0.0) for k in keys)], dist, device
                )
                images, step_count = steps * cfg.batch_size, steps * dist.world_size
                sums = dict(zip(keys, reduced[1:], strict=True))
                row: dict[str, float] = {
                    "epoch": epoch + 1,
                    "train_loss": reduced[0] / step_count,
                    **{metric: sums[k] / images for k, metric in recipe.per_image.items()},
                    **{metric: sums[k] / step_count for k, metric in recipe.per_step.items()},
                    **recipe.evaluate(model, dist),
                    "epoch_seconds": position.seconds,
                    "images_per_second": images / max(position.seconds, 1e-9),
                }
                metrics.append(row)
                position = Position(epoch + 1, 0, 0.0, 0.0)
                if progress is not None:
                    progress.remove_task(task)
                log(
                    f"epoch {epoch + 1:>3}/{cfg.epochs}  {recipe.epoch_line(row)}  "
                    f"{row['epoch_seconds']:.1f} s ({row['images_per_second']:.0f} img/s)"
                )
                if dist.is_main:
                    files.save_checkpoint(
                        out / files.CHECKPOINT, model, optimizer, position, metrics, config_dict
                    )
                    saved = position
                    files.write_metrics_csv(out / files.METRICS, metrics)
                    tensorboard.log(row)
                    recipe.after_epoch(epoch + 1, metrics)
                if stop.requested:
                    break
    except KeyboardInterrupt:  # a second Ctrl-C, or Ctrl-C under torchrun: stop at once
        killed = True
    tensorboard.close()

    interrupted = killed or position.epoch < cfg.epochs
    if killed:
        # The model may be half-way through a step: keep the last whole checkpoint.
        if saved is None:
            where = "no checkpoint was written yet (the run will start again)"
        else:
            where = (
                f"the checkpoint at epoch {saved.epoch + 1}, step {saved.step} in "
                f"{out / files.CHECKPOINT} is whole"
            )
        log(f"stopped at once; {where}. Resume with: {lab.resume_command(out)}")
        position = saved or Position()
        metrics = metrics[: position.epoch]
    elif interrupted and dist.is_main:
        # a consistent point: after a whole optimizer step (or at an epoch's end)
        files.save_checkpoint(
            out / files.CHECKPOINT, model, optimizer, position, metrics, config_dict
        )
        log(
            f"interrupted at epoch {position.epoch + 1}, step {position.step}/{steps}; "
            f"checkpoint saved to {out / files.CHECKPOINT}. Resume with: "
            f"{lab.resume_command(out)}"
        )
    train_seconds = sum(m["epoch_seconds"] for m in metrics)
    result = RunResult(
        out, cfg, metrics, interrupted, position, train_seconds, model, dict(recipe.extra)
    )
    if dist.is_main and not interrupted and recipe.summary is not None:
        files.atomic_json(out / files.SUMMARY, recipe.summary(metrics, train_seconds))
    if not killed:  # after a hard stop the other processes may be gone
        barrier(dist)
    return result


def _epoch_rates(lr_at: Callable[[int], float] | None, first: int) -> Callable[[int], float] | None:
    """Step of the epoch → rate, from global step → rate."""
    return None if lr_at is None else (lambda step: lr_at(first + step))


def _asdict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# -----------------------------------------------------------------------------
# finished runs: train, continue or just read them (sweeps and comparisons)


def run_or_reuse(
    cfg: Any,
    lab: LabInfo,
    train: Callable[..., RunResult],
    console: Any = None,
    progress_bar: bool = True,
) -> RunResult:
    """A finished run in ``cfg.out`` with this configuration is read, not retrained; an
    unfinished one is resumed; otherwise a new run is trained."""
    out = Path(cfg.out)
    if not (out / files.CONFIG).exists():
        return train(cfg, console=console, progress_bar=progress_bar)
    wrong = files.config_differences(files.read_saved_config(out, lab.what), cfg, lab.may_change)
    if wrong:
        raise ArgumentError(
            f"{out} already holds a run with a different configuration ({'; '.join(wrong)}); "
            "choose another --out folder."
        )
    if (out / files.SUMMARY).exists() and (out / files.METRICS).exists():
        metrics = files.read_metrics_csv(out / files.METRICS)
        if len(metrics) >= cfg.epochs:
            if console is not None and detect_distributed().is_main:
                console.print(f"reusing the finished run in {out}", markup=False)
            return RunResult(
                out,
                cfg,
                metrics,
                False,
                Position(cfg.epochs),
                sum(m["epoch_seconds"] for m in metrics),
            )
    return train(cfg, resume=True, console=console, progress_bar=progress_bar)
