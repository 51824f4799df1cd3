"""Detection lab: a tiny YOLO finds shapes on textured backgrounds, scored by COCO mAP.

The config, then data (``labs.detect_data``: a COCO folder — ``train.json``, ``val.json``
and their PNGs, as ``make_data`` writes it — in memory; seeded left-right and up-down flips
of images and boxes), model (``detection.tiny_yolo.TinyYolo`` with k anchors clustered from
the training boxes at the start of a run and kept in ``detector.json``), step (the YOLOv2/v3 loss),
evaluation (COCO mAP of the validation images with ``convlens.detection``'s evaluator);
the run folder, resume, Ctrl-C, metrics, plots and DDP come from ``convlens.labs.runtime``.

>>> from convlens.labs.detect import DetectConfig, evaluate_run, make_data, train
>>> make_data("data/shapes")  # 4000 + 500 images of 64 × 64
>>> result = train(DetectConfig(data="data/shapes", out="runs/detect"))
>>> evaluate_run("runs/detect").facts["map50"]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convlens.detection.anchors import kmeans_anchors, wh_iou
from convlens.detection.coco import Category, Detection, detections_json
from convlens.detection.evaluate import CocoEvaluation, evaluate_coco
from convlens.detection.files import write_json
from convlens.detection.plots import plot_detections
from convlens.detection.render import coco_json
from convlens.detection.tiny_yolo import TinyYolo, TinyYoloConfig, detect, yolo_loss
from convlens.errors import ArgumentError, DataError
from convlens.labs.detect_data import (
    STRIDE,
    Split,
    as_float,
    data_categories,
    epoch_vertical_flips,
    flip,
    load_split,
)
from convlens.labs.detect_data import make_data as make_data  # the lab's entry point
from convlens.labs.runtime import files, finetune
from convlens.labs.runtime.distributed import Dist
from convlens.labs.runtime.loop import (
    LabInfo,
    Recipe,
    RunResult,
    check_common,
    epoch_flips,
    fit,
    open_run,
    scheduled_rate,
)
from convlens.labs.runtime.plots import Panel, Series, plot_curves

LAB = LabInfo("detect", "a detect run folder")
AUGMENTS = ("none", "hflip", "hflip,vflip")
SCHEDULES = ("cosine", "constant")  # after the linear warm-up
DETECTOR = "detector.json"  # anchors and categories: what rebuilds the detector
DETECTIONS = "detections.png"
VAL_DETECTIONS = "val_detections.json"  # COCO results of `evaluate`
EVAL_BATCH = 100
LOSS_PARTS = ("xy", "wh", "objectness", "class")  # yolo_loss's parts

# -----------------------------------------------------------------------------
# config


@dataclass
class DetectConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    data: str  # folder with train.json, val.json and their images (lab detect make-data)
    width: int = 16  # TinyYolo's w: its layers have w, 2w, 4w and 8w channels
    num_anchors: int = 3  # k of the k-means (1 − IoU) over the training boxes
    epochs: int = 12
    batch_size: int = 32  # global batch: split evenly across processes under torchrun
    lr: float = 2e-3  # AdamW's peak learning rate
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"  # after the warm-up: cosine decay to 0 | constant
    warmup_epochs: float = 1.0  # linear warm-up from lr/steps to lr
    augment: str = "hflip,vflip"  # none | hflip | hflip,vflip: each image, probability 1/2
    seed: int = 0  # anchors, weights, batch order and flips
    score_threshold: float = 0.01  # detections kept for mAP: objectness × class score above
    iou_threshold: float = 0.45  # class-aware NMS
    pictures: int = 16  # validation images drawn in detections.png
    out: str = ""  # run folder; "" → runs/tiny_yolo-w<width>-b<batch_size>-s<seed>
    device: str = "auto"
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/tiny_yolo-w{self.width}-b{self.batch_size}-s{self.seed}"


def check_config(cfg: DetectConfig) -> None:
    for flag, value, allowed in (
        ("--augment", cfg.augment, AUGMENTS),
        ("--lr-schedule", cfg.lr_schedule, SCHEDULES),
    ):
        if value not in allowed:
            raise ArgumentError(f"{flag}: '{value}' is not one of {', '.join(allowed)}.")
    check_common(cfg)
    for flag, count in (("--width", cfg.width), ("--num-anchors", cfg.num_anchors)):
        if count < 1:
            raise ArgumentError(f"{flag} must be at least 1 (got {count}).")
    if not 0 <= cfg.weight_decay < 1:
        raise ArgumentError(f"--weight-decay must be in [0, 1) (got {cfg.weight_decay}).")
    if not 0 <= cfg.warmup_epochs < cfg.epochs:
        raise ArgumentError(
            f"--warmup-epochs must be at least 0 and less than --epochs {cfg.epochs} "
            f"(got {cfg.warmup_epochs})."
        )
    if not 0 <= cfg.score_threshold < 1:
        raise ArgumentError(f"--score-threshold must be in [0, 1) (got {cfg.score_threshold}).")
    if not 0 <= cfg.iou_threshold <= 1:
        raise ArgumentError(f"--iou-threshold must be in [0, 1] (got {cfg.iou_threshold}).")
    if cfg.pictures < 0:
        raise ArgumentError(f"--pictures must be 0 or more (got {cfg.pictures}).")


# -----------------------------------------------------------------------------
# model: anchors from the training boxes, then TinyYolo


@dataclass(frozen=True)
class Detector:
    """What rebuilds the run's detector; saved as ``detector.json`` at the start of a run."""

    anchors: tuple[tuple[float, float], ...]  # (w, h) pixels, by area
    anchor_mean_iou: float  # of the training boxes with their best anchor
    categories: tuple[Category, ...]  # class index k → category

    def to_json(self) -> dict[str, Any]:
        return {
            "anchors": [list(a) for a in self.anchors],
            "anchor_mean_iou": self.anchor_mean_iou,
            "categories": [{"id": c.id, "name": c.name} for c in self.categories],
        }


def box_sizes(split: Split) -> np.ndarray:
    """(M, 2) widths and heights of the split's boxes."""
    return np.concatenate([b[:, 2:] - b[:, :2] for b in split.boxes])


def cluster_anchors(train: Split, k: int, seed: int) -> tuple[tuple[float, float], ...]:
    """YOLOv2's dimension clusters: k-means with 1 − IoU over the training boxes' (w, h),
    rounded to 1/100 pixel (a prior for the size regression, shown as it is used)."""
    sizes = box_sizes(train)
    if k > len(sizes):
        raise ArgumentError(f"--num-anchors {k} is more than the {len(sizes)} training boxes.")
    clusters = kmeans_anchors(sizes, k, seed=seed)
    return tuple((round(float(w), 2), round(float(h), 2)) for w, h in clusters.anchors)


def anchor_mean_iou(train: Split, anchors: Sequence[tuple[float, float]]) -> float:
    """The mean over the training boxes of the IoU of sizes with their best anchor."""
    return float(wh_iou(box_sizes(train), np.asarray(anchors, float)).max(1).mean())


def read_detector(out: Path) -> Detector:
    path = out / DETECTOR
    try:
        saved = json.loads(path.read_text())
        return Detector(
            tuple((float(w), float(h)) for w, h in saved["anchors"]),
            float(saved["anchor_mean_iou"]),
            tuple(Category(int(c["id"]), str(c["name"])) for c in saved["categories"]),
        )
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: the run's anchors and categories are unknown."
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path} is not a detector description ({err}).") from None


def build_model(cfg: DetectConfig, detector: Detector) -> TinyYolo:
    """TinyYolo for the run's anchors and classes; the initial weights depend on the seed only."""
    torch.manual_seed(cfg.seed)
    config = TinyYoloConfig(
        num_classes=len(detector.categories),
        anchors=detector.anchors,
        stride=STRIDE,
        width=cfg.width,
    )
    return TinyYolo(config)


def predict(
    model: TinyYolo, split: Split, categories: Sequence[Category], cfg: DetectConfig
) -> list[Detection]:
    """COCO detections (xywh) of every image of ``split``, in batches."""
    device = next(model.parameters()).device
    ids = [im.id for im in split.gt.images]
    category_ids = [c.id for c in categories]
    detections: list[Detection] = []
    for start in range(0, len(ids), EVAL_BATCH):
        batch = as_float(split.images[start : start + EVAL_BATCH].to(device))  # (B, 3, H, W)
        detections += detect(
            model,
            batch,
            ids[start : start + EVAL_BATCH],
            category_ids,
            cfg.score_threshold,
            cfg.iou_threshold,
        )
    return detections


def learning_rate(cfg: DetectConfig, step: int, total: int, warmup: int) -> float:
    """Linear warm-up over the first ``warmup`` steps (lr/warmup, 2·lr/warmup, …, lr), then
    ``cfg.lr_schedule`` over the rest (cosine: from lr down to 0)."""
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return scheduled_rate(cfg.lr_schedule, cfg.lr, step - warmup, total - warmup)


# -----------------------------------------------------------------------------
# the run

CURVES = (
    Panel(
        "training loss (per image)",
        "loss",
        (Series("train_loss", "total"), *(Series(f"train_{p}", p, "--") for p in LOSS_PARTS)),
        log=True,
    ),
    Panel(
        "validation",
        "COCO AP",
        (
            Series("val_map50", "mAP@0.5"),
            Series("val_map75", "mAP@0.75", "--"),
            Series("val_map", "mAP@[.5:.95]"),
        ),
    ),
)


def train(
    cfg: DetectConfig, resume: bool = False, console: Any = None, progress_bar: bool = True
) -> RunResult:
    """Train one run into ``cfg.out`` (or continue it with ``resume=True``)."""
    check_config(cfg)
    scheduled = cfg.lr_schedule != "constant"
    lab = dataclasses.replace(LAB, may_change=LAB.may_change - {"epochs"}) if scheduled else LAB
    note = f" (not epochs, which fix the {cfg.lr_schedule} schedule)" if scheduled else ""
    opened = open_run(cfg, lab, resume, note)
    out, device = Path(cfg.out), opened.device
    saved = read_detector(out) if resume and (out / DETECTOR).exists() else None
    categories = saved.categories if saved else data_categories(cfg.data)
    train_split = load_split(cfg.data, "train", categories)
    val_split = load_split(cfg.data, "val", categories)
    n_train = len(train_split.images)
    if cfg.batch_size > n_train:
        raise ArgumentError(
            f"--batch-size {cfg.batch_size} is larger than the training set ({n_train} images)."
        )
    if saved is None:
        anchors = cluster_anchors(train_split, cfg.num_anchors, cfg.seed)
        detector = Detector(anchors, anchor_mean_iou(train_split, anchors), categories)
    else:
        detector = saved  # the run's anchors, whatever the data is now
    model = build_model(cfg, detector)
    height, width = train_split.images.shape[-2:]
    local = cfg.batch_size // opened.dist.world_size
    memory = finetune.predicted_memory(model, (local, 3, height, width), "adam")
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = n_train // cfg.batch_size
    warmup = round(cfg.warmup_epochs * steps)
    flips: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    latest: dict[str, Any] = {}  # the last evaluation, for the pictures and the summary

    def epoch_flips_of(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if epoch not in flips:
            flips.clear()
            none = torch.zeros(n_train, dtype=torch.bool)
            horizontal = epoch_flips(cfg.seed, epoch, n_train) if "hflip" in cfg.augment else none
            vertical = (
                epoch_vertical_flips(cfg.seed, epoch, n_train) if "vflip" in cfg.augment else none
            )
            flips[epoch] = (horizontal, vertical)
        return flips[epoch]

    def step(net: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
        horizontal, vertical = epoch_flips_of(epoch)
        chosen = index.tolist()
        x, boxes = flip(
            as_float(train_split.images[index].to(device)),  # (B/W, 3, H, W)
            [train_split.boxes[i] for i in chosen],
            horizontal[index].to(device),
            vertical[index].to(device),
        )
        labels = [train_split.labels[i] for i in chosen]
        loss, parts = yolo_loss(net(x), boxes, labels, model.config)  # parts: per image
        return loss, {part: torch.tensor(parts[part] * len(chosen)) for part in LOSS_PARTS}

    def evaluate(net: nn.Module, dist: Dist) -> dict[str, float]:
        # Every process evaluates all validation images (its buffers are rank 0's).
        detections = predict(net, val_split, categories, cfg)  # type: ignore[arg-type]
        result = evaluate_coco(val_split.gt, detections)
        latest.update(detections=detections, result=result)
        return {
            "val_map": result.stats["AP"],
            "val_map50": result.stats["AP50"],
            "val_map75": result.stats["AP75"],
        }

    def describe(dist: Dist, device: torch.device) -> str:
        processes = f" over {dist.world_size} processes" if dist.enabled else ""
        shapes = ", ".join(f"{w:g}×{h:g}" for w, h in detector.anchors)
        mib = 1024**2
        return (
            f"{n_train} training / {len(val_split.images)} validation images of {width}×"
            f"{height}, {len(categories)} classes, batch {cfg.batch_size}{processes}, "
            f"{cfg.epochs} epochs, device {device} → {out}\n"
            f"TinyYolo width {cfg.width}, {sum(p.numel() for p in model.parameters()):,} "
            f"parameters; anchors (k = {len(detector.anchors)}, mean IoU "
            f"{detector.anchor_mean_iou:.3f} with the training boxes): {shapes} px\n"
            f"predicted training memory (convlens, batch {local} per process, adam): "
            f"{memory['total'] / mib:.1f} MiB, of which saved activations "
            f"{memory['saved_activations'] / mib:.1f} MiB"
        )

    def epoch_line(row: dict[str, float]) -> str:
        parts = " ".join(f"{p} {row[f'train_{p}']:.3f}" for p in LOSS_PARTS)
        return (
            f"loss {row['train_loss']:.4f} ({parts})  val mAP {row['val_map']:.4f}  "
            f"mAP@0.5 {row['val_map50']:.4f}"
        )

    def after_epoch(epoch: int, metrics: list[dict[str, float]]) -> None:
        title = f"TinyYolo w{cfg.width}, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}"
        plot_curves(out / files.CURVES, {"tiny_yolo": metrics}, CURVES, title)
        if cfg.pictures:
            shown = val_split.images[: cfg.pictures].permute(0, 2, 3, 1).numpy()
            plot_detections(
                out / DETECTIONS,
                shown,
                val_split.gt,
                latest["detections"],
                title=f"epoch {epoch}: validation images, ground truth dashed green, "
                f"detections scoring ≥ 0.3 red (mAP@0.5 {metrics[-1]['val_map50']:.3f})",
            )

    def summary(metrics: list[dict[str, float]], seconds: float) -> dict[str, Any]:
        result: CocoEvaluation = latest["result"]
        return {
            "model": "TinyYolo",
            "width": cfg.width,
            "params": sum(p.numel() for p in model.parameters()),
            **detector.to_json(),
            "epochs": len(metrics),
            "batch_size": cfg.batch_size,
            "processes": opened.dist.world_size,
            "device": str(device),
            "train_seconds": seconds,
            **{k: metrics[-1][k] for k in ("train_loss", "val_map", "val_map50", "val_map75")},
            "per_class": coco_json(result)["per_class"],
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
        lr_at=lambda s: learning_rate(cfg, s, steps * cfg.epochs, warmup),
        per_image={part: f"train_{part}" for part in LOSS_PARTS},
        files={DETECTOR: lambda tmp: tmp.write_text(json.dumps(detector.to_json(), indent=2))},
        after_epoch=after_epoch,
        summary=summary,
        extra={"detector": detector},
    )
    return fit(recipe, opened, console, progress_bar)


# -----------------------------------------------------------------------------
# a finished run


def load_run(folder: str | Path, finished: bool = False) -> tuple[TinyYolo, DetectConfig, Detector]:
    """The trained detector of a detect run (eval mode, CPU, takes N×3×H×W floats in
    [0, 1]), the run's ``DetectConfig`` and its anchors and categories.
    ``finished``: refuse a run that stopped early, as evaluating it must."""
    out = Path(folder)
    saved = files.read_saved_config(out, LAB.what)
    if "num_anchors" not in saved:
        raise ArgumentError(f"{out} is not a detect run (its config.json has no num_anchors).")
    cfg = files.config_from_saved(DetectConfig, saved, {"out": str(out)})
    detector = read_detector(out)
    checkpoint = LAB.run_checkpoint(out, cfg.epochs, finished)
    model = build_model(cfg, detector)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), cfg, detector


@dataclass(frozen=True)
class RunEvaluation:
    facts: dict[str, Any]  # {"map", "map50", "map75", "per_class", "stats", "run", …}: JSON
    result: CocoEvaluation  # everything the evaluator found (for the tables)


def evaluate_run(
    folder: str | Path, data: str | None = None, detections_file: str | Path | None = None
) -> RunEvaluation:
    """COCO evaluation of a finished run on the validation images of ``data`` (default: the
    run's); the detections are written as COCO results JSON (default RUN/val_detections.json)."""
    out = Path(folder)
    model, cfg, detector = load_run(out, finished=True)
    root = data or cfg.data
    val_split = load_split(root, "val", detector.categories)
    detections = predict(model, val_split, detector.categories, cfg)
    result = evaluate_coco(val_split.gt, detections)
    target = Path(detections_file) if detections_file else out / VAL_DETECTIONS
    write_json(target, detections_json(detections))
    facts = {
        "run": str(out),
        "data": str(root),
        "images": len(val_split.gt.images),
        "ground_truth_boxes": sum(not a.iscrowd for a in val_split.gt.annotations),
        "detections": len(detections),
        "detections_file": str(target),
        **coco_json(result),
    }
    return RunEvaluation(facts, result)
