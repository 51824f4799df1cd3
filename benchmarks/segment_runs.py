"""The segmentation-lab runs recorded in docs/labs/segment.md: train each, then measure.

Each run trains with ``convlens.labs.segment.train`` into ``runs/segment/<name>`` (read back
when already measured), then evaluates it on its held-out sections and prints one Markdown
row with the settings, the training time, the wall time, the process CPU time and the load
average (other jobs share the 2 cores). Run it under the shared lock:

    .venv/bin/python benchmarks/segment_runs.py \\
        --data ../shared/data/isbi2012-em/train default

``--list`` shows the named runs; ``--pictures DIR`` copies each run's PNGs there as
``segment_<name>_<picture>.png``. ``cifar-backbone`` trains the classification run
(ResNet-20 on ../shared/data/cifar10-10k, ``--cifar``) that ``finetune`` starts from;
``finetune`` is ``convlens lab segment finetune``: the last layer, the head and the whole
DeepLabv3 trained from it, one table.
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

from convlens.labs import seg_data
from convlens.labs.runtime.loop import LabInfo
from convlens.labs.seg_finetune import compare_finetuning
from convlens.labs.seg_pictures import write_predictions
from convlens.labs.seg_results import evaluate_run, load_run
from convlens.labs.segment import SegmentConfig, tile_side, train
from convlens.labs.tiling import predict_averaged

# name → changes to SegmentConfig's defaults ("{out}": the --out folder)
FINETUNE = {"epochs": 4, "model": "deeplabv3_cifar?backbone=resnet20", "crop": 128,
            "batch_size": 8, "repeat": 8, "loss": "ce", "init": "{out}/cifar-backbone"}  # fmt: skip
RUNS: dict[str, dict[str, object]] = {
    "default": {},  # 60 epochs since the default changed from 30
    "epochs-30": {"epochs": 30},  # the default before
    "epochs-50": {"epochs": 50},
    "epochs-60": {"epochs": 60},
    "ce-epochs-50": {"epochs": 50, "loss": "ce"},
    "valid-unet": {
        "model": "unet_valid?width=16&depth=4&batch_norm=true",
        "crop": 196,
        "epochs": 15,
    },
    "finetune": FINETUNE,  # three runs: finetune/last-layer, finetune/head, finetune/whole
    "deeplab-scratch": {**FINETUNE, "init": None},
}
BACKBONE = {"model": "cifar_resnet20", "lr": 0.1, "epochs": 6}  # lab classify, ResNet-20
PICTURES = ("learning_curves", "predictions", "predictions_averaged", "augmented", "weight_map")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=["default"])
    parser.add_argument("--data", default="../shared/data/isbi2012-em/train")
    parser.add_argument("--out", default="runs/segment")
    parser.add_argument("--cifar", default="../shared/data/cifar10-10k")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--pictures", help="copy each run's PNGs here")
    args = parser.parse_args()
    if args.list:
        for name, changes in RUNS.items():
            print(f"{name}: {changes or 'the defaults'}")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    for name in args.names:
        if name == "cifar-backbone":
            cifar_backbone(args.cifar, Path(args.out) / name)
            continue
        changes = {
            k: v.format(out=args.out) if isinstance(v, str) else v for k, v in RUNS[name].items()
        }
        cfg = dataclasses.replace(
            SegmentConfig(data=args.data), out=str(Path(args.out) / name), **changes
        )
        if name == "finetune":
            finetune(cfg)
            continue
        saved = Path(cfg.out) / "benchmark.json"  # a measured run is read, not retrained
        record = json.loads(saved.read_text()) if saved.exists() else measure(name, cfg)
        if "averaged" not in record:  # runs measured before evaluate averaged orientations
            record["averaged"] = score_averaged(cfg.out)
        saved.write_text(json.dumps(record, indent=2) + "\n")
        if args.pictures:
            for picture in PICTURES:
                source = Path(cfg.out) / f"{picture}.png"
                if source.exists():
                    shutil.copyfile(source, Path(args.pictures) / f"segment_{name}_{picture}.png")
        print(row(record), flush=True)


def cifar_backbone(data: str, out: Path) -> None:
    """The classification run whose ResNet-20 the fine-tuning runs start from."""
    from convlens.labs.classify import ClassifyConfig
    from convlens.labs.classify import evaluate_run as evaluate_classifier
    from convlens.labs.classify import train as train_classifier
    from convlens.labs.runtime.loop import run_or_reuse

    cfg = dataclasses.replace(ClassifyConfig(data=data), out=str(out), **BACKBONE)  # type: ignore[arg-type]
    wall = time.perf_counter()
    result = run_or_reuse(cfg, LabInfo("classify", "a classify run folder"), train_classifier)
    accuracy = evaluate_classifier(out)["accuracy"]
    print(
        f"cifar-backbone: {BACKBONE}, {result.train_seconds:.0f} s of training "
        f"({time.perf_counter() - wall:.0f} s wall), test accuracy {100 * accuracy:.1f} %"
    )


def finetune(cfg: SegmentConfig) -> None:
    """``convlens lab segment finetune``: three runs and their table, timed."""
    from convlens.labs.seg_finetune import FINETUNE_COLUMNS
    from convlens.render.lab import markdown_table

    wall, cpu, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    rows = compare_finetuning(cfg, cfg.out, progress_bar=False)
    print(
        f"finetune: {time.perf_counter() - wall:.0f} s wall, {cpu_seconds() - cpu:.0f} s CPU, "
        f"load {(load + os.getloadavg()[0]) / 2:.1f}"
    )
    print(markdown_table(rows, FINETUNE_COLUMNS), flush=True)


def score_averaged(run: str) -> dict[str, object]:
    """``evaluate``'s default: the held-out sections predicted as the mean over the eight
    orientations; also draws them as ``predictions_averaged.png`` in the run folder."""
    model, cfg, values, geometry = load_run(run)
    validation = Path(run) / "validation"
    evaluation = evaluate_run(run, str(validation), averaged=True)
    sections = seg_data.load_sections(validation, seg_data.paired_names(validation), values)
    probabilities = [
        predict_averaged(model, s.image, geometry, tile_side(cfg, geometry)) for s in sections
    ]
    write_predictions(
        Path(run) / "predictions_averaged.png", sections, probabilities,
        f"held-out sections, mean over the 8 orientations: pixel error "
        f"{evaluation['pixel_error']:.4f}, Rand error {evaluation['rand_error']:.4f}",
    )  # fmt: skip
    return {k: evaluation[k] for k in ("pixel_error", "rand_error", "vi", "iou", "dice", "n")}


def row(record: dict[str, object]) -> str:
    r: dict = record  # type: ignore[assignment]
    return (
        f"| {r['name']} | {r['changes'] or 'defaults'} | {r['epochs']} "
        f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} "
        f"| {r['load_average']:.1f} | {r['pixel_error']:.4f} | {r['rand_error']:.4f} "
        f"| {r['vi']:.3f} | {r['iou']['0']:.3f} / {r['iou']['255']:.3f} "
        f"| **{r['averaged']['pixel_error']:.4f}** | **{r['averaged']['rand_error']:.4f}** "
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
    evaluation = evaluate_run(cfg.out, str(validation), averaged=False)
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
