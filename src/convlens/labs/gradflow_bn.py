"""What batch normalisation does, measured on real CIFAR-10 images and CIFAR nets:

(a) **scale invariance** (Ioffe & Szegedy 2015 §3.3): BN(a·W·x) = BN(W·x), and the
    gradient with respect to the scaled weights is 1/a times the original one;
(b) **batch size** (Wu & He 2018): how far the batch statistics stray from the population's
    as the batch shrinks, how much one image's normalised output depends on the images
    batched with it, and the test accuracy of short trainings with BatchNorm, GroupNorm and
    no normalisation at each batch size;
(c) **training versus evaluation mode** (Ioffe & Szegedy 2015 §3.1, Algorithm 2): the same
    input through a BN layer normalised by its batch's statistics and by the running
    averages, the difference rebuilt from those statistics, and what it does to accuracy.

The trainings of (b) are runs of ``gradflow.train_net`` in ``--out``/runs (finished ones
are read back); (c) and the spread of (b) use the BatchNorm net trained at the largest batch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.labs.gradflow import (
    NetConfig,
    build_net,
    check_batch_fits,
    check_net_config,
    finished_net,
    first_batch,
    in_training_mode,
    parse_names,
)
from convlens.labs.runtime import files
from convlens.labs.runtime.images import Data, load_data
from convlens.labs.runtime.loop import epoch_generator
from convlens.labs.runtime.stats import bootstrap_interval
from convlens.labs.runtime.sweeps import parse_int_list
from convlens.zoo.cifar_resnet import NORMS

BN_FILE = "gradflow_bn"  # .json, .md, .png in --out
REFERENCE_BATCH = 128  # the learning rate is given at this batch and scaled linearly
SCALE_LAYER = "layer1.0"  # (a): its first block's conv1 → bn1
TINY_EPS = 1e-30  # (a)'s control: ε → 0 (PyTorch refuses ε = 0 in training mode)


@dataclass
class BnConfig:
    data: str
    scales: str = "0.01,0.1,1,10,100"  # (a) the factors a
    batch_sizes: str = "2,8,32,128"  # (b), (c)
    norms: str = "batch,group,none"  # (b)
    depth: int = 8  # (a), (b): the residual nets measured and trained, 6n + 2
    epochs: int = 3  # (b): of every training
    lr: float = 0.1  # (b): at batch 128, scaled by B / 128 (Goyal et al. 2017)
    draws: int = 50  # (b): batches drawn per batch size to measure the spread
    seed: int = 0
    out: str = "runs/gradflow/bn"
    device: str = "auto"
    threads: int = 0


def parse_scales(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ArgumentError(
            f"--scales: '{text}' is not a comma-separated list of numbers (e.g. 0.1,1,10)."
        ) from None
    if not values or any(not v > 0 or not math.isfinite(v) for v in values):
        raise ArgumentError(f"--scales: '{text}' must list positive numbers.")
    return sorted(set(values))


def parse_norms(text: str) -> list[str]:
    return parse_names(text, NORMS, "--norms", "normalisation", f"give some of {', '.join(NORMS)}")


def run_configs(cfg: BnConfig, norms: list[str], sizes: list[int]) -> dict[tuple[str, int], Any]:
    """(b)'s trainings: the residual net of ``cfg.depth`` per (norm, batch size)."""
    configs = {
        (norm, size): NetConfig(
            cfg.data,
            arch="residual",
            depth=cfg.depth,
            norm=norm,
            epochs=cfg.epochs,
            batch_size=size,
            lr=cfg.lr * size / REFERENCE_BATCH,
            seed=cfg.seed,
            out=str(Path(cfg.out) / "runs" / f"{norm}-b{size}"),
            device=cfg.device,
            threads=cfg.threads,
        )
        for norm in norms
        for size in sizes
    }
    for net in configs.values():
        check_net_config(net)
    return configs


def measure_bn(cfg: BnConfig, console: Any = None, progress_bar: bool = True) -> dict[str, Any]:
    """(a), (b) and (c); writes ``gradflow_bn.json``, ``.md`` and ``.png`` into ``cfg.out``."""
    scales = parse_scales(cfg.scales)
    sizes = parse_int_list(cfg.batch_sizes, "--batch-sizes", "2,8,32,128")
    norms = parse_norms(cfg.norms)
    if "batch" not in norms:
        raise ArgumentError(
            "--norms must include batch: (b)'s spread and (c) measure the BatchNorm net."
        )
    if cfg.draws < 2:
        raise ArgumentError(f"--draws must be at least 2 to measure a spread (got {cfg.draws}).")
    configs = run_configs(cfg, norms, sizes)  # checks every training before any starts
    data = load_data(cfg.data)
    for size in sizes:
        check_batch_fits(size, data)

    def stage(text: str) -> None:
        if console is not None:
            console.print(text, markup=False, highlight=False)

    stage(f"(a) scale invariance: a = {', '.join(f'{a:g}' for a in scales)} (float64)")
    scale = scale_invariance(data, scales, cfg.depth, cfg.seed)
    stage(f"(b) {len(configs)} trainings of {cfg.epochs} epochs in {Path(cfg.out) / 'runs'}")
    runs = {key: finished_net(net, console, progress_bar) for key, net in configs.items()}
    largest = max(sizes)
    nets = {norm: load_net(configs[(norm, largest)]) for norm in norms}
    stage(f"(b) batch statistics and batch-mates: {cfg.draws} batches per batch size")
    batch = batch_size_effects(data, nets, configs, runs, sizes, cfg)
    stage("(c) train and eval mode")
    modes = train_and_eval_modes(data, nets["batch"], sizes, cfg.seed)
    result = {
        "settings": {
            "data": cfg.data,
            "seed": cfg.seed,
            "depth": cfg.depth,
            "epochs": cfg.epochs,
            "lr_at_128": cfg.lr,
            "draws": cfg.draws,
        },
        "scale": scale,
        "batch": batch,
        "modes": modes,
    }
    write_bn_files(Path(cfg.out), result)
    return result


# -----------------------------------------------------------------------------
# (a) BN(a·W·x) = BN(W·x); ∂L/∂(aW) = (1/a)·∂L/∂W


def scale_invariance(data: Data, scales: list[float], depth: int, seed: int) -> dict[str, Any]:
    """The residual net of (b) at initialisation (float64) on one batch of 128 training
    images, with its first block's first convolution scaled by each a; training mode."""
    arch = "residual"
    model = build_net(arch, depth, "batch", seed).double()
    images, labels = first_batch(data, min(REFERENCE_BATCH, len(data.train_y)), seed)
    conv: nn.Conv2d = model.get_submodule(f"{SCALE_LAYER}.conv1")  # type: ignore[assignment]
    bn: nn.BatchNorm2d = model.get_submodule(f"{SCALE_LAYER}.bn1")  # type: ignore[assignment]

    def measure(a: float, eps: float = bn.eps) -> dict[str, torch.Tensor]:
        twin = copy.deepcopy(model)
        layer = cast(nn.Conv2d, twin.get_submodule(f"{SCALE_LAYER}.conv1"))
        with torch.no_grad():
            layer.weight.mul_(a)
        cast(nn.BatchNorm2d, twin.get_submodule(f"{SCALE_LAYER}.bn1")).eps = eps
        caught: dict[str, torch.Tensor] = {}
        hooks = [
            layer.register_forward_hook(lambda m, i, o: caught.__setitem__("conv", o.detach())),
            twin.get_submodule(f"{SCALE_LAYER}.bn1").register_forward_hook(
                lambda m, i, o: caught.__setitem__("bn", o.detach().clone())
            ),
        ]
        x = images.double().requires_grad_(True)
        twin.train()
        logits = twin(x)
        loss = F.cross_entropy(logits, labels)
        weight_grad, input_grad = torch.autograd.grad(loss, [layer.weight, x])
        for hook in hooks:
            hook.remove()
        return {
            **caught,
            "logits": logits.detach(),
            "weight_grad": weight_grad,
            "input_grad": input_grad,
        }

    reference = measure(1.0)
    exact = measure(1.0, TINY_EPS)
    variance = reference["conv"].var(dim=(0, 2, 3), correction=0)  # σ²_c of W·x, (C,)
    rows = []
    for a in scales:
        got = reference if a == 1.0 else measure(a)
        control = exact if a == 1.0 else measure(a, TINY_EPS)
        per_channel = got["bn"].std(dim=(0, 2, 3)) / reference["bn"].std(dim=(0, 2, 3))
        # with ε inside the root: BN(aWx) = (Wx − μ) / √(σ² + ε/a²) per channel
        predicted = torch.sqrt((variance + bn.eps) / (variance + bn.eps / a**2))
        rows.append(
            {
                "a": a,
                "bn_output_max_diff": float((got["bn"] - reference["bn"]).abs().max()),
                "logits_max_diff": float((got["logits"] - reference["logits"]).abs().max()),
                "weight_grad_norm": float(got["weight_grad"].norm()),
                "scaled_grad_ratio": float(
                    a * got["weight_grad"].norm() / reference["weight_grad"].norm()
                ),
                "input_grad_max_rel_diff": float(
                    (got["input_grad"] - reference["input_grad"]).abs().max()
                    / reference["input_grad"].abs().max()
                ),
                "output_scale_deviation": float((per_channel - 1).abs().max()),
                "predicted_scale_deviation": float((predicted - 1).abs().max()),
                "tiny_eps_logits_max_diff": float(
                    (control["logits"] - exact["logits"]).abs().max()
                ),
                "tiny_eps_input_grad_max_rel_diff": float(
                    (control["input_grad"] - exact["input_grad"]).abs().max()
                    / exact["input_grad"].abs().max()
                ),
            }
        )
    return {
        "net": f"{arch}{depth} at initialisation, float64, training mode",
        "layer": f"{SCALE_LAYER}.conv1 → {SCALE_LAYER}.bn1",
        "images": len(labels),
        "eps": bn.eps,
        "tiny_eps": TINY_EPS,
        "smallest_channel_variance": float(variance.min()),
        "weight_norm": float(conv.weight.detach().norm()),
        "rows": rows,
    }


# -----------------------------------------------------------------------------
# (b) batch size: statistics, dependence on batch-mates, accuracy


def load_net(cfg: NetConfig) -> nn.Module:
    """The trained weights of a finished run, in eval mode on the CPU."""
    model = build_net(cfg.arch, cfg.depth, cfg.norm, cfg.seed)
    model.load_state_dict(files.load_checkpoint(Path(cfg.out) / files.CHECKPOINT)["model"])
    return model.eval()


def last_norm_layer(model: nn.Module) -> str:
    """The name of the last block's second normalisation (8 × 8 maps: the fewest values
    per channel, so the noisiest batch statistics)."""
    return [name for name, _ in model.named_modules() if name.endswith("bn2")][-1]


@torch.no_grad()
def layer_inputs(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """What ``layer`` receives for ``images`` in eval mode: (N, C, H, W)."""
    caught: list[torch.Tensor] = []
    hook = model.get_submodule(layer).register_forward_pre_hook(
        lambda m, args: caught.append(args[0].detach().clone())
    )
    try:
        model.eval()
        for start in range(0, len(images), 500):
            model(images[start : start + 500])
    finally:
        hook.remove()
    return torch.cat(caught)


def draws_of(seed: int, n: int, size: int, draws: int, stream: int) -> list[torch.Tensor]:
    """``draws`` index sets of ``size`` distinct training images, seeded."""
    g = epoch_generator(seed, 0, 100 + stream)
    return [torch.randperm(n, generator=g)[:size] for _ in range(draws)]


def statistics_spread(
    inputs: torch.Tensor, sizes: list[int], draws: int, seed: int
) -> list[dict[str, float]]:
    """How far the per-channel mean and variance of a batch of B images stray from those of
    every training image, in units of the population's standard deviation (resp. of its
    variance), averaged over the channels."""
    x = inputs.double()  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), correction=0)
    rows = []
    for size in sizes:
        means, variances = [], []
        for index in draws_of(seed, len(x), size, draws, size):
            batch = x[index]
            means.append(batch.mean(dim=(0, 2, 3)))
            variances.append(batch.var(dim=(0, 2, 3), correction=0))
        mean_spread = ((torch.stack(means) - mean) / var.sqrt()).std(0, correction=1).mean()
        var_spread = (torch.stack(variances) / var).std(0, correction=1).mean()
        rows.append(
            {"batch_size": size, "mean_spread": float(mean_spread), "var_spread": float(var_spread)}
        )
    return rows


@torch.no_grad()
def batch_dependence(
    model: nn.Module,
    layer: str,
    probe: torch.Tensor,
    train_x: torch.Tensor,
    sizes: list[int],
    draws: int,
    seed: int,
) -> list[dict[str, float]]:
    """How much one image's normalised output (training mode) changes with the images
    batched with it: the standard deviation over ``draws`` batches of its output at
    ``layer``, element by element, averaged and divided by the output's own std."""
    rows = []
    module = model.get_submodule(layer)
    for size in sizes:
        outputs: list[torch.Tensor] = []
        hook = module.register_forward_hook(lambda m, i, o, kept=outputs: kept.append(o[0].clone()))
        try:
            with in_training_mode(model):
                for index in draws_of(seed, len(train_x), size - 1, draws, 1000 + size):
                    model(torch.cat([probe[None], train_x[index]]))  # (B, 3, 32, 32)
        finally:
            hook.remove()
        stacked = torch.stack(outputs).double()  # (draws, C, H, W)
        dependence = stacked.std(0, correction=1).mean() / stacked[0].std()
        rows.append({"batch_size": size, "dependence": float(dependence)})
    return rows


def batch_size_effects(
    data: Data,
    nets: dict[str, nn.Module],
    configs: dict[tuple[str, int], NetConfig],
    runs: dict[tuple[str, int], dict[str, Any]],
    sizes: list[int],
    cfg: BnConfig,
) -> dict[str, Any]:
    batchnorm = nets["batch"]
    layer = last_norm_layer(batchnorm)
    inputs = layer_inputs(batchnorm, layer, data.train_x)
    probe = data.test_x[0]
    dependence = {
        norm: batch_dependence(
            net, layer, probe, data.train_x, [s for s in sizes if s > 1], cfg.draws, cfg.seed
        )
        for norm, net in nets.items()
    }
    accuracy = []
    for (norm, size), net_cfg in configs.items():
        right = test_correct(load_net(net_cfg), data)
        low, high = bootstrap_interval(right)
        accuracy.append(
            {
                "norm": norm,
                "batch_size": size,
                "lr": net_cfg.lr,
                "train_error": runs[(norm, size)]["train_error"][-1],
                "test_accuracy": float(right.mean()),
                "ci95": [low, high],
            }
        )
    return {
        "layer": f"{layer} (input: {tuple(inputs.shape[1:])} per image)",
        "nets": f"residual{cfg.depth}, trained at batch {max(sizes)}",
        "statistics": statistics_spread(inputs, sizes, cfg.draws, cfg.seed),
        "dependence": dependence,
        "accuracy": accuracy,
    }


@torch.no_grad()
def test_correct(model: nn.Module, data: Data, batch_size: int = 500) -> np.ndarray:
    """(M,) 1.0 where the eval-mode prediction is right."""
    model.eval()
    predicted = torch.cat(
        [
            model(data.test_x[i : i + batch_size]).argmax(1)
            for i in range(0, len(data.test_y), batch_size)
        ]
    )
    return (predicted == data.test_y).double().numpy()


# -----------------------------------------------------------------------------
# (c) one BN layer in training and in evaluation mode


@torch.no_grad()
def train_and_eval_modes(
    data: Data, model: nn.Module, sizes: list[int], seed: int
) -> dict[str, Any]:
    """The first BN layer (after the stem convolution) on the first test images; then the
    whole net evaluated with batch statistics at each batch size against eval mode."""
    bn: nn.BatchNorm2d = model.get_submodule("bn1")  # type: ignore[assignment]
    size = min(REFERENCE_BATCH, len(data.test_y))
    x = layer_inputs(model, "bn1", data.test_x[:size])  # (B, 16, 32, 32)
    layer = copy.deepcopy(bn)
    eval_out = layer.eval()(x)
    if layer.running_mean is None or layer.running_var is None or bn.momentum is None:
        raise RuntimeError("bn1 keeps no running statistics with a momentum")  # built so
    running_mean, running_var = layer.running_mean.clone(), layer.running_var.clone()
    train_out = layer.train()(x)  # normalised by this batch; updates the running averages
    batch_mean = x.mean(dim=(0, 2, 3))
    batch_var = x.var(dim=(0, 2, 3), correction=0)  # biased: what the normalisation divides by
    shape = (1, -1, 1, 1)
    gamma, eps = bn.weight.view(shape), bn.eps  # β is added in both modes: it cancels
    rebuilt_train = (x - batch_mean.view(shape)) / (batch_var.view(shape) + eps).sqrt()
    rebuilt_eval = (x - running_mean.view(shape)) / (running_var.view(shape) + eps).sqrt()
    rebuilt = gamma * (rebuilt_train - rebuilt_eval)  # y_train − y_eval
    m, count = bn.momentum, x.numel() // x.shape[1]
    unbiased = batch_var * count / (count - 1)
    channels = [
        {
            "channel": c,
            "batch_mean": float(batch_mean[c]),
            "running_mean": float(running_mean[c]),
            "batch_var": float(batch_var[c]),
            "running_var": float(running_var[c]),
            "max_diff": float((train_out - eval_out)[:, c].abs().max()),
        }
        for c in range(x.shape[1])
    ]
    accuracy = [
        {"batch_size": s, "train_mode_accuracy": train_mode_accuracy(model, data, s)} for s in sizes
    ]
    eval_accuracy = float(test_correct(model, data).mean())
    return {
        "layer": "bn1 (after the stem convolution)",
        "images": size,
        "momentum": m,
        "max_diff": float((train_out - eval_out).abs().max()),
        "mean_abs_diff": float((train_out - eval_out).abs().mean()),
        "rebuilt_max_error": float((rebuilt - (train_out - eval_out)).abs().max()),
        "running_mean_update_error": float(
            (layer.running_mean - ((1 - m) * running_mean + m * batch_mean)).abs().max()
        ),
        "running_var_update_error": float(
            (layer.running_var - ((1 - m) * running_var + m * unbiased)).abs().max()
        ),
        "channels": channels,
        "eval_mode_accuracy": eval_accuracy,
        "train_mode": accuracy,
    }


@torch.no_grad()
def train_mode_accuracy(model: nn.Module, data: Data, batch_size: int) -> float:
    """Test accuracy when every BN layer normalises by the statistics of consecutive test
    batches of ``batch_size`` (a last batch of one image joins the one before it)."""
    n = len(data.test_y)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    bounds = [*starts[1:], n]
    correct = 0
    with in_training_mode(model):
        for start, end in zip(starts, bounds, strict=True):
            predicted = model(data.test_x[start:end]).argmax(1)
            correct += int((predicted == data.test_y[start:end]).sum())
    return correct / n


# -----------------------------------------------------------------------------
# files


def bn_tables(result: dict[str, Any]) -> str:
    """The three Markdown tables of ``gradflow_bn.md``."""
    from convlens.render.lab import markdown_table

    scale = result["scale"]
    batch = result["batch"]
    modes = result["modes"]
    parts = [
        markdown_table(
            scale["rows"],
            [
                "a",
                "bn_output_max_diff",
                "output_scale_deviation",
                "predicted_scale_deviation",
                "logits_max_diff",
                "weight_grad_norm",
                "scaled_grad_ratio",
                "input_grad_max_rel_diff",
                "tiny_eps_logits_max_diff",
                "tiny_eps_input_grad_max_rel_diff",
            ],
            f"(a) {scale['layer']} of {scale['net']}, {scale['images']} images, ε = "
            f"{scale['eps']}; smallest channel variance of W·x "
            f"{scale['smallest_channel_variance']:.3g}; the last two columns: the same with "
            f"ε = {scale['tiny_eps']:g}",
        ),
    ]
    norms = list(batch["dependence"])
    sizes = [row["batch_size"] for row in batch["statistics"]]
    rows = []
    for size in sizes:
        row: dict[str, Any] = {"batch_size": size}
        stats = next(r for r in batch["statistics"] if r["batch_size"] == size)
        row["mean_spread"], row["var_spread"] = stats["mean_spread"], stats["var_spread"]
        for norm in norms:
            dep = [r for r in batch["dependence"][norm] if r["batch_size"] == size]
            row[f"{norm}_dependence_spread"] = dep[0]["dependence"] if dep else None
            acc = next(r for r in batch["accuracy"] if (r["norm"], r["batch_size"]) == (norm, size))
            row[f"{norm}_accuracy"] = acc["test_accuracy"]
            row[f"{norm}_interval"] = f"{100 * acc['ci95'][0]:.1f} – {100 * acc['ci95'][1]:.1f} %"
        rows.append(row)
    columns = ["batch_size", "mean_spread", "var_spread"]
    columns += [f"{n}_dependence_spread" for n in norms]
    columns += [c for n in norms for c in (f"{n}_accuracy", f"{n}_interval")]
    parts.append(
        markdown_table(
            rows,
            columns,
            f"(b) batch statistics at {batch['layer']} of {batch['nets']}; accuracies: "
            f"{result['settings']['epochs']} epochs per run, lr 0.1·B/128",
        )
    )
    channels = modes["channels"][:4]
    parts.append(
        markdown_table(
            channels,
            ["channel", "batch_mean", "running_mean", "batch_var", "running_var", "max_diff"],
            f"(c) {modes['layer']}, {modes['images']} test images: train mode − eval mode "
            f"max {modes['max_diff']:.3g}, rebuilt from the statistics to "
            f"{modes['rebuilt_max_error']:.2g}; eval-mode accuracy "
            f"{100 * modes['eval_mode_accuracy']:.2f} %",
        )
    )
    parts.append(
        markdown_table(
            [
                {
                    "batch_size": r["batch_size"],
                    "train_mode_accuracy": r["train_mode_accuracy"],
                    "eval_mode_accuracy": modes["eval_mode_accuracy"],
                }
                for r in modes["train_mode"]
            ],
            ["batch_size", "train_mode_accuracy", "eval_mode_accuracy"],
            "(c) the whole net on the test images: normalised by each test batch's statistics "
            "(train mode) or by the running averages (eval mode)",
        )
    )
    return "\n".join(parts)


def write_bn_files(out: Path, result: dict[str, Any]) -> None:
    from convlens.labs.gradflow_plots import plot_bn

    out.mkdir(parents=True, exist_ok=True)
    files.atomic_json(out / f"{BN_FILE}.json", result)
    files.atomic_text(out / f"{BN_FILE}.md", bn_tables(result))
    plot_bn(out / f"{BN_FILE}.png", result)
