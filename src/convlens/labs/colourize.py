"""Colourization lab: colourization as per-pixel classification on CIFAR-10.

From a grayscale 32 × 32 image predict, for every pixel, one of ``num_colours``
colours found by k-means over the training pixels (the University of Toronto
CSC321 "Colourization" assignment), with the zoo's ``colour_cnn`` (plain
encoder–decoder) or ``colour_unet`` (skip connections).

Reads like nanoGPT's ``train.py``: the config, then data, palette, model, step; the run
folder, seeded order, checkpoints, resume, Ctrl-C, metrics, plots and DDP come from
``convlens.labs.runtime``. The whole data set lives in memory as tensors.

>>> from convlens.labs.colourize import ColourizeConfig, train
>>> result = train(ColourizeConfig(data="path/to/cifar10", model="colour_unet", out="runs/unet"))

Run under ``torchrun --nproc_per_node=N`` the same code trains with
DistributedDataParallel: each global batch of ``batch_size`` images is split
into ``N`` equal slices (one per process), rank 0 alone writes files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.cifar import load_cifar10
from convlens.labs.palette import (
    decode,
    distinct_colours,
    kmeans_palette,
    load_palette,
    nearest_colour,
)
from convlens.labs.runtime import files, sweeps
from convlens.labs.runtime.distributed import SINGLE, Dist, detect_distributed
from convlens.labs.runtime.files import CHECKPOINT, SUMMARY, load_checkpoint
from convlens.labs.runtime.loop import (
    LabInfo,
    Position,
    Recipe,
    RunResult,
    check_common,
    epoch_flips,
    fit,
    open_run,
    scheduled_rate,
)
from convlens.labs.runtime.metrics import evaluate_classifier, per_image_accuracy, predict
from convlens.labs.runtime.plots import Panel, Series, plot_curves, plot_grid
from convlens.labs.runtime.stats import Spread, spread_of

MODELS = ("colour_cnn", "colour_unet")
KMEANS_OVER = ("pixels", "colours")
LR_SCHEDULES = ("constant", "cosine")
PALETTE = "palette.npy"
GRID = "grid.png"
LAB = LabInfo("colourize", "a colourization run folder")

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


def check_config(cfg: ColourizeConfig) -> None:
    """Argument checks that need no data (the batch size is checked against the data later)."""
    if cfg.model not in MODELS:
        raise ArgumentError(f"--model: unknown model '{cfg.model}'; choose {' or '.join(MODELS)}.")
    for flag, value, allowed in (
        ("--kmeans-over", cfg.kmeans_over, KMEANS_OVER),
        ("--lr-schedule", cfg.lr_schedule, LR_SCHEDULES),
    ):
        if value not in allowed:
            raise ArgumentError(f"{flag}: '{value}' is not one of {', '.join(allowed)}.")
    check_common(cfg)
    for name in ("num_colours", "num_filters", "kernel", "grid_every"):
        if getattr(cfg, name) < 1:
            flag = name.replace("_", "-")
            raise ArgumentError(f"--{flag} must be at least 1 (got {getattr(cfg, name)}).")
    if cfg.kernel % 2 == 0:
        raise ArgumentError(f"--kernel must be odd so the image keeps its size (got {cfg.kernel}).")


def config_from_saved(saved: dict[str, Any], given: dict[str, Any]) -> ColourizeConfig:
    return files.config_from_saved(ColourizeConfig, saved, given)


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


def make_palette(train_rgb: np.ndarray, cfg: ColourizeConfig) -> np.ndarray:
    """k-means palette over the training pixels or over their distinct colours."""
    points = train_rgb if cfg.kmeans_over == "pixels" else distinct_colours(train_rgb)
    return kmeans_palette(points, cfg.num_colours, cfg.seed, cfg.kmeans_pixels, cfg.kmeans_iters)


# -----------------------------------------------------------------------------
# model and step


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


def pixel_step(
    inputs: torch.Tensor,  # (N, 1, 32, 32) on the device
    targets: torch.Tensor,  # (N, 32, 32) int64 on the device
    flips: Callable[[int], torch.Tensor | None] = lambda epoch: None,  # epoch → (N,) bool
) -> Callable[[nn.Module, torch.Tensor, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The step: per-pixel cross-entropy of a batch, mirrored images mirrored with their
    targets; the loss is the mean over the slice's B/W × 32 × 32 pixels."""

    def step(model: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
        index = index.to(inputs.device, non_blocking=True)
        x, y = inputs[index], targets[index]  # (B/W, 1, 32, 32), (B/W, 32, 32)
        mirror = flips(epoch)
        if mirror is not None:
            m = mirror[index]  # (B/W,)
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
            y = torch.where(m[:, None, None], y.flip(-1), y)
        return F.cross_entropy(model(x), y), {}

    return step


def learning_rate(cfg: ColourizeConfig, step: int, total_steps: int) -> float:
    return scheduled_rate(cfg.lr_schedule, cfg.lr, step, total_steps)


# -----------------------------------------------------------------------------
# evaluation


def evaluate(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, dist: Dist = SINGLE
) -> tuple[float, float]:
    """(mean per-pixel cross-entropy, per-pixel accuracy) on the validation set."""
    return evaluate_classifier(model, inputs, targets, dist)


def baseline_accuracy(
    train_targets: torch.Tensor, val_targets: torch.Tensor, k: int
) -> tuple[int, float]:
    """Always predict the colour most frequent among training pixels: (colour, val accuracy)."""
    majority = int(torch.bincount(train_targets.flatten(), minlength=k).argmax())
    return majority, float((val_targets == majority).double().mean())


# -----------------------------------------------------------------------------
# the run


CURVES = (
    Panel(
        "loss",
        "cross-entropy per pixel",
        (Series("val_loss", "val"), Series("train_loss", "train", "--")),
    ),
    Panel(
        "validation accuracy",
        "per-pixel accuracy (%)",
        (Series("val_accuracy", "val accuracy"),),
        percent=True,
        baseline="baseline_accuracy",
        baseline_label="most frequent colour",
    ),
)


def _title(cfg: ColourizeConfig, model: bool = True) -> str:
    return (
        f"{f'{cfg.model}, ' if model else ''}{cfg.classes}, {cfg.num_colours} colours, "
        f"batch {cfg.batch_size}, {cfg.epochs} epochs, lr {cfg.lr}, seed {cfg.seed}"
    )


def train(
    cfg: ColourizeConfig, resume: bool = False, console: Any = None, progress_bar: bool = True
) -> RunResult:
    """Train one run into ``cfg.out`` (or continue it with ``resume=True``)."""
    check_config(cfg)
    scheduled = cfg.lr_schedule != "constant"  # the epochs fix the schedule
    lab = dataclasses.replace(LAB, may_change=LAB.may_change - {"epochs"}) if scheduled else LAB
    opened = open_run(cfg, lab, resume, " (not epochs, which fix the cosine schedule)" * scheduled)
    out, device = Path(cfg.out), opened.device
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
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = n_train // cfg.batch_size
    grid_index = torch.arange(min(cfg.grid_images, len(val_x)), device=device)

    def flips(epoch: int) -> torch.Tensor | None:
        return epoch_flips(cfg.seed, epoch, n_train).to(device) if cfg.flip else None

    def validate(net: nn.Module, dist: Dist) -> dict[str, float]:
        loss, accuracy = evaluate(net, val_x, val_y, dist)
        return {"val_loss": loss, "val_accuracy": accuracy, "baseline_accuracy": baseline}

    def describe(dist: Dist, device: torch.device) -> str:
        processes = f" over {dist.world_size} processes" if dist.enabled else ""
        return (
            f"{n_train} training / {len(val_x)} validation images ({cfg.classes}), "
            f"{cfg.num_colours} colours, batch {cfg.batch_size}{processes}, {cfg.epochs} epochs, "
            f"device {device}; baseline (always colour {majority}) {100 * baseline:.1f}% → {out}"
        )

    def epoch_line(row: dict[str, float]) -> str:
        return (
            f"train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"val acc {100 * row['val_accuracy']:5.2f}%  baseline {100 * baseline:5.2f}%"
        )

    def after_epoch(epoch: int, metrics: list[dict[str, float]]) -> None:
        plot_curves(out / files.CURVES, {cfg.model: metrics}, CURVES, _title(cfg))
        if epoch % cfg.grid_every == 0 or epoch == cfg.epochs:
            rows = grid_rows(model, val_x, val_y, grid_index, palette, data)
            plot_grid(out / "grids" / f"epoch_{epoch:03d}.png", rows, f"{cfg.model}, epoch {epoch}")
            if epoch == cfg.epochs:
                plot_grid(out / GRID, rows, f"{cfg.model}, epoch {epoch}")

    def summary(metrics: list[dict[str, float]], seconds: float) -> dict[str, Any]:
        return {
            "model": cfg.model,
            "params": sum(p.numel() for p in model.parameters()),
            "epochs": len(metrics),
            "batch_size": cfg.batch_size,
            "processes": opened.dist.world_size,
            "device": str(device),
            "train_seconds": seconds,
            **{k: metrics[-1][k] for k in ("train_loss", "val_loss", "val_accuracy")},
            "baseline_accuracy": baseline,
            "majority_colour": majority,
        }

    recipe = Recipe(
        lab=LAB,
        config=cfg,
        model=model,
        optimizer=optimizer,
        step=pixel_step(train_x, train_y, flips),
        evaluate=validate,
        n_train=n_train,
        describe=describe,
        epoch_line=epoch_line,
        lr_at=lambda step: learning_rate(cfg, step, steps * cfg.epochs),
        files={PALETTE: lambda tmp: np.save(open(tmp, "wb"), palette)},  # noqa: SIM115
        folders=("grids",),
        after_epoch=after_epoch,
        summary=summary,
        extra={"palette": palette},
    )
    return fit(recipe, opened, console, progress_bar)


def grid_rows(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    index: torch.Tensor,
    palette: np.ndarray,
    data: Data,
) -> list[tuple[str, np.ndarray]]:
    """Grayscale input, prediction, target (nearest palette colours), original image."""
    return [
        ("input", val_x[index, 0].cpu().numpy()),
        ("prediction", decode(predict(model, val_x[index]), palette)),  # (n, 32, 32, 3)
        ("target", decode(val_y[index], palette)),
        ("original", data.val_rgb[index.cpu().numpy()]),
    ]


def trained_model(checkpoint: dict[str, Any], cfg: ColourizeConfig) -> tuple[nn.Module, int]:
    """The weights of a run's checkpoint and the epochs they had."""
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])
    return model, Position(**checkpoint["position"]).epoch


# -----------------------------------------------------------------------------
# spread (how far another draw of validation images could move the accuracy), sweep over
# batch sizes, compare the CNN and the U-Net with identical settings


def spread(folder: str | Path, data: str | None = None) -> Spread:
    """Validation accuracy of a finished run's final weights, with its standard error
    and a bootstrap interval over the validation images.

    Every image has the same number of pixels, so the mean of the per-image accuracies
    is the per-pixel accuracy ``train`` reports (with 102 images, about ±2 points).
    """
    out = Path(folder)
    saved = files.read_saved_config(out, LAB.what)
    cfg = config_from_saved(saved, {} if data is None else {"data": data})
    model, epochs = trained_model(LAB.finished_checkpoint(out, cfg.epochs), cfg)
    palette = load_palette(out / PALETTE, cfg.num_colours)
    val_rgb = load_data(cfg).val_rgb
    values = per_image_accuracy(model, grayscale(val_rgb), nearest_colour(val_rgb, palette))
    return spread_of(values.numpy(), out, cfg.model, epochs)


def parse_batch_sizes(text: str) -> list[int]:
    return sweeps.parse_int_list(text, "--batch-sizes")


def _table_row(result: RunResult) -> dict[str, Any]:
    keys = ("train_loss", "val_loss", "val_accuracy", "baseline_accuracy")
    return {
        "model": result.config.model,
        "params": json.loads((result.out / SUMMARY).read_text())["params"],
        "epochs": int(result.final["epoch"]),
        **{k: result.final[k] for k in keys},
        "train_seconds": result.train_seconds,
        "run": str(result.out),
    }


SWEEP_COLUMNS = ["batch_size", "epochs", "val_loss", "val_accuracy", "baseline_accuracy"]
COMPARE_COLUMNS = ["model", "params", "epochs", "train_loss", "val_loss", "val_accuracy"]


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
    title = (
        f"Batch-size sweep: {base.model}, {base.classes}, {base.num_colours} colours, "
        f"{base.epochs} epochs, lr {base.lr}, seed {base.seed}"
    )
    columns = [*SWEEP_COLUMNS[1:], "train_seconds", "run"]
    rows = sweeps.sweep(
        base, "batch_size", batch_sizes, out, LAB, train, _table_row, columns, title,
        console, progress_bar, palette=None,
    )  # fmt: skip
    if detect_distributed().is_main:
        panels = (
            Panel("", "final val loss", (Series("val_loss", "val loss"),)),
            Panel("", "final val accuracy (%)", (Series("val_accuracy", "val accuracy"),),
                  percent=True, baseline="baseline_accuracy",
                  baseline_label="most frequent colour"),
        )  # fmt: skip
        plot_title = f"{base.model}, {base.epochs} epochs, lr {base.lr}, seed {base.seed}"
        sweeps.plot_sweep(out / "sweep.png", rows, "batch_size", panels, plot_title)
    return rows


def compare(
    base: ColourizeConfig,
    out: str | Path,
    models: Sequence[str] = MODELS,
    console: Any = None,
    progress_bar: bool = True,
) -> list[dict[str, Any]]:
    """Train (or reuse) ``out/<model>`` for each model with ``base``'s settings; write
    ``compare.md``/``.csv``, ``compare_curves.png`` and ``compare_grid.png`` into ``out``.

    Every run uses one palette (the first run's k-means, or ``base.palette``), so their
    targets and accuracies are directly comparable.
    """
    out = Path(out)
    configs = {m: dataclasses.replace(base, model=m, out=str(out / m)) for m in models}
    shared = base.palette or str(out / models[0] / PALETTE)
    columns = [*COMPARE_COLUMNS, "baseline_accuracy", "train_seconds", "run"]
    title = _title(base, model=False)
    results, rows = sweeps.compare(
        configs, out, LAB, train, _table_row, columns, f"CNN vs U-Net: {title}", CURVES,
        console, progress_bar, chain=lambda cfg, _: dataclasses.replace(cfg, palette=shared),
    )  # fmt: skip
    if detect_distributed().is_main:
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
        model, _ = trained_model(load_checkpoint(result.out / CHECKPOINT), result.config)
        rows.append((result.config.model, decode(predict(model, val_x[index]), palette)))
    rows += [("target", decode(val_y[index], palette)), ("original", data.val_rgb[index.numpy()])]
    plot_grid(path, rows, f"validation images, {base.epochs} epochs, batch {base.batch_size}")
