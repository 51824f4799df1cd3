"""The gradient-flow runs recorded in docs/labs/gradflow.md: run each, time it, keep its
pictures.

Each named run calls the lab (``measure_init``, ``train_nets``, ``measure_bn``) with the
settings below into ``--out/<name>`` (trainings already finished there are read back),
prints its Markdown tables, and records the wall time, the process CPU time and the load
average (other jobs share the 2 cores) in ``--out/<name>/benchmark.json``. Run it under the
shared lock:

    .venv/bin/python benchmarks/gradflow_runs.py \\
        --data ../shared/data/cifar10-10k --pictures docs/labs/img init-small train bn

``train/plain56`` trains one net of ``train`` alone (finished nets are read back), so the
four trainings can take the lock one at a time. ``train-deep`` trains the paper's depths 20
and 56 in the same folder as ``train`` (its 20-layer nets are read back). ``degradation``
trains them for 5 epochs with a warm-up, ``degradation-seed1`` the 56-layer pair again
with seed 1, ``degradation-20`` all four for 20 epochs, ``degradation-40``
the two ResNets for 40. ``--list`` shows the named runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from convlens.labs.gradflow import TRAIN_COLUMNS, NetConfig, train_nets, train_rows
from convlens.labs.gradflow_bn import BnConfig, bn_tables, measure_bn
from convlens.labs.gradflow_init import INIT_COLUMNS, InitConfig, init_rows, measure_init
from convlens.render.lab import markdown_table

# name → (command, settings changed from the command's defaults)
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "init-small": ("init", {"norm": "none", "init": "normal", "init_std": 0.01}),
    "init-kaiming-none": ("init", {"norm": "none"}),
    "init-default": ("init", {}),
    "init-small-bn": ("init", {"init": "normal", "init_std": 0.01}),
    # shortened for the shared 2-core machine (docs/labs/gradflow.md says what it costs):
    # under the lock an epoch of the 10,000 images took 5 - 44 s at depths 8 - 20 and
    # 37 - 40 s for plain56 (more when jobs outside the lock share the cores); bn's
    # trainings took 4 - 10 s per epoch at batch 8 - 128 and 22 - 25 s at batch 2
    "train": ("train", {"epochs": 2}),
    "train-deep": ("train", {"epochs": 2}),  # the paper's depths, when the lock allows
    # the paper's depths for 5 epochs (2-core CPU shared with jobs outside the lock: up
    # to 7 s per step of residual56 with 2 threads, 3 s with 1); residual56 needs the
    # warm-up at lr 0.1 (see gradflow_first_steps.py), so every net gets it: 1 epoch from
    # 0.01 up to 0.1, then the cosine over the other 4
    "degradation": ("train", {"epochs": 5, "warmup_epochs": 1, "warmup": "linear"}),
    "degradation-seed1": (
        "train",
        {"epochs": 5, "warmup_epochs": 1, "warmup": "linear", "seed": 1},
    ),
    # the same four nets for 20 epochs (1,560 steps): does the deeper ResNet catch up with
    # the shallower one once trained longer? (two nets at a time, one thread each)
    "degradation-20": ("train", {"epochs": 20, "warmup_epochs": 1, "warmup": "linear"}),
    # the ResNets alone for 40 epochs: does residual56's small deficit at 20 turn round?
    "degradation-40": ("train", {"epochs": 40, "warmup_epochs": 1, "warmup": "linear"}),
    "bn": ("bn", {"epochs": 1, "batch_sizes": "2,8,32,128"}),
}
# the nets of each train run; the lab's default depths are 20,56 (He et al. 2016 Fig. 6)
TRAIN_NETS = {
    "train": ("plain,residual", "8,20"),
    "train-deep": ("plain,residual", "20,56"),
    "degradation": ("plain,residual", "20,56"),
    "degradation-seed1": ("plain,residual", "56"),  # a second seed for the 56-layer pair
    "degradation-20": ("plain,residual", "20,56"),
    "degradation-40": ("residual", "20,56"),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_folder(out: Path, name: str) -> Path:
    """``out/<name>``; train-deep shares ``out/train`` (it reads back the 20-layer nets of
    train)."""
    return out / ("train" if name == "train-deep" else name)


def epoch_table(runs: list[dict[str, Any]]) -> str:
    """Per net and epoch, training / test error and the mean training loss: whether the
    deeper net is worse *throughout* (the paper's claim), not only at the end."""
    epochs = max(len(run["train_error"]) for run in runs)
    head = "| network | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " |"
    lines = [head, "|---|" + "---:|" * epochs]
    for run in runs:
        cells = [
            f"{100 * train:.2f} / {100 * test:.2f} % ({loss:.3f})"
            for train, test, loss in zip(
                run["train_error"], run["test_error"], run["train_loss"], strict=True
            )
        ]
        lines.append(f"| {run['arch']}{run['depth']} | " + " | ".join(cells) + " |")
    return "train / test error (mean training loss) per epoch\n\n" + "\n".join(lines) + "\n"


def run(name: str, data: str, out: Path, threads: int = 0) -> tuple[str, list[Path]]:
    """Run one named measurement; its tables and the pictures it wrote. ``train/plain56``
    trains just that net of ``train`` (so other jobs may take the lock in between)."""
    name, _, only = name.partition("/")
    command, changes = RUNS[name]
    folder = run_folder(out, name)
    if command == "init":
        result = measure_init(InitConfig(data, out=str(folder), **changes))
        return markdown_table(init_rows(result), INIT_COLUMNS), [folder / "gradflow_init.png"]
    if command == "train":
        base = NetConfig(data, threads=threads, **changes)  # threads may change on resume
        archs, depths = TRAIN_NETS[name]
        if only:
            archs, depths = only.rstrip("0123456789"), only[len(only.rstrip("0123456789")) :]
        _, runs = train_nets(base, archs, depths, str(folder), progress_bar=False)
        pictures = [] if only else [folder / "gradflow_train.png"]
        return markdown_table(train_rows(runs), TRAIN_COLUMNS) + "\n" + epoch_table(runs), pictures
    result = measure_bn(BnConfig(data, out=str(folder), **changes), progress_bar=False)
    return bn_tables(result), [folder / "gradflow_bn.png"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=list(RUNS))
    parser.add_argument("--data", default="../shared/data/cifar10-10k")
    parser.add_argument("--out", default="runs/gradflow")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads of train runs (0: torch's default); 1 wastes less CPU than 2 when "
        "jobs outside the lock share the 2 cores",
    )
    parser.add_argument("--pictures", help="copy each run's PNG here as gradflow_<name>.png")
    args = parser.parse_args()
    if args.list:
        for name, (command, changes) in RUNS.items():
            print(f"{name}: lab gradflow {command} {changes or '(defaults)'}")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    for name in args.names:
        wall, cpu, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
        tables, pictures = run(name, args.data, Path(args.out), args.threads)
        command, changes = RUNS[name.partition("/")[0]]
        record = {
            "name": name,
            "command": command,
            "changes": changes,
            "wall_seconds": time.perf_counter() - wall,
            "cpu_seconds": cpu_seconds() - cpu,
            "load_average": (load + os.getloadavg()[0]) / 2,
        }
        # train/plain56 → runs/gradflow/train/benchmark-plain56.json
        base, _, only = name.partition("/")
        saved = run_folder(Path(args.out), base) / f"benchmark{'-' + only if only else ''}.json"
        saved.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\n## {name}: lab gradflow {record['command']} {record['changes'] or ''}\n")
        print(tables)
        print(
            f"wall {record['wall_seconds']:.0f} s, CPU {record['cpu_seconds']:.0f} s, "
            f"load {record['load_average']:.1f} (a finished training read back costs nothing)",
            flush=True,
        )
        if args.pictures:
            for picture in pictures:
                shutil.copyfile(picture, Path(args.pictures) / f"gradflow_{name}.png")


if __name__ == "__main__":
    main()
