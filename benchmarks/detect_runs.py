"""The detection-lab runs recorded in docs/labs/detect.md: make the data, train, evaluate.

Makes the lab's default data set with ``convlens.labs.detect.make_data`` into ``--data``
(unless it is there), then trains each named run with ``convlens.labs.detect.train`` into
``runs/detect/<name>`` (reused when already measured), evaluates it (``evaluate_run``: COCO
mAP, mAP@0.5, mAP@0.75, per-class AP) and prints one Markdown row with the settings, the
wall time, the process CPU time and the load average (other jobs share the 2 cores). The
target of issue 14: mAP@0.5 ≥ 0.9 on the validation images in ≤ 20 minutes of CPU
training. Run it under the shared lock:

    .venv/bin/python benchmarks/detect_runs.py default

``--list`` shows the named runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from convlens.labs.detect import DetectConfig, evaluate_run, make_data, train

# name → changes to DetectConfig's defaults (the lab's default is "default")
RUNS: dict[str, dict[str, object]] = {
    "default": {},
    "one-anchor": {"num_anchors": 1},
    "no-flips": {"augment": "none"},
    "4-epochs": {"epochs": 4},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def flags(changes: dict[str, object]) -> str:
    """The command-line options of a run's changes: ``--num-anchors 1``."""
    return " ".join(f"`--{key.replace('_', '-')} {value}`" for key, value in changes.items())


def timed(work: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """``work()`` and its wall time, process CPU time and mean load average (start, end)."""
    wall, cpu, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    result = work()
    clocks = {
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": cpu_seconds() - cpu,
        "load_average": (load + os.getloadavg()[0]) / 2,
    }
    return result, clocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=["default"])
    parser.add_argument("--data", default="runs/detect/shapes")
    parser.add_argument("--out", default="runs/detect")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--pictures", help="copy each run's curves and detections PNGs here")
    args = parser.parse_args()
    if args.list:
        for name, changes in RUNS.items():
            print(f"{name}: {changes or 'the defaults'}")
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, {datetime.date.today()}"
    )
    data_record = Path(args.out) / "make_data.json"
    if not (Path(args.data) / "val.json").exists():
        made, clocks = timed(lambda: make_data(args.data))
        data_record.parent.mkdir(parents=True, exist_ok=True)
        data_record.write_text(json.dumps({**made, **clocks}, indent=2) + "\n")
    if data_record.exists():
        made = json.loads(data_record.read_text())
        print(
            f"make-data {made['folder']}: {made['train']} + {made['val']} images, "
            f"{made['boxes']}, wall {made['wall_seconds']:.1f} s, CPU "
            f"{made['cpu_seconds']:.1f} s, load {made['load_average']:.1f}"
        )
    print("| run | changes | epochs | training (s) | wall (s) | CPU (s) | load | mAP@0.5 | "
          "mAP@0.75 | COCO mAP |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.names:
        cfg = dataclasses.replace(
            DetectConfig(data=args.data), out=str(Path(args.out) / name), **RUNS[name]
        )
        saved = Path(cfg.out) / "benchmark.json"  # a measured run is read, not retrained
        record = json.loads(saved.read_text()) if saved.exists() else measure(name, cfg)
        saved.write_text(json.dumps(record, indent=2) + "\n")
        if args.pictures:
            for picture in ("learning_curves", "detections"):
                source = Path(cfg.out) / f"{picture}.png"
                shutil.copyfile(source, Path(args.pictures) / f"detect_{name}_{picture}.png")
        print(
            f"| {name} | {flags(record['changes']) or 'defaults'} | {record['epochs']} "
            f"| {record['train_seconds']:.0f} | {record['wall_seconds']:.0f} "
            f"| {record['cpu_seconds']:.0f} | {record['load_average']:.1f} "
            f"| {record['map50']:.3f} | {record['map75']:.3f} | {record['map']:.3f} |",
            flush=True,
        )


def measure(name: str, cfg: DetectConfig) -> dict[str, object]:
    """Train (or finish) the run, timing it, then evaluate it."""
    resume = (Path(cfg.out) / "config.json").exists()
    result, clocks = timed(lambda: train(cfg, resume=resume, progress_bar=False))
    evaluation = evaluate_run(cfg.out).facts
    return {
        "name": name,
        "changes": RUNS[name],
        "epochs": cfg.epochs,
        "train_seconds": result.train_seconds,
        **clocks,
        **{k: evaluation[k] for k in ("map", "map50", "map75", "per_class", "detections")},
        "metrics": result.metrics,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    main()
