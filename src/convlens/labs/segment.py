"""Segmentation lab: the U-Net of Ronneberger et al. 2015 on EM sections (ISBI 2012), with
the paper's elastic deformation, weighted loss and overlap-tile prediction; DeepLabv3
fine-tuned from a classification run.

The config, the model (a zoo name or ``module:factory`` giving N×K×H×W logits), the loss
(cross-entropy, the paper's weighted cross-entropy, Dice or both) and the training run
with its per-epoch validation (overlap-tile prediction of the held-out sections; pixel
error, IoU, Dice, foreground-restricted Rand error, VI). The samples (seeded crops, elastic
deformation, flips, rot90, intensity) are in ``seg_samples``, the pictures in
``seg_pictures``, a finished run's evaluation and prediction in ``seg_results``, the
three-way fine-tuning comparison in ``seg_finetune``; the run folder, resume, Ctrl-C,
metrics and plots come from ``convlens.labs.runtime``.

>>> from convlens.labs.segment import SegmentConfig, train
>>> train(SegmentConfig(data="../shared/data/isbi2012-em/train", out="runs/segment"))
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs import elastic, seg_data
from convlens.labs.runtime import files, finetune
from convlens.labs.runtime.distributed import Dist
from convlens.labs.runtime.loop import (
    SCHEDULES,
    LabInfo,
    Recipe,
    RunResult,
    check_common,
    fit,
    open_run,
    scheduled_rate,
)
from convlens.labs.runtime.plots import Panel, Series, plot_curves
from convlens.labs.seg_metrics import Scores, score
from convlens.labs.seg_pictures import write_augmented, write_predictions, write_weight_map
from convlens.labs.seg_samples import (
    Data,
    Draws,
    augmentations,
    epoch_draws,
    load_data,
    make_samples,
)
from convlens.labs.tiling import (
    Geometry,
    geometry_of,
    input_channels,
    logits_of,
    predict_probabilities,
    smallest_tile,
)

LAB = LabInfo("segment", "a segment run folder")
LOSSES = ("ce", "weighted-ce", "dice", "ce+dice")
AUGMENTS = ("elastic", "flip", "rot90", "intensity")
OPTIMIZERS = ("adam", "sgd")
DATA_FILE = "data.json"  # value → class map, training and validation sections
PREDICTIONS = "predictions.png"
AUGMENTED = "augmented.png"
WEIGHT_MAP = "weight_map.png"

# -----------------------------------------------------------------------------
# config


@dataclass
class SegmentConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    DATA_HELP: ClassVar[str] = (
        "a folder with image/ and label/ PNGs of the same names (e.g. "
        "../shared/data/isbi2012-em/train)."
    )
    data: str  # folder with image/ and label/ PNGs of the same names
    model: str = "unet_same?base_channels=16&depth=4"  # zoo name (?arg=value&…) or module:factory
    width: int = 0  # channels of the first stage (U-Nets) or ResNet-9's width; 0: the model's
    epochs: int = 60
    batch_size: int = 4
    crop: int = 256  # side of the labelled window of a training sample (the output tile)
    repeat: int = 8  # crops per training section and epoch
    augment: str = "elastic,flip,rot90,intensity"  # comma-separated, or none
    elastic_sigma: float = elastic.SIGMA  # pixels, on the coarse 3×3 grid
    loss: str = "weighted-ce"  # ce | weighted-ce | dice | ce+dice
    w0: float = 10.0  # weight map: border weight
    sigma: float = 5.0  # weight map: border width (pixels)
    val: int = 5  # sections held out for validation (seeded)
    optimizer: str = "adam"  # adam (AdamW) | sgd (Nesterov momentum 0.99, as the paper)
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # cosine | onecycle | constant
    warmup: float = 0.1  # onecycle: fraction of the steps spent rising
    tile: int = 0  # prediction tile side; 0: 572 for valid nets, 1024 for padded ones
    seed: int = 0
    out: str = ""  # run folder; "" → runs/segment/<model>-s<seed>
    init: str | None = None  # a segment or classify run, a .pt or a .safetensors file
    init_exclude: list[str] = field(default_factory=list)  # state-dict globs left as built
    train_only: list[str] = field(default_factory=list)  # parameter-name globs; [] = all
    freeze_bn: bool = False  # keep BatchNorm layers with frozen parameters in eval mode
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        if not self.out:
            name = self.model.split("?")[0].replace(":", "-").replace("/", "-")
            self.out = f"runs/segment/{name}-s{self.seed}"


def check_config(cfg: SegmentConfig) -> None:
    for flag, value, allowed in (
        ("--loss", cfg.loss, LOSSES),
        ("--optimizer", cfg.optimizer, OPTIMIZERS),
        ("--lr-schedule", cfg.lr_schedule, SCHEDULES),
    ):
        if value not in allowed:
            raise ArgumentError(f"{flag}: '{value}' is not one of {', '.join(allowed)}.")
    unknown = augmentations(cfg) - set(AUGMENTS)
    if unknown:
        raise ArgumentError(
            f"--augment: '{sorted(unknown)[0]}' is not one of {', '.join(AUGMENTS)} (or none)."
        )
    check_common(cfg)
    for flag, count in (("--crop", cfg.crop), ("--repeat", cfg.repeat)):
        if count < 1:
            raise ArgumentError(f"{flag} must be at least 1 (got {count}).")
    for flag, amount in (
        ("--elastic-sigma", cfg.elastic_sigma),
        ("--w0", cfg.w0),
        ("--weight-decay", cfg.weight_decay),
    ):
        if amount < 0:
            raise ArgumentError(f"{flag} must not be negative (got {amount}).")
    if not cfg.sigma > 0:
        raise ArgumentError(f"--sigma must be positive (got {cfg.sigma}).")
    if not 0 < cfg.warmup < 1:
        raise ArgumentError(f"--warmup must be between 0 and 1 (got {cfg.warmup}).")
    if cfg.width < 0 or cfg.tile < 0:
        raise ArgumentError("--width and --tile must be 0 (the default) or positive.")
    if cfg.freeze_bn and not cfg.train_only:
        raise ArgumentError(
            "--freeze-bn keeps BatchNorm layers with frozen parameters in eval mode; without "
            "--train-only nothing is frozen. Give the parameters to train with --train-only."
        )


# -----------------------------------------------------------------------------
# model


def build_model(spec: str, num_classes: int, width: int, seed: int) -> nn.Module:
    """A zoo name (``unet_valid?width=16&batch_norm=true``, ``deeplabv3_cifar``) built for
    ``num_classes`` classes and one input channel (when the factory takes those), or
    ``module:factory``; ``width`` sets the zoo model's width. Seeded by ``seed`` only."""
    from convlens.api import model_from_reference
    from convlens.zoo import get_entry

    torch.manual_seed(seed)
    if ":" in spec:
        if width:
            raise ArgumentError(f"--width applies to zoo models, not to {spec}.")
        return model_from_reference(spec, real=True)[0]
    name, _, query = spec.partition("?")
    arguments = {a.name for a in get_entry(name).arguments}
    parts = (p.partition("=") for p in query.split("&") if p)
    raw = {key: value if sep else "true" for key, sep, value in parts}
    for argument, value in (("num_classes", num_classes), ("in_channels", 1)):
        if argument in arguments and argument not in raw:
            raw[argument] = str(value)
    if width:
        key = next((a for a in ("width", "base_channels") if a in arguments), None)
        if key is None:
            raise ArgumentError(f"--width: model '{name}' has no width argument.")
        raw[key] = str(width)
    query = "&".join(f"{a}={v}" for a, v in raw.items())
    return model_from_reference(f"zoo:{name}?{query}", real=True)[0]


def check_geometry(model: nn.Module, cfg: SegmentConfig, k: int, smallest_side: int) -> Geometry:
    """The crop fits the images and the model; the model gives (N, K, O, O) logits for
    the crop's input. Errors name the sizes that work."""
    geometry = geometry_of(model)
    if cfg.crop > smallest_side:
        raise ArgumentError(
            f"--crop {cfg.crop} is larger than the images: the smallest training section is "
            f"{smallest_side} pixels on its shorter side."
        )
    if geometry.valid:
        outputs = geometry.valid_outputs(max(cfg.crop, 1) + 4 * geometry.multiple)
        if cfg.crop not in outputs:
            below = [o for o in outputs if o < cfg.crop]
            above = [o for o in outputs if o > cfg.crop]
            if not below:
                raise ArgumentError(
                    f"--crop {cfg.crop} is too small for {cfg.model}'s valid convolutions: the "
                    f"smallest size that works is {above[0]} (an input tile of "
                    f"{above[0] + 2 * geometry.margin})."
                )
            near = ", ".join(str(o) for o in [below[-1], *above[:1]])
            raise ArgumentError(
                f"--crop {cfg.crop} does not fit {cfg.model}'s valid convolutions (every 2×2 "
                f"pooling must see an even size); the nearest crops that work are {near} "
                f"(input tiles {cfg.crop and below[-1] + 2 * geometry.margin}, ...)."
            )
    elif cfg.crop < geometry.multiple:
        raise ArgumentError(
            f"--crop {cfg.crop} is too small for {cfg.model}: the smallest size that works "
            f"is {geometry.multiple} (its poolings halve the map {geometry.multiple // 2 or 1}×)."
        )
    if cfg.tile and cfg.tile < smallest_tile(geometry):
        raise ArgumentError(
            f"--tile {cfg.tile} is too small for {cfg.model}: the smallest prediction tile "
            f"that works is {smallest_tile(geometry)}."
        )
    side = cfg.crop + 2 * geometry.margin
    model.eval()
    with torch.no_grad():
        try:
            shape = tuple(logits_of(model, torch.zeros(1, 1, side, side)).shape)
        except Exception as err:
            raise ArgumentError(
                f"--model {cfg.model}: a forward of a 1×1×{side}×{side} tile failed "
                f"({type(err).__name__}: {err})."
            ) from None
    if shape != (1, k, cfg.crop, cfg.crop):
        raise ArgumentError(
            f"--model {cfg.model}: gives outputs of shape {shape} for a 1×1×{side}×{side} tile; "
            f"the lab needs (1, {k}, {cfg.crop}, {cfg.crop}): one logit per class and pixel."
        )
    return geometry


def init_weights(model: nn.Module, source: str, exclude: list[str]) -> str:
    """``--init``: the whole model's weights (a segment run, a file), or a classifier's
    (a ``lab classify`` run) loaded into ``model.backbone`` with its own ``fc`` unused.
    Returns what was loaded, in words."""
    weights = finetune.read_weights(source)
    own = model.state_dict()
    if hasattr(model, "backbone") and not set(weights) & set(own):
        loaded = finetune.load_weights(model, source, exclude, prefix="backbone.", unused=["fc.*"])
        return f"backbone ({len(loaded)} tensors) from {source}"
    loaded = finetune.load_weights(model, source, exclude)
    return f"{len(loaded)} tensors from {source}"


def optimizer_for(cfg: SegmentConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":  # the paper: momentum 0.99 with one large tile per step
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.99, nesterov=True, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


# -----------------------------------------------------------------------------
# loss


def segmentation_loss(
    kind: str, logits: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """logits (B, K, O, O), masks (B, O, O): ce, the paper's weighted ce (mean of w(x)·ce(x)),
    soft Dice (1 − mean over classes of 2|P∩Y| / (|P| + |Y|)) or ce + Dice."""
    if kind == "weighted-ce":
        assert weights is not None
        return (F.cross_entropy(logits, masks, reduction="none") * weights).mean()
    loss = torch.zeros((), device=logits.device)
    if kind in ("ce", "ce+dice"):
        loss = loss + F.cross_entropy(logits, masks)
    if kind in ("dice", "ce+dice"):
        p = logits.softmax(1)  # (B, K, O, O)
        y = F.one_hot(masks, logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
        overlap = (p * y).sum((0, 2, 3))
        dice = (2 * overlap + 1) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + 1)  # (K,)
        loss = loss + 1 - dice.mean()
    return loss


# -----------------------------------------------------------------------------
# evaluation


def tile_side(cfg: SegmentConfig, geometry: Geometry) -> int:
    return cfg.tile or (572 if geometry.valid else 1024)


def predict_sections(
    model: nn.Module, sections: list[seg_data.Section], geometry: Geometry, tile: int
) -> list[np.ndarray]:
    """Class probabilities (K, H, W) of each section by overlap-tile prediction."""
    return [predict_probabilities(model, s.image, geometry, tile) for s in sections]


def baseline(data: Data, sections: list[seg_data.Section]) -> Scores:
    """Predicting the training set's most frequent class everywhere."""
    k = len(data.values)
    counts = np.sum([np.bincount(s.mask.ravel(), minlength=k) for s in data.train], axis=0)  # type: ignore[union-attr]
    majority = int(np.argmax(counts))
    truths = [s.mask for s in sections]
    return score(truths, [np.full_like(t, majority) for t in truths], k)  # type: ignore[arg-type]


def scores_row(scores: Scores, values: list[int], prefix: str = "val_") -> dict[str, float]:
    row = {
        f"{prefix}pixel_error": scores.pixel_error,
        f"{prefix}rand_error": scores.rand_error,
        f"{prefix}vi": scores.vi,
    }
    for value, iou, dice in zip(values, scores.iou, scores.dice, strict=True):
        row[f"{prefix}iou_{value}"] = iou
        row[f"{prefix}dice_{value}"] = dice
    return row


CURVES = (
    Panel("loss", "loss", (Series("train_loss", "train", "--"), Series("val_loss", "validation"))),
    Panel(
        "errors on the validation sections",
        "error",
        (Series("val_pixel_error", "pixel error"), Series("val_rand_error", "Rand error")),
        baseline="baseline_pixel_error",
        baseline_label="majority-class pixel error",
    ),
    Panel("overlap", "IoU", (Series("val_iou_mean", "mean IoU"),)),
)


# -----------------------------------------------------------------------------
# the run


def train(
    cfg: SegmentConfig, resume: bool = False, console: Any = None, progress_bar: bool = True
) -> RunResult:
    """Train one run into ``cfg.out`` (or continue it with ``resume=True``)."""
    check_config(cfg)
    scheduled = cfg.lr_schedule != "constant"
    lab = dataclasses.replace(LAB, may_change=LAB.may_change - {"epochs"}) if scheduled else LAB
    note = f" (not epochs, which fix the {cfg.lr_schedule} schedule)" if scheduled else ""
    opened = open_run(cfg, lab, resume, note)
    out, device = Path(cfg.out), opened.device
    values = saved_values(out) if resume else None
    data = load_data(cfg, values)
    k = len(data.values)
    n_train = len(data.train) * cfg.repeat
    if cfg.batch_size > n_train:
        raise ArgumentError(
            f"--batch-size {cfg.batch_size} is larger than the {n_train} training samples of an "
            f"epoch ({len(data.train)} sections × --repeat {cfg.repeat})."
        )
    model = build_model(cfg.model, k, cfg.width, cfg.seed)
    smallest = min(min(s.image.shape) for s in data.train)
    geometry = check_geometry(model, cfg, k, smallest)
    loaded = ""
    if cfg.init and opened.checkpoint is None:  # a resumed run has its own weights
        loaded = init_weights(model, cfg.init, cfg.init_exclude)
    if cfg.train_only:
        finetune.train_only(model, cfg.train_only)
    frozen_bn = finetune.frozen_batchnorms(model) if cfg.freeze_bn else []
    if cfg.freeze_bn and not frozen_bn:
        raise ArgumentError("--freeze-bn: every BatchNorm layer has trainable parameters.")
    local = cfg.batch_size // opened.dist.world_size
    side = cfg.crop + 2 * geometry.margin
    finetune.train_mode(frozen_bn)(model)  # predicted as it will train
    memory = finetune.predicted_memory(
        model, (local, input_channels(model), side, side), _memory_optimizer(cfg)
    )
    model = model.to(device)
    optimizer = optimizer_for(cfg, model)
    tile = tile_side(cfg, geometry)
    steps = n_train // cfg.batch_size
    cache: dict[int, Draws] = {}
    held_out = data.val
    reference = baseline(data, held_out) if held_out else None
    predictions: dict[str, list[np.ndarray]] = {}

    def draws(epoch: int) -> Draws:
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_draws(cfg, epoch, n_train)
        return cache[epoch]

    def step(net: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
        batch = make_samples(data, draws(epoch), index, cfg.crop, geometry.margin)
        x, y = batch.images.to(device), batch.masks.to(device)  # (B, 1, T, T), (B, O, O)
        w = None if batch.weights is None else batch.weights.to(device)
        logits = logits_of(net, x)  # (B, K, O, O)
        loss = segmentation_loss(cfg.loss, logits, y, w)
        return loss, {"correct": (logits.argmax(1) == y).float().mean((1, 2)).sum()}

    def evaluate(net: nn.Module, dist: Dist) -> dict[str, float]:
        if not held_out:
            return {}
        probabilities = predict_sections(net, held_out, geometry, tile)
        predictions["val"] = probabilities
        masks = [p.argmax(0) for p in probabilities]
        scores = score([s.mask for s in held_out], masks, k)  # type: ignore[misc]
        nll = np.mean([
            -np.log(np.take_along_axis(p, s.mask[None], 0) + 1e-12).mean()  # type: ignore[index]
            for s, p in zip(held_out, probabilities, strict=True)
        ])  # fmt: skip
        assert reference is not None
        return {
            "val_loss": float(nll),
            **scores_row(scores, data.values),
            "val_iou_mean": float(np.nanmean(scores.iou)),
            "baseline_pixel_error": reference.pixel_error,
        }

    def describe(dist: Dist, device: torch.device) -> str:
        held = f"{len(held_out)} validation sections" if held_out else "no validation"
        base = (
            f"; majority-class baseline on them: pixel error {reference.pixel_error:.4f}, "
            f"Rand error {reference.rand_error:.4f}"
            if reference
            else ""
        )
        init = f"\ninitial weights: {loaded}" if loaded else ""
        return (
            f"{len(data.train)} training sections × {cfg.repeat} crops of {cfg.crop}² "
            f"(input {side}²), {held}, classes {data.values}, loss {cfg.loss}, batch "
            f"{cfg.batch_size}, {cfg.epochs} epochs, device {device} → {out}{base}{init}\n"
            f"{finetune.memory_line(memory, cfg.train_only, cfg.freeze_bn)}"
        )

    def epoch_line(row: dict[str, float]) -> str:
        line = f"train loss {row['train_loss']:.4f}  train acc {100 * row['train_accuracy']:5.2f}%"
        if "val_pixel_error" in row:
            line += (
                f"  val pixel error {row['val_pixel_error']:.4f}  Rand error "
                f"{row['val_rand_error']:.4f}  VI {row['val_vi']:.3f}  mean IoU "
                f"{row['val_iou_mean']:.4f}"
            )
        return line

    def after_epoch(epoch: int, metrics: list[dict[str, float]]) -> None:
        title = f"{cfg.model}, crop {cfg.crop}, batch {cfg.batch_size}, seed {cfg.seed}"
        if held_out:
            plot_curves(out / files.CURVES, {cfg.model: metrics}, CURVES, title)
            final = metrics[-1]
            write_predictions(
                out / PREDICTIONS,
                held_out,
                predictions["val"],
                f"validation sections after epoch {epoch}: pixel error "
                f"{final['val_pixel_error']:.4f}, Rand error {final['val_rand_error']:.4f}",
            )

    def summary(metrics: list[dict[str, float]], seconds: float) -> dict[str, Any]:
        return {
            "model": cfg.model,
            "values": data.values,
            "params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen_batchnorm": frozen_bn,
            "epochs": len(metrics),
            "device": str(device),
            "train_seconds": seconds,
            "seconds_per_epoch": seconds / max(len(metrics), 1),
            "final": metrics[-1],
            "baseline": dataclasses.asdict(reference) if reference else None,
            "predicted_memory": memory,
        }

    recipe = Recipe(
        lab=LAB,
        config=cfg,
        model=model,
        optimizer=optimizer,
        step=step,
        evaluate=evaluate,
        n_train=n_train,
        describe=describe,
        epoch_line=epoch_line,
        lr_at=lambda s: scheduled_rate(cfg.lr_schedule, cfg.lr, s, steps * cfg.epochs, cfg.warmup),
        train_mode=finetune.train_mode(frozen_bn) if frozen_bn else None,
        per_image={"correct": "train_accuracy"},
        files=_start_files(cfg, data, geometry),
        after_epoch=after_epoch,
        summary=summary,
        extra={"memory": memory, "geometry": geometry},
    )
    return fit(recipe, opened, console, progress_bar)


def _memory_optimizer(cfg: SegmentConfig) -> str:
    return "adam" if cfg.optimizer == "adam" else "momentum"


def saved_values(out: Path) -> list[int] | None:
    path = out / DATA_FILE
    return json.loads(path.read_text())["values"] if path.exists() else None


def _start_files(cfg: SegmentConfig, data: Data, geometry: Geometry) -> dict[str, Any]:
    """data.json (value → class map, sections), augmented.png, weight_map.png."""

    def data_json(tmp: Path) -> None:
        tmp.write_text(
            json.dumps(
                {
                    "values": data.values,
                    "classes": {str(v): k for k, v in enumerate(data.values)},
                    "train": [s.name for s in data.train],
                    "val": [s.name for s in data.val],
                    "class_weights": data.class_weights.tolist(),
                },
                indent=2,
            )
            + "\n"
        )

    def augmented(tmp: Path) -> None:  # the first eight samples of epoch 1
        n_train = len(data.train) * cfg.repeat
        index = torch.arange(min(8, n_train))
        batch = make_samples(data, epoch_draws(cfg, 0, n_train), index, cfg.crop, geometry.margin)
        write_augmented(tmp, batch, cfg.crop, geometry.margin, len(data.values), cfg.augment)

    written: dict[str, Any] = {DATA_FILE: data_json, AUGMENTED: augmented}
    if data.weights is not None:
        written[WEIGHT_MAP] = lambda tmp: write_weight_map(tmp, data)
    return written
