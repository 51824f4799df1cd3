"""The segmentation-lab runs recorded in docs/labs/segment.md: train each, then measure.

Each run trains with ``convlens.labs.segment.train`` into ``runs/segment/<name>`` (read back
when already measured), then evaluates it on its held-out sections and prints one Markdown
row with the settings, the training time, the wall time, the process CPU time and the load
average (other jobs share the 2 cores). Run it under the shared lock:

    flock /tmp/convlens-heavy.lock .venv/bin/python benchmarks/segment_runs.py \\
        --data ../shared/data/isbi2012-em/train default

``--list`` shows the named runs; ``--pictures DIR`` copies each run's PNGs there as
``segment_<name>_<picture>.png``. The fine-tuning runs need a classify run first
(``benchmarks/classify_runs.py default``, or ``--classify RUN``).
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

from convlens.labs.segment import SegmentConfig, evaluate_run, train

# name → changes to SegmentConfig's defaults ("{classify}": the classify run to start from)
FINETUNE = {"epochs": 4, "model": "deeplabv3_cifar?backbone=resnet9&width=32", "crop": 128,
            "batch_size": 8, "repeat": 8, "loss": "ce", "init": "{classify}"}  # fmt: skip
RUNS: dict[str, dict[str, object]] = {
    "default": {},
    "probe-2-epochs": {"epochs": 2},
    "finetune-last-layer": {**FINETUNE, "train_only": ["classifier.4*"], "freeze_bn": True},
    "finetune-head": {**FINETUNE, "train_only": ["classifier.*"], "freeze_bn": True},
    "finetune-whole": FINETUNE,
    "deeplab-scratch": {**FINETUNE, "init": None},
}
PICTURES = ("learning_curves", "predictions", "augmented", "weight_map")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=["default"])
    parser.add_argument("--data", default="../shared/data/isbi2012-em/train")
    parser.add_argument("--out", default="runs/segment")
    parser.add_argument("--classify", default="runs/classify/default")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--pictures", help="copy each run's PNGs here")
    args = parser.parse_args()
    if args.list:
        for name, changes in RUNS.items():
            print(f"{name}: {changes or 'the defaults'}")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    for name in args.names:
        changes = {
            k: v.format(classify=args.classify) if isinstance(v, str) else v
            for k, v in RUNS[name].items()
        }
        cfg = dataclasses.replace(
            SegmentConfig(data=args.data), out=str(Path(args.out) / name), **changes
        )
        saved = Path(cfg.out) / "benchmark.json"  # a measured run is read, not retrained
        record = json.loads(saved.read_text()) if saved.exists() else measure(name, cfg)
        saved.write_text(json.dumps(record, indent=2) + "\n")
        if args.pictures:
            for picture in PICTURES:
                source = Path(cfg.out) / f"{picture}.png"
                if source.exists():
                    shutil.copyfile(source, Path(args.pictures) / f"segment_{name}_{picture}.png")
        print(row(record), flush=True)


def row(record: dict[str, object]) -> str:
    r: dict = record  # type: ignore[assignment]
    return (
        f"| {r['name']} | {r['changes'] or 'defaults'} | {r['epochs']} "
        f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} "
        f"| {r['load_average']:.1f} | {r['pixel_error']:.4f} | {r['rand_error']:.4f} "
        f"| {r['vi']:.3f} | {r['iou']['0']:.3f} / {r['iou']['255']:.3f} "
        f"| {r['baseline']['pixel_error']:.4f} / {r['baseline']['rand_error']:.4f} |"
    )


def measure(name: str, cfg: SegmentConfig) -> dict[str, object]:
    """Train (or finish) the run, timing it, then evaluate it on its validation sections."""
    wall, cpu, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    result = train(cfg, resume=(Path(cfg.out) / "config.json").exists(), progress_bar=False)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    load = (load + os.getloadavg()[0]) / 2
    validation = Path(cfg.out) / "validation"
    held_out = json.loads((Path(cfg.out) / "data.json").read_text())["val"]
    for folder in ("image", "label"):  # the held-out sections as a data folder of their own
        (validation / folder).mkdir(parents=True, exist_ok=True)
        for section in held_out:
            shutil.copyfile(Path(cfg.data) / folder / section, validation / folder / section)
    evaluation = evaluate_run(cfg.out, str(validation))
    summary = json.loads((Path(cfg.out) / "summary.json").read_text())
    return {
        "name": name,
        "changes": RUNS[name],
        "epochs": cfg.epochs,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_average": load,
        "validation_sections": held_out,
        **{k: evaluation[k] for k in ("pixel_error", "rand_error", "vi", "iou", "dice", "n")},
        "baseline": evaluation["baseline"],
        "trainable_params": summary["trainable_params"],
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "predicted_memory": summary["predicted_memory"],
    }


if __name__ == "__main__":
    main()
