"""``lab gradflow init``: every network at initialisation, on one batch of real images —
the activation std, the activation gradient and the weight gradient of each layer (the
layers and the measures are defined in ``gradflow.py``).

>>> profiles = measure_init(InitConfig(data="../shared/data/cifar10-10k", norm="none",
...                                    init="normal", init_std=0.01))
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from convlens.errors import ArgumentError
from convlens.labs.gradflow import (
    build_net,
    check_batch_for_norm,
    check_net_options,
    first_batch,
    gradient_profile,
    net_name,
    parse_archs,
    parse_depths,
)
from convlens.labs.runtime import files
from convlens.labs.runtime.images import load_data
from convlens.labs.runtime.loop import make_progress

DTYPES = {"float32": torch.float32, "float64": torch.float64}
INIT_FILE = "gradflow_init"  # .json, .md, .png in --out


@dataclass
class InitConfig:
    data: str  # parent of cifar-10-batches-py/ (or that folder itself)
    archs: str = "plain,residual"
    depths: str = "8,20,56"
    norm: str = "batch"  # batch | group | none
    init: str = "kaiming"  # kaiming | xavier | normal
    init_std: float = 0.01  # of init=normal
    batch_size: int = 128
    dtype: str = "float64"  # float64: magnitudes of 1e-50 are measured, not flushed to 0
    seed: int = 0  # the weights and the batch
    out: str = "runs/gradflow/init"
    threads: int = 0


def measure_init(
    cfg: InitConfig, console: Any = None, progress_bar: bool = False
) -> dict[str, Any]:
    """Profiles of every (arch, depth) on one batch; writes ``gradflow_init.json``,
    ``.md`` and ``.png`` into ``cfg.out`` and returns the JSON's content."""
    archs, depths = parse_archs(cfg.archs), parse_depths(cfg.depths)
    check_net_options(cfg.norm, cfg.init, cfg.init_std)
    if cfg.dtype not in DTYPES:
        raise ArgumentError(f"--dtype: '{cfg.dtype}' is not one of {', '.join(DTYPES)}.")
    if cfg.batch_size < 1:
        raise ArgumentError(f"--batch-size must be at least 1 (got {cfg.batch_size}).")
    check_batch_for_norm(cfg.batch_size, cfg.norm, "")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = DTYPES[cfg.dtype]
    images, labels = first_batch(load_data(cfg.data), cfg.batch_size, cfg.seed)
    images = images.to(dtype)
    runs = []
    nets = [(arch, depth) for arch in archs for depth in depths]
    progress = make_progress(console, progress_bar)
    with progress or contextlib.nullcontext():
        if progress is not None:
            task = progress.add_task("networks", total=len(nets), loss=float("nan"), speed=0.0)
        for arch, depth in nets:
            started = time.perf_counter()
            model = build_net(arch, depth, cfg.norm, cfg.seed, cfg.init, cfg.init_std).to(dtype)
            profile = gradient_profile(model, images, labels)
            runs.append(
                {
                    "arch": arch,
                    "depth": depth,
                    "norm": cfg.norm,
                    "init": cfg.init,
                    **({"init_std": cfg.init_std} if cfg.init == "normal" else {}),
                    "params": sum(p.numel() for p in model.parameters()),
                    "loss": profile.loss,
                    "layers": profile.layers,
                    "weight_grad_norm": profile.weight_grad_norm,
                    "activation_grad_norm": profile.activation_grad_norm,
                    "activation_std": profile.activation_std,
                }
            )
            if progress is not None:
                speed = len(labels) / (time.perf_counter() - started)
                progress.update(task, advance=1, loss=profile.loss, speed=speed)
    result = {
        "data": cfg.data,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "dtype": cfg.dtype,
        "activation": "output of each convolution (before its normalisation) and of fc",
        "runs": runs,
    }
    write_init_files(Path(cfg.out), result)
    return result


def ratio(values: Sequence[float]) -> float | None:
    """First layer over last; None when the last is 0 (nothing reached it)."""
    return values[0] / values[-1] if values[-1] else None


def init_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "network": net_name(run["arch"], run["depth"]),
            "norm": run["norm"],
            "init": run["init"] + (f" σ={run['init_std']}" if "init_std" in run else ""),
            "loss": run["loss"],
            "first_weight_grad_norm": run["weight_grad_norm"][0],
            "last_weight_grad_norm": run["weight_grad_norm"][-1],
            "weight_grad_ratio": ratio(run["weight_grad_norm"]),
            "activation_grad_ratio": ratio(run["activation_grad_norm"]),
            "first_activation_std": run["activation_std"][0],
            "last_conv_activation_std": run["activation_std"][-2],
        }
        for run in result["runs"]
    ]


INIT_COLUMNS = ["network", "norm", "init", "loss", "first_weight_grad_norm"]
INIT_COLUMNS += ["last_weight_grad_norm", "weight_grad_ratio", "activation_grad_ratio"]
INIT_COLUMNS += ["first_activation_std", "last_conv_activation_std"]


def write_init_files(out: Path, result: dict[str, Any]) -> None:
    from convlens.labs.gradflow_plots import plot_profiles

    out.mkdir(parents=True, exist_ok=True)
    files.atomic_json(out / f"{INIT_FILE}.json", result)
    title = (
        f"At initialisation: one batch of {result['batch_size']} CIFAR-10 images, seed "
        f"{result['seed']}, {result['dtype']}; ratios are first layer / last layer (fc)"
    )
    files.write_tables(out / INIT_FILE, init_rows(result), INIT_COLUMNS, title)
    plot_profiles(out / f"{INIT_FILE}.png", result["runs"])
