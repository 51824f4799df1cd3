"""The classification-lab runs recorded in docs/labs/classify.md: train each, then measure.

Each run trains with ``convlens.labs.classify.train`` into ``runs/classify/<name>`` (reused
when already finished), then evaluates it (accuracy with its 95 % bootstrap interval) and
prints one Markdown row with the settings, the training wall time, the process CPU time and
the load average (other jobs share the 2 cores). Run it under the shared lock:

    .venv/bin/python benchmarks/classify_runs.py \\
        --data ../shared/data/cifar10-10k default

``--list`` shows the named runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import torch

from convlens.labs.classify import ClassifyConfig, evaluate_run, train

# name → changes to ClassifyConfig's defaults (the lab's default is "default")
RUNS: dict[str, dict[str, object]] = {
    "default": {},
    "resnet20": {"model": "cifar_resnet20", "lr": 0.1},
    "resnet9-w32-noaug": {"augment": "none"},
    # transfer learning from the default run to cat vs dog ("{out}": the --out folder)
    **{
        f"cat-dog-{name}": {
            "classes": "cat,dog", "epochs": 5, "lr": 0.05, "init": "{out}/default",
            "init_exclude": ["fc.*"], "train_only": patterns, "freeze_bn": bool(patterns),
        }
        for name, patterns in (
            ("head", ["fc.*"]), ("last-stage", ["res3.*", "fc.*"]), ("whole", [])
        )
    },
    "cat-dog-scratch": {"classes": "cat,dog", "epochs": 5},
}  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=["default"])
    parser.add_argument("--data", default="../shared/data/cifar10-10k")
    parser.add_argument("--out", default="runs/classify")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--pictures", help="copy each run's curves, confusion and misclassified PNGs here"
    )
    args = parser.parse_args()
    if args.list:
        for name, changes in RUNS.items():
            print(f"{name}: {changes or 'the defaults'}")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    for name in args.names:
        changes = {
            k: v.format(out=args.out) if isinstance(v, str) else v for k, v in RUNS[name].items()
        }
        cfg = dataclasses.replace(
            ClassifyConfig(data=args.data), out=str(Path(args.out) / name), **changes
        )
        saved = Path(cfg.out) / "benchmark.json"  # a measured run is read, not retrained
        record = json.loads(saved.read_text()) if saved.exists() else measure(name, cfg)
        saved.write_text(json.dumps(record, indent=2) + "\n")
        if args.pictures:
            for picture in ("learning_curves", "confusion", "misclassified"):
                source = Path(cfg.out) / f"{picture}.png"
                shutil.copyfile(source, Path(args.pictures) / f"classify_{name}_{picture}.png")
        low, high = record["ci95"]
        print(
            f"| {name} | {record['changes'] or 'defaults'} | {record['epochs']} "
            f"| {record['train_seconds']:.0f} | {record['wall_seconds']:.0f} "
            f"| {record['cpu_seconds']:.0f} | {record['load_average']:.1f} "
            f"| {100 * record['accuracy']:.1f} % | {100 * low:.1f} – {100 * high:.1f} % |",
            flush=True,
        )


def measure(name: str, cfg: ClassifyConfig) -> dict[str, object]:
    """Train (or finish) the run, timing it, then evaluate it."""
    wall, cpu, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    result = train(cfg, resume=(Path(cfg.out) / "config.json").exists(), progress_bar=False)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    load = (load + os.getloadavg()[0]) / 2
    evaluation = evaluate_run(cfg.out)
    summary = json.loads((Path(cfg.out) / "summary.json").read_text())
    return {
        "name": name,
        "changes": RUNS[name],
        "epochs": cfg.epochs,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_average": load,
        "accuracy": evaluation["accuracy"],
        "ci95": evaluation["ci95"],
        "per_class": evaluation["per_class"],
        "trainable_params": summary["trainable_params"],
        "predicted_memory": summary["predicted_memory"],
    }


if __name__ == "__main__":
    main()
