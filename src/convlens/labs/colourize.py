"""Colourization lab: colourization as per-pixel classification on CIFAR-10.

From a grayscale 32 × 32 image predict, for every pixel, one of ``num_colours``
colours found by k-means over the training pixels (the University of Toronto
CSC321 "Colourization" assignment), with the zoo's ``colour_cnn`` (plain
encoder–decoder) or ``colour_unet`` (skip connections).

Reads like nanoGPT's ``train.py``: the config is the dataclass below, then one
section per stage. The whole data set lives in memory as tensors; a batch is an
index into them, drawn from a permutation seeded by ``(seed, epoch)``, so an
interrupted run resumes exactly where it stopped.

>>> from convlens.labs.colourize import ColourizeConfig, train
>>> result = train(ColourizeConfig(data="path/to/cifar10", model="colour_unet", out="runs/unet"))

Run under ``torchrun --nproc_per_node=N`` the same code trains with
DistributedDataParallel: each global batch of ``batch_size`` images is split
into ``N`` equal slices (one per process), rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError, DataError
from convlens.labs.cifar import load_cifar10

MODELS = ("colour_cnn", "colour_unet")
DEVICES = ("auto", "cpu", "cuda")
KMEANS_OVER = ("pixels", "colours")
LR_SCHEDULES = ("constant", "cosine")
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"
PALETTE = "palette.npy"
SUMMARY = "summary.json"
CURVES = "learning_curves.png"
GRID = "grid.png"

# -----------------------------------------------------------------------------
# config


@dataclass
class ColourizeConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    data: str  # parent of cifar-10-batches-py/ (or that folder itself)
    classes: str = "horse"  # names or numbers, comma-separated; "all" for every class
    model: str = "colour_cnn"  # colour_cnn | colour_unet (from convlens.zoo)
    kernel: int = 3
    num_filters: int = 32
    num_colours: int = 24
    epochs: int = 25
    batch_size: int = 100  # global batch: split evenly across processes under torchrun
    lr: float = 0.001
    seed: int = 0
    out: str = ""  # run folder; "" → runs/<model>-b<batch_size>-s<seed>
    palette: str | None = None  # a saved palette.npy to reuse instead of k-means
    device: str = "auto"  # auto | cpu | cuda
    # k-means weighting: every training pixel (the default), or every distinct colour once
    # (the course handout's "k-means clustering over colours": rare colours weigh as much
    # as common ones, so the palette spreads over the colour space)
    kmeans_over: str = "pixels"
    kmeans_pixels: int = 200_000  # seeded subsample of training pixels for k-means
    kmeans_iters: int = 25  # Lloyd iterations (fixed, no tolerance test: reproducible)
    flip: bool = False  # mirror each training image left-right with probability ½ (augmentation)
    lr_schedule: str = "constant"  # constant | cosine (per step, from lr down to 0)
    grid_every: int = 5  # write an image grid every this many epochs (and at the end)
    grid_images: int = 8  # the first this-many validation images, always the same
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/{self.model}-b{self.batch_size}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# A resumed run may change these (where the data lives, how long, on what); anything else
# would make it a different experiment.
RESUMABLE_CHANGES = frozenset({"data", "epochs", "device", "threads", "out"})


def check_config(cfg: ColourizeConfig) -> None:
    """Argument checks that need no data (the batch size is checked against the data later)."""
    if cfg.model not in MODELS:
        raise ArgumentError(f"--model: unknown model '{cfg.model}'; choose {' or '.join(MODELS)}.")
    if cfg.device not in DEVICES:
        raise ArgumentError(f"--device: '{cfg.device}' is not one of {', '.join(DEVICES)}.")
    if cfg.kmeans_over not in KMEANS_OVER:
        raise ArgumentError(
            f"--kmeans-over: '{cfg.kmeans_over}' is not one of {', '.join(KMEANS_OVER)}."
        )
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ArgumentError(
            f"--lr-schedule: '{cfg.lr_schedule}' is not one of {', '.join(LR_SCHEDULES)}."
        )
    for name in ("epochs", "batch_size", "num_colours", "num_filters", "kernel", "grid_every"):
        if getattr(cfg, name) < 1:
            flag = name.replace("_", "-")
            raise ArgumentError(f"--{flag} must be at least 1 (got {getattr(cfg, name)}).")
    if cfg.kernel % 2 == 0:
        raise ArgumentError(f"--kernel must be odd so the image keeps its size (got {cfg.kernel}).")
    if not cfg.lr > 0:
        raise ArgumentError(f"--lr must be positive (got {cfg.lr}).")


# -----------------------------------------------------------------------------
# distributed: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect_distributed() -> Dist:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    return Dist(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    )


def pick_device(preference: str, dist: Dist) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda: no CUDA device is available; use --device cpu or auto.")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank % torch.cuda.device_count())


def init_distributed(dist: Dist, device: torch.device) -> None:
    """gloo on the CPU, nccl on CUDA; a no-op for a single process."""
    import torch.distributed as tdist

    if dist.enabled and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def all_reduce_sum(values: list[float], dist: Dist, device: torch.device) -> list[float]:
    """Sum a few numbers over processes (float64, one collective)."""
    if not dist.enabled:
        return values
    import torch.distributed as tdist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    tdist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: nn.Module, dist: Dist) -> None:
    """Copy rank 0's BatchNorm running statistics to every rank (see ``wrap_model``)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for buffer in model.buffers():
        tdist.broadcast(buffer, src=0)


# -----------------------------------------------------------------------------
# data: CIFAR-10 → grayscale inputs (N, 1, 32, 32) in [0, 1] and RGB images (N, 32, 32, 3)


@dataclass(frozen=True)
class Data:
    train_rgb: np.ndarray  # (N, 32, 32, 3) float32 in [0, 1]
    val_rgb: np.ndarray  # (M, 32, 32, 3) float32 in [0, 1]
    label_names: list[str]


def load_data(cfg: ColourizeConfig) -> Data:
    train, val, names = load_cifar10(cfg.data, cfg.classes)
    return Data(
        train.images.astype(np.float32) / 255.0, val.images.astype(np.float32) / 255.0, names
    )


def grayscale(rgb: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) in [0, 1] → (N, 1, H, W): the mean of R, G and B."""
    return torch.from_numpy(rgb.mean(axis=-1, dtype=np.float32)).unsqueeze(1).contiguous()


# -----------------------------------------------------------------------------
# palette (k-means in RGB) and targets (nearest palette colour per pixel)


def kmeans_palette(
    pixels: np.ndarray, k: int, seed: int, sample: int = 200_000, iters: int = 25
) -> np.ndarray:
    """k colours (k, 3) float32 by k-means over ``pixels`` (P, 3), reproducible from ``seed``.

    A seeded subsample of at most ``sample`` pixels, k-means++ initialisation, then a
    fixed number of Lloyd iterations (no tolerance test, so the result does not depend
    on float noise near a threshold). An empty cluster is moved to the pixel farthest
    from its centre. The palette is sorted by (R, G, B) so equal runs give equal files.
    """
    rng = np.random.default_rng(seed)
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 3)
    if len(pixels) > sample:
        pixels = pixels[rng.choice(len(pixels), size=sample, replace=False)]
    # k-means++: each next centre drawn with probability ∝ D(x)², D = distance to nearest centre
    centres = np.empty((k, 3))
    centres[0] = pixels[rng.integers(len(pixels))]
    nearest = ((pixels - centres[0]) ** 2).sum(1)  # (P,)
    for j in range(1, k):
        total = nearest.sum()
        pick = (
            rng.choice(len(pixels), p=nearest / total) if total > 0 else rng.integers(len(pixels))
        )
        centres[j] = pixels[pick]
        nearest = np.minimum(nearest, ((pixels - centres[j]) ** 2).sum(1))
    for _ in range(iters):
        assign, dist2 = _nearest(pixels, centres)
        counts = np.bincount(assign, minlength=k)  # (k,)
        sums = np.zeros((k, 3))
        np.add.at(sums, assign, pixels)
        for j in np.flatnonzero(counts == 0):  # empty cluster → farthest pixel
            far = int(dist2.argmax())
            sums[j], counts[j], dist2[far] = pixels[far], 1, 0.0
        centres = sums / counts[:, None]
    order = np.lexsort(centres.T[::-1])  # sort by R, then G, then B
    return centres[order].astype(np.float32)


def distinct_colours(rgb: np.ndarray) -> np.ndarray:
    """Every distinct 8-bit colour among the pixels of ``rgb`` (…, 3) in [0, 1], once each."""
    levels = np.rint(np.asarray(rgb).reshape(-1, 3) * 255).astype(np.int64)  # (P, 3)
    codes = np.unique((levels[:, 0] << 16) | (levels[:, 1] << 8) | levels[:, 2])  # (U,)
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1) / 255.0


def make_palette(train_rgb: np.ndarray, cfg: ColourizeConfig) -> np.ndarray:
    """k-means palette over the training pixels or over their distinct colours."""
    points = train_rgb if cfg.kmeans_over == "pixels" else distinct_colours(train_rgb)
    return kmeans_palette(points, cfg.num_colours, cfg.seed, cfg.kmeans_pixels, cfg.kmeans_iters)


def _nearest(
    pixels: np.ndarray, centres: np.ndarray, chunk: int = 262_144
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre, in chunks of pixels.

    ‖p − c‖² = ‖p‖² − 2 p·c + ‖c‖²; ties go to the lower index (argmin).
    """
    assign = np.empty(len(pixels), dtype=np.int64)
    dist2 = np.empty(len(pixels), dtype=pixels.dtype)
    c2 = (centres**2).sum(1)  # (k,)
    for start in range(0, len(pixels), chunk):
        p = pixels[start : start + chunk]  # (B, 3)
        d = (p**2).sum(1, keepdims=True) - 2.0 * p @ centres.T + c2  # (B, k)
        assign[start : start + chunk] = d.argmin(1)
        dist2[start : start + chunk] = np.maximum(d.min(1), 0.0)
    return assign, dist2


def nearest_colour(rgb: np.ndarray, palette: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) → (N, H, W) int64 index of the nearest palette colour (Euclidean RGB)."""
    # float64 so that a pixel equal to a palette colour is assigned exactly to it
    assign, _ = _nearest(rgb.reshape(-1, 3).astype(np.float64), palette.astype(np.float64))
    return torch.from_numpy(assign.reshape(rgb.shape[:-1]))


def load_palette(path: str | Path, num_colours: int) -> np.ndarray:
    try:
        palette = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"--palette: {path} does not exist.") from None
    except Exception as err:
        raise DataError(f"--palette: {path} is not a NumPy .npy file ({err}).") from None
    if palette.ndim != 2 or palette.shape[1] != 3 or not np.issubdtype(palette.dtype, np.number):
        raise DataError(
            f"--palette: {path} must hold a (K, 3) array of RGB colours; got {palette.shape}."
        )
    if palette.shape[0] != num_colours:
        raise ArgumentError(
            f"--palette: {path} holds {palette.shape[0]} colours but --num-colours is "
            f"{num_colours}; pass --num-colours {palette.shape[0]} or another palette."
        )
    if palette.min() < 0 or palette.max() > 1:
        raise DataError(f"--palette: {path} must hold RGB colours in [0, 1].")
    return palette.astype(np.float32)


def decode(indices: torch.Tensor, palette: np.ndarray) -> np.ndarray:
    """(N, H, W) colour indices → (N, H, W, 3) RGB in [0, 1]."""
    return palette[indices.cpu().numpy()]


# -----------------------------------------------------------------------------
# model


def build_model(cfg: ColourizeConfig) -> nn.Module:
    from convlens.zoo import create_model

    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    return create_model(
        cfg.model,
        kernel=cfg.kernel,
        num_filters=cfg.num_filters,
        num_colours=cfg.num_colours,
        in_channels=1,
    )


def wrap_model(model: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """DDP under torchrun. BatchNorm: on CUDA SyncBatchNorm (statistics over the global
    batch, the same arithmetic as one process); on the CPU SyncBatchNorm is unavailable,
    so each process normalises its own slice and the running statistics are taken from
    rank 0 (DDP broadcasts them before every forward; ``broadcast_buffers`` after each epoch).
    """
    if not dist.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


# -----------------------------------------------------------------------------
# train loop


def _epoch_generator(seed: int, epoch: int, *stream: int) -> torch.Generator:
    """A generator seeded from (seed, epoch[, stream]) alone, so a resumed run draws the same."""
    entropy = [seed, epoch, *stream]
    state = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(state)


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of training images in ``epoch``: a function of (seed, epoch) only."""
    return torch.randperm(n, generator=_epoch_generator(seed, epoch))


def epoch_flips(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Which training images are mirrored in ``epoch`` (bool (n,)): a function of (seed, epoch)."""
    return torch.rand(n, generator=_epoch_generator(seed, epoch, 1)) < 0.5


def learning_rate(cfg: ColourizeConfig, step: int, total_steps: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    A pure function of the step, so a resumed run sets exactly the rate it would have had.
    """
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return cfg.lr


@dataclass
class Position:
    """Where training stands: ``step`` steps of ``epoch`` (0-based) are done."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0  # sum of this epoch's step losses so far (float64)
    seconds: float = 0.0  # training time spent in this epoch so far


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


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,  # (N, 1, 32, 32) on the device
    targets: torch.Tensor,  # (N, 32, 32) int64 on the device
    order: torch.Tensor,  # (N,) permutation of the training images
    batch_size: int,
    position: Position,
    dist: Dist = Dist(),
    stop: StopFlag | None = None,
    progress: Any = None,
    task: Any = None,
    flips: torch.Tensor | None = None,  # (N,) bool on the device: mirror these images
    lr_at: Callable[[int], float] | None = None,  # step of this epoch → learning rate
) -> Position:
    """Train from ``position`` to the end of the epoch (or until ``stop`` is requested).

    Step s uses images ``order[s*B:(s+1)*B]``; this process takes its slice
    ``[rank*B/W, (rank+1)*B/W)`` of them. An incomplete last batch is dropped (each
    epoch has a new order, so every image is seen). The loss is the mean over the
    slice's pixels; DDP averages gradients over processes, i.e. the global-batch mean.
    """
    model.train()
    steps = len(order) // batch_size
    local = batch_size // dist.world_size
    loss_sum = torch.tensor(position.loss_sum, dtype=torch.float64, device=inputs.device)
    started = time.perf_counter()
    step = position.step
    while step < steps and not (stop and stop.requested):
        start = step * batch_size + dist.rank * local
        index = order[start : start + local].to(inputs.device, non_blocking=True)  # (B/W,)
        x, y = inputs[index], targets[index]  # (B/W, 1, 32, 32), (B/W, 32, 32)
        if flips is not None:
            mirror = flips[index]  # (B/W,)
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
            y = torch.where(mirror[:, None, None], y.flip(-1), y)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        logits = model(x)  # (B/W, C, 32, 32)
        loss = F.cross_entropy(logits, y)  # mean over B/W × 32 × 32 pixels
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
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
    )


# -----------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    inputs: torch.Tensor,  # (M, 1, 32, 32)
    targets: torch.Tensor,  # (M, 32, 32)
    dist: Dist = Dist(),
    chunk: int = 500,
) -> tuple[float, float]:
    """(mean per-pixel cross-entropy, per-pixel accuracy) on the validation set.

    Under torchrun each process evaluates every W-th image (rank::W) and the sums are
    all-reduced, so every rank gets the same numbers over the whole validation set.
    """
    model.eval()
    mine = torch.arange(dist.rank, len(inputs), dist.world_size, device=inputs.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, len(mine), chunk):
        index = mine[start : start + chunk]
        logits = model(inputs[index])  # (b, C, 32, 32)
        loss_sum += F.cross_entropy(logits, targets[index], reduction="sum").double()
        correct += (logits.argmax(1) == targets[index]).sum().double()
    pixels = targets[0].numel() * len(inputs)
    total_loss, total_correct = all_reduce_sum(
        [float(loss_sum), float(correct)], dist, inputs.device
    )
    return total_loss / pixels, total_correct / pixels


def baseline_accuracy(
    train_targets: torch.Tensor, val_targets: torch.Tensor, k: int
) -> tuple[int, float]:
    """Always predict the colour most frequent among training pixels: (colour, val accuracy)."""
    majority = int(torch.bincount(train_targets.flatten(), minlength=k).argmax())
    return majority, float((val_targets == majority).double().mean())


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """(n, 1, 32, 32) → (n, 32, 32) most likely colour index."""
    model.eval()
    return model(inputs).argmax(1)


# -----------------------------------------------------------------------------
# checkpointing: every epoch, atomically (temp file + os.replace)


def atomic_write(path: Path, write: Any, suffix: str = "") -> None:
    """Write via ``write(tmp_path)`` to a temp file beside ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    write(tmp)
    os.replace(tmp, path)


def atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    position: Position,
    metrics: list[dict[str, float]],
    cfg: ColourizeConfig,
) -> None:
    state = {
        "format": 1,
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "position": dataclasses.asdict(position),
        "metrics": metrics,
        # Nothing in training draws from these today (the batch order comes from
        # (seed, epoch)); saved so a model with dropout would still resume exactly.
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path} is missing: nothing to resume.") from None
    except Exception as err:
        raise DataError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err})."
        ) from None


def read_saved_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise ArgumentError(
            f"--resume: {folder} holds no {CONFIG}; it is not a colourization run folder."
        ) from None
    except json.JSONDecodeError as err:
        raise DataError(f"{folder / CONFIG} is not valid JSON ({err}).") from None


def config_from_saved(saved: dict[str, Any], given: dict[str, Any]) -> ColourizeConfig:
    """A run's saved configuration with ``given`` laid over it (keys a newer or older
    version does not know are left out; missing ones take their defaults)."""
    known = {f.name for f in dataclasses.fields(ColourizeConfig)}
    return ColourizeConfig(**{**{k: v for k, v in saved.items() if k in known}, **given})


def config_differences(saved: dict[str, Any], cfg: ColourizeConfig) -> list[str]:
    """What differs between a run's saved configuration and ``cfg``, besides what may.

    A key the run did not save (an option added since) counts as its default. Under a
    learning-rate schedule the number of epochs fixes the schedule, so it may not change.
    """
    current = cfg.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(ColourizeConfig)}
    may_change = RESUMABLE_CHANGES - ({"epochs"} if cfg.lr_schedule != "constant" else set())
    return [
        f"{key}: run has {saved.get(key, defaults[key])!r}, asked for {current[key]!r}"
        for key in current
        if key not in may_change and saved.get(key, defaults[key]) != current[key]
    ]


def write_metrics_csv(path: Path, metrics: list[dict[str, float]]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(METRIC_FIELDS))
            writer.writeheader()
            for row in metrics:
                writer.writerow({k: _fmt(row[k]) for k in METRIC_FIELDS})

    atomic_write(path, write)


METRIC_FIELDS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "baseline_accuracy",
    "epoch_seconds",
    "images_per_second",
)


def _fmt(value: float) -> str:
    return (
        str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    )


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


# -----------------------------------------------------------------------------
# plots (matplotlib, Agg: no display needed)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(path: Path, runs: dict[str, list[dict[str, float]]], title: str = "") -> None:
    """Losses (left) and per-pixel validation accuracy with the baseline (right) per epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, metrics in runs.items():
        epochs = [m["epoch"] for m in metrics]
        prefix = f"{name} " if len(runs) > 1 else ""
        (line,) = ax_loss.plot(epochs, [m["val_loss"] for m in metrics], label=f"{prefix}val")
        ax_loss.plot(
            epochs,
            [m["train_loss"] for m in metrics],
            "--",
            color=line.get_color(),
            label=f"{prefix}train",
        )
        ax_acc.plot(
            epochs,
            [100 * m["val_accuracy"] for m in metrics],
            color=line.get_color(),
            label=f"{prefix}val accuracy",
        )
    first = next(iter(runs.values()))
    if first:
        ax_acc.axhline(
            100 * first[0]["baseline_accuracy"], color="grey", ls=":", label="most frequent colour"
        )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy per pixel", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="per-pixel accuracy (%)", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_grid(path: Path, rows: Sequence[tuple[str, np.ndarray]], title: str = "") -> None:
    """One row per (label, images (n, 32, 32, 3) or (n, 32, 32)) in [0, 1]."""
    plt = _pyplot()
    n = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.0 * n + 0.9, 1.0 * len(rows) + 0.3), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            image = np.clip(images[c], 0, 1)
            ax.imshow(
                image,
                cmap="gray" if image.ndim == 2 else None,
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    _save_figure(fig, path)


def _save_figure(fig: Any, path: Path) -> None:
    plt = _pyplot()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80), suffix=".png")
    plt.close(fig)


# -----------------------------------------------------------------------------
# the run: set-up, epochs, logging


@dataclass
class RunResult:
    """What ``train`` returns; ``interrupted`` is True when Ctrl-C stopped it."""

    out: Path
    config: ColourizeConfig
    metrics: list[dict[str, float]] = field(default_factory=list)
    palette: np.ndarray | None = None
    interrupted: bool = False
    position: Position = field(default_factory=Position)
    train_seconds: float = 0.0
    model: nn.Module | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}

    @property
    def finished(self) -> bool:
        return not self.interrupted and len(self.metrics) >= self.config.epochs

    def resume_command(self) -> str:
        return f"convlens lab colourize train --resume {self.out}"


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
            for key in ("train_loss", "val_loss", "val_accuracy", "baseline_accuracy"):
                self.writer.add_scalar(key, row[key], int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def train(
    cfg: ColourizeConfig,
    resume: bool = False,
    console: Any = None,
    progress_bar: bool = True,
) -> RunResult:
    """Train one run into ``cfg.out`` (or continue it with ``resume=True``).

    Without ``resume`` the folder must not hold a run already, so nothing written is
    ever overwritten by accident. Returns the metrics; under torchrun every rank
    returns them, rank 0 alone writes files and prints.
    """
    check_config(cfg)
    console = console or _console()
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

    # --- is this a new run or a continued one? (checked by every rank before anyone writes)
    checkpoint: dict[str, Any] | None = None
    if resume:
        saved = read_saved_config(out)
        wrong = config_differences(saved, cfg)
        if wrong:
            scheduled = cfg.lr_schedule != "constant"
            raise ArgumentError(
                f"--resume: {out} was made with a different configuration ({'; '.join(wrong)}). "
                f"Only {', '.join(sorted(RESUMABLE_CHANGES - {'out'}))} may change on resume"
                f"{' (not epochs, which fix the cosine schedule)' if scheduled else ''}; "
                "start a new run in another --out folder instead."
            )
        if (out / CHECKPOINT).exists():
            checkpoint = load_checkpoint(out / CHECKPOINT)
    elif (out / CONFIG).exists() or (out / CHECKPOINT).exists():
        raise ArgumentError(
            f"--out: {out} already holds a run. Continue it with --resume {out}, or choose "
            "another --out folder (nothing there is overwritten)."
        )

    # --- data, palette, targets
    data = load_data(cfg)
    n_train = len(data.train_rgb)
    if cfg.batch_size > n_train:
        raise ArgumentError(
            f"--batch-size {cfg.batch_size} is larger than the training set ({n_train} images "
            f"of class(es) {cfg.classes})."
        )
    if resume and (out / PALETTE).exists():
        palette = load_palette(out / PALETTE, cfg.num_colours)
    elif cfg.palette:
        palette = load_palette(cfg.palette, cfg.num_colours)
    else:
        palette = make_palette(data.train_rgb, cfg)
    train_x = grayscale(data.train_rgb).to(device)  # (N, 1, 32, 32)
    train_y = nearest_colour(data.train_rgb, palette).to(device)  # (N, 32, 32)
    val_x = grayscale(data.val_rgb).to(device)  # (M, 1, 32, 32)
    val_y = nearest_colour(data.val_rgb, palette).to(device)  # (M, 32, 32)
    majority, baseline = baseline_accuracy(train_y, val_y, cfg.num_colours)

    # --- model and optimizer (restored from the checkpoint when resuming)
    init_distributed(dist, device)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
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

    barrier(dist)  # every rank has read what it needs before rank 0 writes anything
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_text(out / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")
        atomic_write(out / PALETTE, lambda tmp: np.save(open(tmp, "wb"), palette))  # noqa: SIM115
        (out / "grids").mkdir(exist_ok=True)
    tensorboard = _TensorBoard(out, dist.is_main)

    def log(text: str) -> None:
        if dist.is_main:
            console.print(text, markup=False, highlight=False)

    if dist.is_main:
        verb = "resuming" if checkpoint else "training"
        where = f" at epoch {position.epoch + 1}, step {position.step}" if checkpoint else ""
        log(
            f"{verb} {cfg.model}{where}: {n_train} training / {len(val_x)} validation images "
            f"({cfg.classes}), {cfg.num_colours} colours, batch {cfg.batch_size}"
            f"{f' over {dist.world_size} processes' if dist.enabled else ''}, "
            f"{cfg.epochs} epochs, device {device}; baseline (always colour {majority}) "
            f"{100 * baseline:.1f}% → {out}"
        )

    # --- epochs
    steps = n_train // cfg.batch_size
    total_steps = steps * cfg.epochs
    stop = StopFlag()
    grid_index = torch.arange(min(cfg.grid_images, len(val_x)), device=device)
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
                order = epoch_permutation(cfg.seed, epoch, n_train)
                flips = epoch_flips(cfg.seed, epoch, n_train).to(device) if cfg.flip else None
                position = train_epoch(
                    net,
                    optimizer,
                    train_x,
                    train_y,
                    order,
                    cfg.batch_size,
                    position,
                    dist,
                    stop,
                    progress,
                    task,
                    flips,
                    lambda step, first=epoch * steps: learning_rate(cfg, first + step, total_steps),
                )
                if position.step < steps:  # stopped by Ctrl-C in the middle of the epoch
                    break
                broadcast_buffers(model, dist)
                train_loss = all_reduce_sum([position.loss_sum], dist, device)[0] / (
                    steps * dist.world_size
                )
                val_loss, val_acc = evaluate(model, val_x, val_y, dist)
                row = {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "baseline_accuracy": baseline,
                    "epoch_seconds": position.seconds,
                    "images_per_second": steps * cfg.batch_size / max(position.seconds, 1e-9),
                }
                metrics.append(row)
                position = Position(epoch + 1, 0, 0.0, 0.0)
                if progress is not None:
                    progress.remove_task(task)
                log(
                    f"epoch {epoch + 1:>3}/{cfg.epochs}  train loss {train_loss:.4f}  "
                    f"val loss {val_loss:.4f}  val acc {100 * val_acc:5.2f}%  "
                    f"baseline {100 * baseline:5.2f}%  {row['epoch_seconds']:.1f} s "
                    f"({row['images_per_second']:.0f} img/s)"
                )
                if dist.is_main:
                    save_checkpoint(out / CHECKPOINT, model, optimizer, position, metrics, cfg)
                    saved = position
                    write_metrics_csv(out / METRICS, metrics)
                    tensorboard.log(row)
                    plot_curves(out / CURVES, {cfg.model: metrics}, _title(cfg))
                    last = epoch + 1 == cfg.epochs
                    if (epoch + 1) % cfg.grid_every == 0 or last:
                        _write_grid(
                            out, model, val_x, val_y, grid_index, palette, data, epoch + 1, cfg
                        )
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
                f"{out / CHECKPOINT} is whole"
            )
        log(f"stopped at once; {where}. Resume with: convlens lab colourize train --resume {out}")
        position = saved or Position()
        metrics = metrics[: position.epoch]
    elif interrupted and dist.is_main:
        # a consistent point: after a whole optimizer step (or at an epoch's end)
        save_checkpoint(out / CHECKPOINT, model, optimizer, position, metrics, cfg)
        log(
            f"interrupted at epoch {position.epoch + 1}, step {position.step}/{steps}; "
            f"checkpoint saved to {out / CHECKPOINT}. Resume with: "
            f"convlens lab colourize train --resume {out}"
        )
    train_seconds = sum(m["epoch_seconds"] for m in metrics)
    result = RunResult(out, cfg, metrics, palette, interrupted, position, train_seconds, model)
    if dist.is_main and not interrupted:
        summary = {
            "model": cfg.model,
            "params": sum(p.numel() for p in model.parameters()),
            "epochs": len(metrics),
            "batch_size": cfg.batch_size,
            "processes": dist.world_size,
            "device": str(device),
            "train_seconds": train_seconds,
            **{k: metrics[-1][k] for k in ("train_loss", "val_loss", "val_accuracy")},
            "baseline_accuracy": baseline,
            "majority_colour": majority,
        }
        atomic_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if not killed:  # after a hard stop the other processes may be gone
        barrier(dist)
    return result


def _title(cfg: ColourizeConfig, model: bool = True) -> str:
    return (
        f"{f'{cfg.model}, ' if model else ''}{cfg.classes}, {cfg.num_colours} colours, "
        f"batch {cfg.batch_size}, {cfg.epochs} epochs, lr {cfg.lr}, seed {cfg.seed}"
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


def _write_grid(
    out: Path,
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    index: torch.Tensor,
    palette: np.ndarray,
    data: Data,
    epoch: int,
    cfg: ColourizeConfig,
) -> None:
    rows = grid_rows(model, val_x, val_y, index, palette, data)
    title = f"{cfg.model}, epoch {epoch}"
    plot_grid(out / "grids" / f"epoch_{epoch:03d}.png", rows, title)
    if epoch == cfg.epochs:
        plot_grid(out / GRID, rows, title)


def grid_rows(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    index: torch.Tensor,
    palette: np.ndarray,
    data: Data,
) -> list[tuple[str, np.ndarray]]:
    """Grayscale input, prediction, target (nearest palette colours), original image."""
    prediction = decode(predict(model, val_x[index]), palette)  # (n, 32, 32, 3)
    return [
        ("input", val_x[index, 0].cpu().numpy()),
        ("prediction", prediction),
        ("target", decode(val_y[index], palette)),
        ("original", data.val_rgb[index.cpu().numpy()]),
    ]


# -----------------------------------------------------------------------------
# finished runs: train, continue or just read them (used by sweep and compare)


def run_or_reuse(cfg: ColourizeConfig, console: Any = None, progress_bar: bool = True) -> RunResult:
    """A finished run in ``cfg.out`` with this configuration is read, not retrained; an
    unfinished one is resumed; otherwise a new run is trained."""
    out = Path(cfg.out)
    if not (out / CONFIG).exists():
        return train(cfg, console=console, progress_bar=progress_bar)
    wrong = config_differences(read_saved_config(out), cfg)
    if wrong:
        raise ArgumentError(
            f"{out} already holds a run with a different configuration ({'; '.join(wrong)}); "
            "choose another --out folder."
        )
    if (out / SUMMARY).exists() and (out / METRICS).exists():
        metrics = read_metrics_csv(out / METRICS)
        if len(metrics) >= cfg.epochs:
            if console is not None and detect_distributed().is_main:
                console.print(f"reusing the finished run in {out}", markup=False)
            metrics = metrics[: cfg.epochs] if len(metrics) == cfg.epochs else metrics
            return RunResult(
                out,
                cfg,
                metrics,
                np.load(out / PALETTE),
                False,
                Position(cfg.epochs),
                sum(m["epoch_seconds"] for m in metrics),
            )
    return train(cfg, resume=True, console=console, progress_bar=progress_bar)


# -----------------------------------------------------------------------------
# spread: how much a validation accuracy could move with other validation images


@dataclass(frozen=True)
class Spread:
    """A run's validation accuracy with its spread over the validation images."""

    out: Path
    model: str
    epochs: int
    images: int
    accuracy: float  # per-pixel accuracy over all validation images
    standard_error: float  # of the mean of the per-image accuracies
    low: float  # 95 % bootstrap percentile interval (images resampled)
    high: float


@torch.no_grad()
def per_image_accuracy(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 500
) -> torch.Tensor:
    """(M,) float64: the fraction of each validation image's pixels coloured right."""
    model.eval()
    parts = [
        (model(inputs[i : i + chunk]).argmax(1) == targets[i : i + chunk])
        .flatten(1)
        .double()
        .mean(1)
        for i in range(0, len(inputs), chunk)
    ]
    return torch.cat(parts)


def bootstrap_interval(
    values: np.ndarray, seed: int = 0, resamples: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` when they are drawn again with
    replacement (seeded, so the same run always prints the same interval)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def spread(folder: str | Path, data: str | None = None) -> Spread:
    """Validation accuracy of a finished run's final weights, with its standard error
    and a bootstrap interval over the validation images.

    Every image has the same number of pixels, so the mean of the per-image accuracies
    is the per-pixel accuracy ``train`` reports; their spread says how far another draw
    of as many validation images could move it (with 102 images, about ±2 points).
    """
    out = Path(folder)
    cfg = config_from_saved(read_saved_config(out), {} if data is None else {"data": data})
    checkpoint = load_checkpoint(out / CHECKPOINT)
    epochs = Position(**checkpoint["position"]).epoch
    if epochs < cfg.epochs:
        raise ArgumentError(
            f"{out}: the run stopped after {epochs} of {cfg.epochs} epochs; finish it with "
            f"convlens lab colourize train --resume {out}"
        )
    palette = load_palette(out / PALETTE, cfg.num_colours)
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])
    val_rgb = load_data(cfg).val_rgb
    accuracy = per_image_accuracy(model, grayscale(val_rgb), nearest_colour(val_rgb, palette))
    values = accuracy.numpy()
    standard_error = (
        float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    )
    low, high = bootstrap_interval(values)
    return Spread(
        out, cfg.model, epochs, len(values), float(values.mean()), standard_error, low, high
    )


def _require_finished(result: RunResult) -> None:
    if result.interrupted:
        raise KeyboardInterrupt


# -----------------------------------------------------------------------------
# sweep: one run per batch size → table (Markdown, CSV) and plot


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ArgumentError(
            f"--batch-sizes: '{text}' is not a comma-separated list of integers (e.g. 25,50,100)."
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise ArgumentError(f"--batch-sizes: '{text}' must list positive integers.")
    return sorted(set(sizes))


def sweep(
    base: ColourizeConfig,
    batch_sizes: Sequence[int],
    out: str | Path,
    console: Any = None,
    progress_bar: bool = True,
) -> list[dict[str, Any]]:
    """Train ``base`` once per batch size into ``out/batch_<B>``; write ``sweep.md``,
    ``sweep.csv`` and ``sweep.png`` into ``out``. Finished runs are reused."""
    out = Path(out)
    rows = []
    for size in batch_sizes:
        cfg = dataclasses.replace(
            base, batch_size=size, out=str(out / f"batch_{size}"), palette=None
        )
        result = run_or_reuse(cfg, console, progress_bar)
        _require_finished(result)
        rows.append(_table_row(result, batch_size=size))
    if detect_distributed().is_main:
        columns = [
            "batch_size",
            "epochs",
            "val_loss",
            "val_accuracy",
            "baseline_accuracy",
            "train_seconds",
            "run",
        ]
        _write_tables(
            out / "sweep",
            rows,
            columns,
            (
                f"Batch-size sweep: {base.model}, {base.classes}, {base.num_colours} colours, "
                f"{base.epochs} epochs, lr {base.lr}, seed {base.seed}"
            ),
        )
        plot_sweep(out / "sweep.png", rows, base)
    return rows


def _table_row(result: RunResult, **extra: Any) -> dict[str, Any]:
    final = result.final
    return {
        **extra,
        "model": result.config.model,
        "epochs": int(final["epoch"]),
        "train_loss": final["train_loss"],
        "val_loss": final["val_loss"],
        "val_accuracy": final["val_accuracy"],
        "baseline_accuracy": final["baseline_accuracy"],
        "train_seconds": result.train_seconds,
        "run": str(result.out),
    }


def _write_tables(stem: Path, rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(stem.with_suffix(".csv"), write_csv)
    atomic_text(stem.with_suffix(".md"), markdown_table(rows, columns, title))


HEADERS = {
    "batch_size": "batch size",
    "model": "model",
    "params": "parameters",
    "epochs": "epochs",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "val_accuracy": "val accuracy",
    "baseline_accuracy": "most-frequent-colour baseline",
    "train_seconds": "training time (s)",
    "run": "run folder",
    "images": "validation images",
    "standard_error": "standard error",
    "interval": "95 % bootstrap interval",
}


def markdown_table(rows: list[dict[str, Any]], columns: list[str], title: str = "") -> str:
    def cell(key: str, value: Any) -> str:
        if key.endswith("accuracy"):
            return f"{100 * value:.2f} %"
        if key.endswith("loss"):
            return f"{value:.4f}"
        if key == "train_seconds":
            return f"{value:.0f}"
        if key == "params":
            return f"{value:,}"
        if key == "standard_error":
            return f"{100 * value:.2f}"
        return f"`{value}`" if key == "run" else str(value)

    lines = [f"{title}\n"] if title else []
    lines.append("| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |")
    lines.append("|" + "|".join("---" if c in ("model", "run") else "---:" for c in columns) + "|")
    lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_sweep(path: Path, rows: list[dict[str, Any]], cfg: ColourizeConfig) -> None:
    plt = _pyplot()
    sizes = [r["batch_size"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax_loss.plot(sizes, [r["val_loss"] for r in rows], "o-")
    ax_acc.plot(sizes, [100 * r["val_accuracy"] for r in rows], "o-")
    ax_acc.axhline(
        100 * rows[0]["baseline_accuracy"], color="grey", ls=":", label="most frequent colour"
    )
    ax_loss.set(xscale="log", xlabel="batch size", ylabel="final val loss")
    ax_acc.set(xscale="log", xlabel="batch size", ylabel="final val accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.suptitle(f"{cfg.model}, {cfg.epochs} epochs, lr {cfg.lr}, seed {cfg.seed}", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


# -----------------------------------------------------------------------------
# compare: the CNN and the U-Net with identical settings


def compare(
    base: ColourizeConfig,
    out: str | Path,
    models: Sequence[str] = MODELS,
    console: Any = None,
    progress_bar: bool = True,
) -> list[dict[str, Any]]:
    """Train (or reuse) ``out/<model>`` for each model with ``base``'s settings; write
    ``compare.md``/``.csv``, ``compare_curves.png`` and ``compare_grid.png`` into ``out``.

    Both runs share one palette (the first run's k-means, or ``base.palette``), so their
    targets and accuracies are directly comparable.
    """
    out = Path(out)
    results = []
    palette_file = base.palette
    for name in models:
        cfg = dataclasses.replace(base, model=name, out=str(out / name), palette=palette_file)
        result = run_or_reuse(cfg, console, progress_bar)
        _require_finished(result)
        results.append(result)
        palette_file = palette_file or str(out / name / PALETTE)
    if not detect_distributed().is_main:
        return [_table_row(r) for r in results]
    rows = []
    for result in results:
        params = json.loads((result.out / SUMMARY).read_text())["params"]
        rows.append(_table_row(result, params=params))
    columns = [
        "model",
        "params",
        "epochs",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "baseline_accuracy",
        "train_seconds",
        "run",
    ]
    _write_tables(out / "compare", rows, columns, f"CNN vs U-Net: {_title(base, model=False)}")
    plot_curves(
        out / "compare_curves.png",
        {r.config.model: r.metrics for r in results},
        _title(base, model=False),
    )
    _compare_grid(out / "compare_grid.png", results, base)
    return rows


def _compare_grid(path: Path, results: list[RunResult], base: ColourizeConfig) -> None:
    """Input, each model's prediction, target and original for the same validation images."""
    data = load_data(base)
    palette = load_palette(results[0].out / PALETTE, base.num_colours)
    val_x = grayscale(data.val_rgb)
    val_y = nearest_colour(data.val_rgb, palette)
    index = torch.arange(min(base.grid_images, len(val_x)))
    rows: list[tuple[str, np.ndarray]] = [("input", val_x[index, 0].numpy())]
    for result in results:
        model = build_model(result.config)
        model.load_state_dict(load_checkpoint(result.out / CHECKPOINT)["model"])
        rows.append((result.config.model, decode(predict(model, val_x[index]), palette)))
    rows += [("target", decode(val_y[index], palette)), ("original", data.val_rgb[index.numpy()])]
    plot_grid(path, rows, f"validation images, {base.epochs} epochs, batch {base.batch_size}")


__all__ = [
    "ColourizeConfig",
    "RunResult",
    "Spread",
    "compare",
    "kmeans_palette",
    "nearest_colour",
    "spread",
    "sweep",
    "train",
]
