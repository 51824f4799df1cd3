"""Classification lab: a CNN classifier on CIFAR-10, trained from scratch or fine-tuned.

The config, then data (CIFAR-10 in memory, seeded flips and pad-crops), model (a zoo
name or ``module:factory``; normalisation inside the model, so it takes images in
[0, 1]), step (cross-entropy with label smoothing), evaluation; the run folder,
resume, Ctrl-C, metrics, plots, DDP and fine-tuning come from ``convlens.labs.runtime``.

>>> from convlens.labs.classify import ClassifyConfig, train
>>> result = train(ClassifyConfig(data="../shared/data/cifar10-10k", out="runs/classify"))
>>> model, cfg = load_run("runs/classify")  # the trained nn.Module, eval mode, CPU
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.cifar import resolve_classes
from convlens.labs.runtime import files, finetune
from convlens.labs.runtime.distributed import Dist
from convlens.labs.runtime.images import (  # augment, epoch_offsets: importable from here
    Data,
    augment,  # noqa: F401
    augmented_batch,
    epoch_offsets,  # noqa: F401
    load_data,
)
from convlens.labs.runtime.loop import (
    SCHEDULES,
    LabInfo,
    Recipe,
    RunResult,
    check_common,
    fit,
    open_run,
    scheduled_lab,
    scheduled_rate,
)
from convlens.labs.runtime.metrics import evaluate_classifier, predict
from convlens.labs.runtime.plots import (
    Panel,
    Series,
    plot_confusion,
    plot_curves,
    plot_labelled_images,
)
from convlens.labs.runtime.stats import bootstrap_interval

LAB = LabInfo("classify", "a classify run folder")
OPTIMIZERS = ("sgd", "adam")
AUGMENTS = ("none", "flip", "flip,crop")
CONFUSION = "confusion.png"
MISCLASSIFIED = "misclassified.png"

# -----------------------------------------------------------------------------
# config


@dataclass
class ClassifyConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    data: str  # parent of cifar-10-batches-py/ (or that folder itself)
    classes: str = "all"  # names or numbers, comma-separated
    model: str = "cifar_resnet9?width=32"  # a zoo name (?arg=value&…) or module:factory
    epochs: int = 18
    batch_size: int = 256  # global batch: split evenly across processes under torchrun
    lr: float = 0.2  # peak learning rate
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | adam (AdamW)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: str = "flip,crop"  # none | flip | flip,crop
    lr_schedule: str = "onecycle"  # onecycle | cosine | constant
    warmup: float = 0.25  # onecycle: fraction of the steps spent rising to lr
    seed: int = 0
    out: str = ""  # run folder; "" → runs/<model>-b<batch_size>-s<seed>
    init: str | None = None  # initial weights: a classify run, a .pt or a .safetensors file
    init_exclude: list[str] = field(default_factory=list)  # state-dict globs left as built
    train_only: list[str] = field(default_factory=list)  # parameter-name globs; [] = all
    freeze_bn: bool = False  # keep BatchNorm layers with frozen parameters in eval mode
    device: str = "auto"
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default
    misclassified: int = 32  # test images shown in misclassified.png

    def __post_init__(self) -> None:
        if not self.out:
            name = self.model.split("?")[0].replace(":", "-").replace("/", "-")
            self.out = f"runs/{name}-b{self.batch_size}-s{self.seed}"


def check_config(cfg: ClassifyConfig) -> None:
    for flag, value, allowed in (
        ("--optimizer", cfg.optimizer, OPTIMIZERS),
        ("--augment", cfg.augment, AUGMENTS),
        ("--lr-schedule", cfg.lr_schedule, SCHEDULES),
    ):
        if value not in allowed:
            raise ArgumentError(f"{flag}: '{value}' is not one of {', '.join(allowed)}.")
    check_common(cfg)
    for flag, number in (("--weight-decay", cfg.weight_decay), ("--momentum", cfg.momentum)):
        if not 0 <= number < 1:
            raise ArgumentError(f"{flag} must be in [0, 1) (got {number}).")
    if not 0 <= cfg.label_smoothing < 1:
        raise ArgumentError(f"--label-smoothing must be in [0, 1) (got {cfg.label_smoothing}).")
    if not 0 < cfg.warmup < 1:
        raise ArgumentError(f"--warmup must be between 0 and 1 (got {cfg.warmup}).")
    if cfg.freeze_bn and not cfg.train_only:
        raise ArgumentError(
            "--freeze-bn keeps BatchNorm layers with frozen parameters in eval mode; without "
            "--train-only nothing is frozen. Give the parameters to train with --train-only."
        )


# -----------------------------------------------------------------------------
# model


def build_model(spec: str, num_classes: int, seed: int) -> nn.Module:
    """A zoo name (``cifar_resnet20``, ``cifar_resnet9?width=32``) built for ``num_classes``,
    or ``module:factory``; the initial weights depend on ``seed`` only."""
    from convlens.api import model_from_reference
    from convlens.zoo import get_entry

    torch.manual_seed(seed)
    if ":" in spec:
        return model_from_reference(spec, real=True)[0]
    name, _, query = spec.partition("?")
    arguments = {a.name for a in get_entry(name).arguments}
    if "num_classes" in arguments and "num_classes=" not in query:
        query = "&".join(filter(None, [query, f"num_classes={num_classes}"]))
    return model_from_reference(f"zoo:{name}?{query}", real=True)[0]


def optimizer_for(cfg: ClassifyConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW, over the trainable parameters only."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    nesterov = cfg.momentum > 0
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov, weight_decay=cfg.weight_decay
    )


def memory_optimizer(cfg: ClassifyConfig) -> str:
    """convlens's name for the optimizer's per-parameter state (0, 1 or 2 copies)."""
    return "adam" if cfg.optimizer == "adam" else ("momentum" if cfg.momentum > 0 else "sgd")


# -----------------------------------------------------------------------------
# the run

CURVES = (
    Panel(
        "loss", "cross-entropy", (Series("train_loss", "train", "--"), Series("test_loss", "test"))
    ),
    Panel(
        "accuracy",
        "accuracy (%)",
        (Series("train_accuracy", "train", "--"), Series("test_accuracy", "test")),
        percent=True,
    ),
)


def train(
    cfg: ClassifyConfig, resume: bool = False, console: Any = None, progress_bar: bool = True
) -> RunResult:
    """Train one run into ``cfg.out`` (or continue it with ``resume=True``)."""
    check_config(cfg)
    lab, note = scheduled_lab(LAB, cfg.lr_schedule)
    opened = open_run(cfg, lab, resume, note)
    out, device = Path(cfg.out), opened.device
    data = load_data(cfg.data, cfg.classes)
    n_train, k = len(data.train_y), len(data.class_names)
    if cfg.batch_size > n_train:
        raise ArgumentError(
            f"--batch-size {cfg.batch_size} is larger than the training set ({n_train} images)."
        )
    model = build_model(cfg.model, k, cfg.seed)
    if cfg.init and opened.checkpoint is None:  # a resumed run has its own weights
        finetune.load_weights(model, cfg.init, cfg.init_exclude)
    if cfg.train_only:
        finetune.train_only(model, cfg.train_only)
    frozen_bn = finetune.frozen_batchnorms(model) if cfg.freeze_bn else []
    if cfg.freeze_bn and not frozen_bn:
        raise ArgumentError("--freeze-bn: every BatchNorm layer has trainable parameters.")
    _check_output(model, k, cfg.model)
    local = cfg.batch_size // opened.dist.world_size
    finetune.train_mode(frozen_bn)(model)  # predicted as it will train: frozen BN in eval mode
    memory = finetune.predicted_memory(model, (local, 3, 32, 32), memory_optimizer(cfg))
    channels_last = device.type == "cpu"  # measured: ~20 % faster for ResNet-9 on 2 cores
    # (torch's stubs for Module.to omit memory_format, which it accepts: hence the ignore)
    model = (
        model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        if channels_last
        else model.to(device)
    )
    optimizer = optimizer_for(cfg, model)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    steps = n_train // cfg.batch_size

    def step(net: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
        x = augmented_batch(train_x, index, cfg.seed, epoch, cfg.augment)  # (B/W, 3, 32, 32)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = train_y[index.to(device)]  # (B/W,)
        logits = net(x)  # (B/W, K)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        return loss, {"correct": (logits.argmax(1) == y).sum()}

    def evaluate(net: nn.Module, dist: Dist) -> dict[str, float]:
        loss, accuracy = evaluate_classifier(net, test_x, test_y, dist)
        return {"test_loss": loss, "test_accuracy": accuracy}

    def describe(dist: Dist, device: torch.device) -> str:
        processes = f" over {dist.world_size} processes" if dist.enabled else ""
        return (
            f"{n_train} training / {len(test_y)} test images, {k} classes, batch "
            f"{cfg.batch_size}{processes}, {cfg.epochs} epochs, device {device} → {out}\n"
            f"{finetune.memory_line(memory, cfg.train_only, cfg.freeze_bn)}"
        )

    def epoch_line(row: dict[str, float]) -> str:
        return (
            f"train loss {row['train_loss']:.4f}  train acc {100 * row['train_accuracy']:5.2f}%  "
            f"test loss {row['test_loss']:.4f}  test acc {100 * row['test_accuracy']:5.2f}%"
        )

    def after_epoch(epoch: int, metrics: list[dict[str, float]]) -> None:
        title = f"{cfg.model}, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}"
        plot_curves(out / files.CURVES, {cfg.model: metrics}, CURVES, title)
        if epoch == cfg.epochs:
            write_pictures(out, model, data, cfg)

    def summary(metrics: list[dict[str, float]], seconds: float) -> dict[str, Any]:
        final = metrics[-1]
        return {
            "model": cfg.model,
            "classes": data.class_names,
            "params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen_batchnorm": frozen_bn,
            "epochs": len(metrics),
            "batch_size": cfg.batch_size,
            "processes": opened.dist.world_size,
            "device": str(device),
            "train_seconds": seconds,
            **{k: final[k] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
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
        after_epoch=after_epoch,
        summary=summary,
        extra={"memory": memory},
    )
    return fit(recipe, opened, console, progress_bar)


def _check_output(model: nn.Module, k: int, spec: str) -> None:
    """A ``module:factory`` model must give one logit per chosen class."""
    model.eval()
    with torch.no_grad():
        try:
            shape = tuple(model(torch.zeros(2, 3, 32, 32)).shape)
        except Exception as err:
            raise ArgumentError(
                f"--model {spec}: a forward of a 2×3×32×32 batch failed ({type(err).__name__}: "
                f"{err})."
            ) from None
    if shape != (2, k):
        raise ArgumentError(
            f"--model {spec}: gives outputs of shape {shape} for a 2×3×32×32 batch; the lab "
            f"needs (2, {k}), one logit per class."
        )


# -----------------------------------------------------------------------------
# pictures and evaluation of a finished run


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    return torch.bincount(truth * k + predicted, minlength=k * k).reshape(k, k).numpy()


def write_pictures(out: Path, model: nn.Module, data: Data, cfg: ClassifyConfig) -> None:
    """``confusion.png`` and ``misclassified.png`` of the test batch."""
    predicted = predict(model, data.test_x.to(next(model.parameters()).device)).cpu()
    k = len(data.class_names)
    matrix = confusion_matrix(data.test_y, predicted, k)
    accuracy = np.trace(matrix) / matrix.sum()
    title = f"{cfg.model}: {100 * accuracy:.1f} % of {len(data.test_y)} test images"
    plot_confusion(out / CONFUSION, matrix, data.class_names, title)
    wrong = torch.nonzero(predicted != data.test_y).flatten()[: cfg.misclassified]
    names = data.class_names
    captions = [f"{names[data.test_y[i]]}→{names[predicted[i]]}" for i in wrong.tolist()]
    images = data.test_x[wrong].permute(0, 2, 3, 1).numpy()  # (n, 32, 32, 3)
    plot_labelled_images(
        out / MISCLASSIFIED, images, captions, title=f"misclassified (true→predicted), {cfg.model}"
    )


def load_run(folder: str | Path, finished: bool = False) -> tuple[nn.Module, ClassifyConfig]:
    """The trained model of a classify run (eval mode, CPU, takes N×3×H×W floats in [0, 1]:
    normalisation is inside the model) and the run's ``ClassifyConfig``.
    ``finished``: refuse a run that stopped early, as evaluating it must."""
    out = Path(folder)
    saved = files.read_saved_config(out, LAB.what)
    if "num_colours" in saved:
        raise ArgumentError(
            f"{out} is a colourization run (its model takes grayscale images and predicts "
            "colours); load_run needs a classify run folder."
        )
    cfg = files.config_from_saved(ClassifyConfig, saved, {"out": str(out)})
    checkpoint = LAB.run_checkpoint(out, cfg.epochs, finished)
    model = build_model(cfg.model, len(class_names(cfg)), cfg.seed)
    model.load_state_dict(checkpoint["model"])
    # the memory format training used on the CPU, so outputs equal the trained model's bit for bit
    # (torch's stubs for Module.to omit memory_format, which it accepts: hence the ignore)
    return model.to(memory_format=torch.channels_last).eval(), cfg  # type: ignore[call-overload]


def class_names(cfg: ClassifyConfig) -> list[str]:
    """The class names of a run, in label order: from its summary, else from its data."""
    summary = Path(cfg.out) / files.SUMMARY
    if summary.exists():
        import json

        names = json.loads(summary.read_text()).get("classes")
        if names:
            return list(names)
    from convlens.labs.cifar import find_folder, label_names

    names = label_names(find_folder(cfg.data))
    return [names[i] for i in resolve_classes(cfg.classes, names)]


def evaluate_run(folder: str | Path, data: str | None = None) -> dict[str, Any]:
    """Accuracy of a finished run on the test batch of ``data`` (default: the run's),
    with a 95 % bootstrap interval over the test images and per-class accuracy."""
    model, cfg = load_run(folder, finished=True)
    loaded = load_data(data or cfg.data, cfg.classes)
    right = (predict(model, loaded.test_x) == loaded.test_y).double().numpy()  # (M,)
    low, high = bootstrap_interval(right)
    per_class = {}
    for label, name in enumerate(loaded.class_names):
        mine = right[loaded.test_y.numpy() == label]
        per_class[name] = {
            "accuracy": float(mine.mean()) if len(mine) else None,
            "correct": int(mine.sum()),
            "n": len(mine),
        }
    return {
        "run": str(folder),
        "model": cfg.model,
        "accuracy": float(right.mean()),
        "ci95": [low, high],
        "per_class": per_class,
        "n": len(right),
    }
