"""Training images per second: the colourization lab's loop against a plain PyTorch loop.

Both loops train the same model (same initial weights) with the same Adam optimizer, the
same batches (the lab's seeded per-epoch permutation) and the same in-memory tensors.
The lab's loop is the runtime's ``run_epoch`` with ``convlens.labs.colourize.pixel_step``
with its Rich progress bar on; the plain loop is the few lines a person would write by
hand. Epochs alternate (lab, plain, lab, plain, ...) after one warm-up epoch each, so a
noisy machine slows both alike; the ratio is total plain time / total lab time over the
same image count.

Also reported: the lab's per-epoch bookkeeping outside the hot loop (validation,
atomic checkpoint, metrics CSV, learning-curve PNG), which ``train`` adds once per epoch.

    python benchmarks/colourize_throughput.py --data ../shared/data/cifar10-horse \
        --model colour_unet --batch-size 100 --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

from convlens.labs.colourize import (
    CURVES,
    ColourizeConfig,
    Position,
    build_model,
    evaluate,
    grayscale,
    kmeans_palette,
    load_data,
    nearest_colour,
    pixel_step,
)
from convlens.labs.runtime.files import save_checkpoint, write_metrics_csv
from convlens.labs.runtime.loop import epoch_permutation, make_progress, run_epoch
from convlens.labs.runtime.plots import plot_curves


def plain_epoch(model, optimizer, x, y, order, batch_size):  # type: ignore[no-untyped-def]
    """The hand-written loop: index a batch, forward, cross-entropy, backward, step."""
    model.train()
    for step in range(len(order) // batch_size):
        index = order[step * batch_size : (step + 1) * batch_size]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--classes", default="horse")
    parser.add_argument("--model", default="colour_unet")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each loop")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = ColourizeConfig(
        data=args.data,
        classes=args.classes,
        model=args.model,
        batch_size=args.batch_size,
        device="cpu",
    )
    data = load_data(cfg)
    palette = kmeans_palette(data.train_rgb, cfg.num_colours, cfg.seed)
    x, y = (
        grayscale(data.train_rgb),
        nearest_colour(data.train_rgb, palette),
    )  # (N,1,32,32), (N,32,32)
    vx, vy = grayscale(data.val_rgb), nearest_colour(data.val_rgb, palette)
    n = len(x)
    steps = n // args.batch_size

    lab_model, plain_model = build_model(cfg), build_model(cfg)  # identical initial weights
    lab_opt = torch.optim.Adam(lab_model.parameters(), lr=cfg.lr)
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=cfg.lr)
    console = Console(stderr=True)

    def run_lab(epoch: int) -> float:
        progress = make_progress(console, enabled=True)
        start = time.perf_counter()
        with progress:
            task = progress.add_task(
                f"lab epoch {epoch}", total=steps, loss=float("nan"), speed=0.0
            )
            run_epoch(
                lab_model,
                lab_opt,
                pixel_step(x, y),
                epoch_permutation(0, epoch, n),
                args.batch_size,
                Position(epoch),
                progress=progress,
                task=task,
            )
        return time.perf_counter() - start

    def run_plain(epoch: int) -> float:
        start = time.perf_counter()
        plain_epoch(plain_model, plain_opt, x, y, epoch_permutation(0, epoch, n), args.batch_size)
        return time.perf_counter() - start

    run_lab(0), run_plain(0)  # warm-up
    lab_time = plain_time = 0.0
    for epoch in range(1, args.rounds + 1):
        lab_time += run_lab(epoch)
        plain_time += run_plain(epoch)
    images = args.rounds * steps * args.batch_size

    # per-epoch bookkeeping that train() adds around the hot loop
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        val_loss, val_acc = evaluate(lab_model, vx, vy)
        row = {
            "epoch": 1,
            "train_loss": 0.0,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "baseline_accuracy": 0.0,
            "epoch_seconds": 0.0,
            "images_per_second": 0.0,
        }
        config = cfg.to_dict()
        save_checkpoint(Path(tmp) / "checkpoint.pt", lab_model, lab_opt, Position(1), [row], config)
        write_metrics_csv(Path(tmp) / "metrics.csv", [row])
        plot_curves(Path(tmp) / "curves.png", {cfg.model: [row]}, CURVES)
        bookkeeping = time.perf_counter() - start

    lab_ips, plain_ips = images / lab_time, images / plain_time
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s); {args.model}, batch {args.batch_size}, {n} images, "
        f"{args.rounds} timed epochs each (after 1 warm-up)"
    )
    print("| loop | images/s | ratio to plain |")
    print("|---|---:|---:|")
    print(f"| plain PyTorch loop | {plain_ips:.0f} | 1.000 |")
    print(f"| lab `run_epoch` (progress bar on) | {lab_ips:.0f} | {lab_ips / plain_ips:.3f} |")
    print(
        f"per-epoch bookkeeping in train() (validation on {len(vx)} images, checkpoint, "
        f"CSV, curve PNG): {bookkeeping:.2f} s = "
        f"{100 * bookkeeping / (lab_time / args.rounds):.1f} % of one epoch of the hot loop"
    )


if __name__ == "__main__":
    main()
