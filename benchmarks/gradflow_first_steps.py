"""The first optimizer steps of a CIFAR net under ``lab gradflow train``'s recipe, step by
step: why residual56 did not train at lr 0.1 (docs/labs/gradflow.md).

The lab's ``metrics.csv`` has one row per epoch; a net that diverges in its first ten
steps and never recovers shows there only as a loss of ≈ ln 10. This script replays the
lab's first steps — the same net and seed (``build_net``), the same batches and
augmentation, SGD with the same momentum and weight decay, the rate of ``warmed_rate`` —
and records per step the batch's loss and the largest |logit|, for each named setting (a
change of the lab's ``NetConfig``). Run it under the shared lock:

    .venv/bin/python benchmarks/gradflow_first_steps.py \\
        --data ../shared/data/cifar10-10k --pictures docs/labs/img

``--list`` names the settings; ``--read-back`` prints the table and redraws the picture
from the ``first_steps.json`` of an earlier replay in ``--out``, at no cost.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from convlens.labs.gradflow import NetConfig, build_net, warmed_rate
from convlens.labs.runtime.images import augmented_batch, load_data
from convlens.labs.runtime.loop import epoch_permutation
from convlens.render.lab import markdown_table

# name → changes of the lab's NetConfig (--epochs: the schedule replayed, 5 as the degradation runs)
SETTINGS: dict[str, dict[str, Any]] = {
    "lr 0.1": {},  # the paper's rate from the first step
    "constant warm-up": {"warmup_epochs": 1},  # 1 epoch at 0.01, then 0.1 (He et al.)
    "linear warm-up": {"warmup_epochs": 1, "warmup": "linear"},  # 0.01 up to 0.1 (Goyal et al.)
}
NETS = ("residual56", "residual20", "plain56")
SHOWN_STEPS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 60, 77, 78, 79, 80, 82, 85, 90, 100)


def first_steps(cfg: NetConfig, steps: int) -> dict[str, list[float]]:
    """Per optimizer step: the rate, the batch's mean cross-entropy and max |logit|."""
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    data = load_data(cfg.data)
    n = len(data.train_y)
    per_epoch = n // cfg.batch_size
    model = build_net(cfg.arch, cfg.depth, cfg.norm, cfg.seed).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)  # fmt: skip
    record: dict[str, list[float]] = {"lr": [], "loss": [], "max_logit": []}
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        index = epoch_permutation(cfg.seed, epoch, n)[k * cfg.batch_size : (k + 1) * cfg.batch_size]
        x = augmented_batch(data.train_x, index, cfg.seed, epoch, cfg.augment)  # (B, 3, 32, 32)
        rate = warmed_rate(cfg, step, per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = rate
        logits = model(x)  # (B, 10)
        loss = F.cross_entropy(logits, data.train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record["lr"].append(rate)
        record["loss"].append(float(loss.detach()))
        record["max_logit"].append(float(logits.detach().abs().max()))
    return record


def cell(record: dict[str, list[float]], step: int) -> str:
    return (
        f"{record['loss'][step]:.2f} / {record['max_logit'][step]:.1f} ({record['lr'][step]:.3g})"
    )


def plot(path: Path, runs: dict[str, dict[str, list[float]]]) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for label, record in runs.items():
        for ax, key in zip(axes, ("loss", "max_logit", "lr"), strict=True):
            ax.plot(record[key], label=label, linewidth=1)
    for ax, title in zip(axes, ("training loss of the batch", "max |logit| in the batch",
                                "learning rate"), strict=True):  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
    axes[0].axhline(2.302585, color="grey", linestyle=":", linewidth=1)
    axes[0].set_ylim(0, 12)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replay(args: argparse.Namespace, started: float) -> dict[str, dict[str, list[float]]]:
    """Each net × seed × setting of the command line, replayed from its first step."""
    runs: dict[str, dict[str, list[float]]] = {}
    for net in args.nets.split(","):
        arch, depth = net.rstrip("0123456789"), int(net[len(net.rstrip("0123456789")) :])
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in args.settings.split(","):
                cfg = NetConfig(args.data, arch=arch, depth=depth, epochs=args.epochs,
                                seed=seed, threads=args.threads, **SETTINGS[name])  # fmt: skip
                label = f"{net}, seed {seed}, {name}"
                runs[label] = first_steps(cfg, args.steps)
                print(f"{label}: {time.perf_counter() - started:.0f} s", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/cifar10-10k")
    parser.add_argument("--out", default="runs/gradflow/first-steps")
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=5, help="of the schedule replayed")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--read-back", action="store_true", help="table and picture from --out's first_steps.json"
    )
    parser.add_argument("--pictures", help="copy the PNG here as gradflow_<out's name>.png")
    args = parser.parse_args()
    if args.list:
        for name, changes in SETTINGS.items():
            print(f"{name}: {changes or '(the lab defaults)'}")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.read_back:
        runs = json.loads((out / "first_steps.json").read_text())
    else:
        runs = replay(args, started)
        (out / "first_steps.json").write_text(json.dumps(runs, indent=1) + "\n")
    steps = min(len(record["loss"]) for record in runs.values())
    shown = sorted({s for s in SHOWN_STEPS if s < steps} | {steps - 1})  # and the last one
    rows = [{"step": s, **{label: cell(r, s) for label, r in runs.items()}} for s in shown]
    print("\nloss of the batch / max |logit| (learning rate) per optimizer step\n")
    print(markdown_table(rows, ["step", *runs]))
    per_epoch = len(load_data(args.data).train_y) // NetConfig(args.data).batch_size
    if 0 < per_epoch <= steps:  # comparable with the first row of the lab's metrics.csv
        print(f"\nmean loss of the first epoch's {per_epoch} steps (the lab's train_loss):")
        for label, record in runs.items():
            print(f"  {label}: {sum(record['loss'][:per_epoch]) / per_epoch:.4f}")
    plot(out / "first_steps.png", runs)
    if args.pictures:
        (Path(args.pictures) / f"gradflow_{out.name}.png").write_bytes(
            (out / "first_steps.png").read_bytes()
        )
    print(f"\nwall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
