"""Gradient-flow lab: how gradients pass through deep plain and residual CIFAR nets, at
initialisation and over training (He et al. 2016 §4.2), on real CIFAR-10 images.

``train`` trains plain nets and ResNets and records each layer's gradient norm at every
step; ``init`` (in ``gradflow_init.py``) measures one forward and backward pass per
network, ``bn`` (in ``gradflow_bn.py``) what batch normalisation does. The run folders, resume,
Ctrl-C, metrics and progress come from ``convlens.labs.runtime``.

**A layer** is a weighted layer as He et al. count them — each convolution and the final
fully connected layer, 6n + 2 of them — named as in the module (``layer2.0.conv1``, ``fc``).
**Its activation** is that layer's output: the convolution's output before the
normalisation that follows it (the logits for ``fc``). Its *activation std* is the standard
deviation over all N·C·H·W values of the batch, its *activation gradient* ∂L/∂(output) and
its *weight gradient* ∂L/∂W, both as Frobenius norms, for L the batch's mean cross-entropy.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.runtime import files
from convlens.labs.runtime.distributed import Dist
from convlens.labs.runtime.images import Data, augmented_batch, load_data
from convlens.labs.runtime.loop import (
    SCHEDULES,
    LabInfo,
    Recipe,
    RunResult,
    check_common,
    epoch_permutation,
    fit,
    open_run,
    scheduled_lab,
    scheduled_rate,
)
from convlens.labs.runtime.metrics import evaluate_classifier
from convlens.labs.runtime.sweeps import finished_run, parse_int_list
from convlens.zoo.cifar_resnet import CifarResNet, check_depth, check_options

ARCHS = ("plain", "residual")
WARMUPS = ("constant", "linear")  # He et al. 2016 §4.2; Goyal et al. 2017 §2.2
AUGMENTS = ("none", "flip", "flip,crop")
WEIGHTED = (nn.Conv2d, nn.Linear)
TRAIN_FILE = "gradflow_train"


@dataclass(frozen=True)
class GradflowLab(LabInfo):
    """Runs of this lab are trained by ``train`` or ``bn`` into sub-folders of one --out."""

    def resume_command(self, out: Path) -> str:
        return (
            f"the same convlens lab gradflow command with --out {out.parent} (finished runs "
            f"are read back and {out.name} resumes)"
        )


LAB = GradflowLab("gradflow", "a gradflow training run folder")

# -----------------------------------------------------------------------------
# checks shared by the commands


def parse_names(text: str, allowed: Sequence[str], flag: str, what: str, choices: str) -> list[str]:
    """``"a,b"`` → the names, in the order given, each once; all of them in ``allowed``."""
    names = list(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    unknown = [a for a in names if a not in allowed]
    if unknown or not names:
        raise ArgumentError(
            f"{flag}: unknown {what} '{unknown[0] if unknown else text}'; {choices} "
            "(comma-separated)."
        )
    return names


def parse_archs(text: str) -> list[str]:
    choices = f"the CIFAR nets of He et al. 2016 §4.2 come as {' and '.join(ARCHS)}"
    return parse_names(text, ARCHS, "--archs", "architecture", choices)


def parse_depths(text: str) -> list[int]:
    """``"8,20,56"`` → sorted depths, each of the form 6n + 2."""
    depths = parse_int_list(text, "--depths", "8,20,56")
    for depth in depths:
        try:
            check_depth(depth)
        except ValueError as err:
            raise ArgumentError(
                f"--depths: {depth} is not a depth of the CIFAR nets of He et al. 2016 §4.2: {err}."
            ) from None
    return depths


def check_net_options(norm: str, init: str, init_std: float) -> None:
    try:
        check_options(norm, init, init_std)
    except ValueError as err:
        raise ArgumentError(f"--{str(err).replace('_', '-')}.") from None


def check_batch_for_norm(batch_size: int, norm: str, where: str) -> None:
    """BatchNorm in training normalises each channel over the batch: one image is no batch."""
    if norm == "batch" and batch_size < 2:
        raise ArgumentError(
            f"--batch-size {batch_size}: BatchNorm in training mode normalises every channel "
            f"with the statistics of the batch{where}; one image would be normalised by its own "
            "statistics alone. Use at least 2, or --norm group or none."
        )


def build_net(
    arch: str, depth: int, norm: str, seed: int, init: str = "kaiming", init_std: float = 0.01
) -> CifarResNet:
    """The CIFAR net of He et al. 2016 §4.2; the same seed gives a plain net and its
    residual twin identical weights (the shortcuts have none)."""
    torch.manual_seed(seed)
    return CifarResNet(depth, arch == "residual", 10, True, norm, init, init_std)


def net_name(arch: str, depth: int) -> str:
    return f"{arch}{depth}"


# -----------------------------------------------------------------------------
# one forward and backward pass, recorded per layer


@contextlib.contextmanager
def in_training_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Training mode (normalisation by batch statistics) without its side effect: the
    BatchNorm running statistics, and the mode, are put back afterwards."""
    saved = [b.clone() for b in model.buffers()]
    was_training = model.training
    try:
        yield model.train()
    finally:
        model.train(was_training)
        with torch.no_grad():
            for buffer, before in zip(model.buffers(), saved, strict=True):
                buffer.copy_(before)


@dataclass(frozen=True)
class LayerProfile:
    """Per weighted layer, in forward order (see the module docstring for the definitions)."""

    layers: list[str]
    activation_std: list[float]
    activation_grad_norm: list[float]
    weight_grad_norm: list[float]
    loss: float


def gradient_profile(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> LayerProfile:
    """One forward and backward pass of the mean cross-entropy in training mode.

    Forward hooks catch each weighted layer's output as it is computed and hand the rest
    of the network a clone of it, so a later in-place ReLU (right after a convolution when
    there is no normalisation) changes the clone, not the tensor whose gradient is asked
    for. Gradients come from ``torch.autograd.grad``: nothing lands in ``.grad``. The hooks
    are removed and the BatchNorm running statistics restored afterwards, so the model is
    left as it was and a second call gives the same numbers.
    """
    names: dict[nn.Module, str] = {
        m: name for name, m in model.named_modules() if isinstance(m, WEIGHTED)
    }
    seen: list[tuple[str, nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        seen.append((names[module], module, output))
        return output.clone()

    handles = [m.register_forward_hook(record) for m in names]
    try:
        with in_training_mode(model):
            loss = F.cross_entropy(model(images), labels)
            outputs = [output for _, _, output in seen]
            weights = [cast(torch.Tensor, module.weight) for _, module, _ in seen]  # conv/linear
            grads = torch.autograd.grad(loss, [*outputs, *weights])
    finally:
        for handle in handles:
            handle.remove()
    k = len(seen)
    return LayerProfile(
        layers=[name for name, _, _ in seen],
        activation_std=[float(o.detach().std(correction=0)) for o in outputs],
        activation_grad_norm=[float(g.norm()) for g in grads[:k]],
        weight_grad_norm=[float(g.norm()) for g in grads[k:]],
        loss=float(loss.detach()),
    )


# -----------------------------------------------------------------------------
# one batch of real images (init and bn)


def check_batch_fits(batch_size: int, data: Data) -> None:
    n = len(data.train_y)
    if batch_size > n:
        raise ArgumentError(
            f"--batch-size {batch_size} is larger than the training set ({n} images)."
        )


def first_batch(data: Data, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` training images drawn by the seed: (B, 3, 32, 32), (B,)."""
    n = len(data.train_y)
    check_batch_fits(batch_size, data)
    index = epoch_permutation(seed, 0, n)[:batch_size]
    return data.train_x[index], data.train_y[index]


# -----------------------------------------------------------------------------
# one training run (the runtime's config): a CIFAR net, per-layer gradient norms per step


@dataclass
class NetConfig:
    """One network trained on CIFAR-10; saved as ``config.json`` in its run folder."""

    data: str
    arch: str = "plain"
    depth: int = 20
    norm: str = "batch"
    epochs: int = 15
    batch_size: int = 128  # as He et al. 2016 §4.2
    lr: float = 0.1  # as §4.2
    momentum: float = 0.9
    weight_decay: float = 1e-4  # as §4.2
    lr_schedule: str = "cosine"  # cosine | constant | onecycle
    warmup_epochs: int = 0  # epochs before the schedule (see warmed_rate)
    warmup_lr: float = 0.01  # as §4.2 for ResNet-110
    warmup: str = "constant"  # constant (§4.2) | linear (from warmup_lr up to lr)
    augment: str = "flip,crop"  # as §4.2: flips and 4-pixel pad-crops
    seed: int = 0
    out: str = ""
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/gradflow/{self.model}"

    @property
    def model(self) -> str:  # the name the runtime prints
        return net_name(self.arch, self.depth)


def check_net_config(cfg: NetConfig) -> None:
    parse_archs(cfg.arch)
    parse_depths(str(cfg.depth))
    check_net_options(cfg.norm, "kaiming", 0.01)
    for flag, value, allowed in (
        ("--augment", cfg.augment, AUGMENTS),
        ("--lr-schedule", cfg.lr_schedule, SCHEDULES),
        ("--warmup", cfg.warmup, WARMUPS),
    ):
        if value not in allowed:
            raise ArgumentError(f"{flag}: '{value}' is not one of {', '.join(allowed)}.")
    check_common(cfg)
    for flag, number in (("--weight-decay", cfg.weight_decay), ("--momentum", cfg.momentum)):
        if not 0 <= number < 1:
            raise ArgumentError(f"{flag} must be in [0, 1) (got {number}).")
    if not 0 <= cfg.warmup_epochs < cfg.epochs:
        raise ArgumentError(
            f"--warmup-epochs must be between 0 and --epochs − 1 = {cfg.epochs - 1} (got "
            f"{cfg.warmup_epochs}): the schedule needs at least one epoch after the warm-up."
        )
    if not cfg.warmup_lr > 0:
        raise ArgumentError(f"--warmup-lr must be positive (got {cfg.warmup_lr}).")
    check_batch_for_norm(cfg.batch_size, cfg.norm, " at every step")


def warmed_rate(cfg: NetConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate of global step ``step`` (0-based): over the first
    ``warmup_epochs`` epochs ``warmup_lr`` (``constant``) or a line from ``warmup_lr`` up
    towards ``lr`` (``linear``: step k of w gets warmup_lr + (lr − warmup_lr)·k/w), then
    ``lr_schedule`` from ``lr`` over the remaining epochs.

    Why: He et al. 2016 §4.2 find lr 0.1 "slightly too large to start converging" for
    ResNet-110 and train it at 0.01 until the training error is below 80 % (about 400
    iterations), then go back to 0.1; Goyal et al. 2017 §2.2 find that such a sudden
    jump can make the training error spike and ramp the rate up gradually instead. A pure
    function of the step, so a resumed run sets exactly the rate it would have had.
    """
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        if cfg.warmup == "linear":
            return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / warm
        return cfg.warmup_lr
    return scheduled_rate(cfg.lr_schedule, cfg.lr, step - warm, steps_per_epoch * cfg.epochs - warm)


def warmup_note(epochs: int, lr: float, kind: str) -> str:
    """``", warm-up 1 epoch at lr 0.01"``, ``", linear warm-up 2 epochs from lr 0.01"``, or
    nothing without a warm-up."""
    if not epochs:
        return ""
    length = f"{epochs} epoch{'s' if epochs > 1 else ''}"
    if kind == "linear":
        return f", linear warm-up {length} from lr {lr}"
    return f", warm-up {length} at lr {lr}"


def weight_names(model: nn.Module) -> list[str]:
    """The weighted layers in module order (their forward order in these nets)."""
    return [name for name, m in model.named_modules() if isinstance(m, WEIGHTED)]


def grad_key(layer: str) -> str:
    return f"grad_norm.{layer}"


def train_net(
    cfg: NetConfig, resume: bool = False, console: Any = None, progress_bar: bool = True
) -> RunResult:
    """Train one net into ``cfg.out`` (or continue it); metrics per epoch include the mean
    over the epoch's steps of each layer's weight-gradient norm (``grad_norm.<layer>``)."""
    check_net_config(cfg)
    lab, note = scheduled_lab(LAB, cfg.lr_schedule)
    opened = open_run(cfg, lab, resume, note)
    out, device = Path(cfg.out), opened.device
    data = load_data(cfg.data)
    n_train = len(data.train_y)
    check_batch_fits(cfg.batch_size, data)
    model = build_net(cfg.arch, cfg.depth, cfg.norm, cfg.seed).to(device)
    layers = [(name, module.weight) for name, module in model.named_modules()
              if isinstance(module, WEIGHTED)]  # fmt: skip
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    steps = n_train // cfg.batch_size

    def step(net: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
        x = augmented_batch(train_x, index, cfg.seed, epoch, cfg.augment)  # (B, 3, 32, 32)
        y = train_y[index.to(device)]  # (B,)
        logits = net(x)  # (B, 10)
        loss = F.cross_entropy(logits, y)
        return loss, {"correct": (logits.argmax(1) == y).sum()}

    def gradient_norms(net: nn.Module) -> dict[str, torch.Tensor]:
        # ‖∂L/∂W‖ of each layer at this step, before the optimizer (and weight decay) acts
        return {grad_key(name): _grad(weight).detach().norm() for name, weight in layers}

    def evaluate(net: nn.Module, dist: Dist) -> dict[str, float]:
        loss, accuracy = evaluate_classifier(net, test_x, test_y, dist)
        return {"test_loss": loss, "test_accuracy": accuracy}

    def describe(dist: Dist, device: torch.device) -> str:
        params = sum(p.numel() for p in model.parameters())
        warm = warmup_note(cfg.warmup_epochs, cfg.warmup_lr, cfg.warmup)
        return (
            f"{n_train} training / {len(test_y)} test images, {params:,} parameters, norm "
            f"{cfg.norm}, batch {cfg.batch_size}, lr {cfg.lr} ({cfg.lr_schedule}{warm}), "
            f"{cfg.epochs} epochs, device {device} → {out}"
        )

    def epoch_line(row: dict[str, float]) -> str:
        first, last = row[grad_key(layers[0][0])], row[grad_key(layers[-1][0])]
        return (
            f"train error {100 * (1 - row['train_accuracy']):5.2f}%  test error "
            f"{100 * (1 - row['test_accuracy']):5.2f}%  ‖∂L/∂W‖ first {first:.2e} last {last:.2e}"
        )

    def summary(metrics: list[dict[str, float]], seconds: float) -> dict[str, Any]:
        return net_summary(cfg, [name for name, _ in layers], metrics, model)

    recipe = Recipe(
        lab=lab,
        config=cfg,
        model=model,
        optimizer=optimizer,
        step=step,
        evaluate=evaluate,
        n_train=n_train,
        describe=describe,
        epoch_line=epoch_line,
        lr_at=lambda s: warmed_rate(cfg, s, steps),
        per_image={"correct": "train_accuracy"},
        after_backward=gradient_norms,
        per_step={grad_key(name): grad_key(name) for name, _ in layers},
        summary=summary,
    )
    return fit(recipe, opened, console, progress_bar)


def net_summary(
    cfg: NetConfig, layers: list[str], metrics: list[dict[str, float]], model: nn.Module
) -> dict[str, Any]:
    """What one run contributes to a command's JSON: errors and gradient norms per epoch
    (no timings, so the same seed gives the same summary)."""
    return {
        "arch": cfg.arch,
        "depth": cfg.depth,
        "norm": cfg.norm,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "epochs": len(metrics),
        "params": sum(p.numel() for p in model.parameters()),
        "train_error": [1 - m["train_accuracy"] for m in metrics],
        "test_error": [1 - m["test_accuracy"] for m in metrics],
        "train_loss": [m["train_loss"] for m in metrics],
        "test_loss": [m["test_loss"] for m in metrics],
        "layers": layers,
        "weight_grad_norm": [[m[grad_key(name)] for name in layers] for m in metrics],
    }


def finished_net(cfg: NetConfig, console: Any = None, progress_bar: bool = True) -> dict[str, Any]:
    """Train, resume or read back one run; its summary (``net_summary``) with the epochs'
    seconds beside it (``epoch_seconds``, left out of the JSON)."""
    metrics = finished_run(cfg, LAB, train_net, console, progress_bar).metrics[: cfg.epochs]
    net = build_net(cfg.arch, cfg.depth, cfg.norm, cfg.seed)
    summary = net_summary(cfg, weight_names(net), metrics, net)
    return {**summary, "epoch_seconds": [m["epoch_seconds"] for m in metrics]}


# -----------------------------------------------------------------------------
# train: plain nets and ResNets of several depths — the degradation problem


def train_nets(
    base: NetConfig,
    archs: str,
    depths: str,
    out: str,
    console: Any = None,
    progress_bar: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run of ``base`` per (arch, depth) in ``out/<arch><depth>/``; finished runs are
    read back, unfinished ones resumed. Writes ``gradflow_train.json``, ``.md``, ``.png``;
    returns the JSON's content and the runs with their epochs' seconds."""
    nets = [(a, d) for a in parse_archs(archs) for d in parse_depths(depths)]
    configs = [
        dataclasses.replace(base, arch=a, depth=d, out=str(Path(out) / net_name(a, d)))
        for a, d in nets
    ]
    data = load_data(base.data)
    for cfg in configs:  # every configuration is checked before the first one trains
        check_net_config(cfg)
        check_batch_fits(cfg.batch_size, data)
    runs = [finished_net(cfg, console, progress_bar) for cfg in configs]
    settings = {k: v for k, v in dataclasses.asdict(base).items()
                if k not in ("arch", "depth", "out", "device", "threads")}  # fmt: skip
    result = {
        "settings": settings,
        "runs": [{k: v for k, v in run.items() if k != "epoch_seconds"} for run in runs],
        "paper": PAPER_CLAIM,
    }
    write_train_files(Path(out), result, runs)
    return result, runs


# He et al. 2016 §4.2 and Fig. 6, on the full 50,000 training images (64k iterations of 128)
PAPER_CLAIM: dict[str, Any] = {
    "source": "He et al. 2016, Deep Residual Learning for Image Recognition, §4.2, Fig. 6, Table 6",
    "claim": "the deeper plain net has higher training error throughout training (plain-56 "
    "above plain-20: the degradation problem); the deeper ResNet has lower training and test "
    "error than the shallower one",
    "resnet_test_error": {"20": 0.0875, "32": 0.0751, "44": 0.0717, "56": 0.0697, "110": 0.0643},
}


def _grad(weight: torch.Tensor) -> torch.Tensor:
    """A weight's gradient after the backward pass (every layer of these nets gets one)."""
    if weight.grad is None:
        raise RuntimeError("a weight without a gradient after backward")
    return weight.grad


def train_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        paper = PAPER_CLAIM["resnet_test_error"].get(str(run["depth"]))
        rows.append(
            {
                "network": net_name(run["arch"], run["depth"]),
                "params": run["params"],
                "epochs": run["epochs"],
                "final_train_error": run["train_error"][-1],
                "final_test_error": run["test_error"][-1],
                "best_test_error": min(run["test_error"]),
                "first_layer_grad": run["weight_grad_norm"][-1][0],
                "last_layer_grad": run["weight_grad_norm"][-1][-1],
                "epoch_seconds": sum(run["epoch_seconds"]) / max(len(run["epoch_seconds"]), 1),
                "paper_test_error": paper if run["arch"] == "residual" else None,
            }
        )
    return rows


TRAIN_COLUMNS = ["network", "params", "epochs", "final_train_error", "final_test_error"]
TRAIN_COLUMNS += ["best_test_error", "first_layer_grad", "last_layer_grad", "epoch_seconds"]
TRAIN_COLUMNS += ["paper_test_error"]


def write_train_files(out: Path, result: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    from convlens.labs.gradflow_plots import plot_training

    out.mkdir(parents=True, exist_ok=True)
    files.atomic_json(out / f"{TRAIN_FILE}.json", result)
    s = result["settings"]
    warm = warmup_note(s["warmup_epochs"], s["warmup_lr"], s["warmup"])
    title = (
        f"{len(runs[0]['train_error'])} epochs on {s['data']}, batch {s['batch_size']}, lr "
        f"{s['lr']} ({s['lr_schedule']}{warm}), norm {s['norm']}, augment {s['augment']}, seed "
        f"{s['seed']}; gradient norms: mean over the last epoch's steps; paper: full CIFAR-10"
    )
    files.write_tables(out / TRAIN_FILE, train_rows(runs), TRAIN_COLUMNS, title)
    plot_training(out / f"{TRAIN_FILE}.png", result["runs"], title.split(";")[0])
