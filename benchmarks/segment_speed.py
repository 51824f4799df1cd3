"""Training speed of the segmentation lab's candidate networks on this CPU: one AdamW step
(forward, backward, update) per batch, timed as the median of ``--repeats`` steps after one
warm-up step, reported per labelled output pixel — the figure that decides how many crops
fit in the lab's 30-minute budget. The valid U-Net pays for its margin: an input tile of
side T labels only T − 2·margin pixels per side.

    .venv/bin/python benchmarks/segment_speed.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from convlens.labs.segment import build_model
from convlens.labs.tiling import logits_of

# (name, model spec, batch, input side)
CANDIDATES = [
    ("padded U-Net, width 16, depth 4", "unet_same?base_channels=16&depth=4", 4, 256),
    ("padded U-Net, width 8, depth 4", "unet_same?base_channels=8&depth=4", 4, 256),
    ("valid U-Net, width 16, depth 4, BN", "unet_valid?width=16&depth=4&batch_norm=true", 2, 380),
    ("valid U-Net, width 16, depth 3, BN", "unet_valid?width=16&depth=3&batch_norm=true", 2, 300),
    ("valid U-Net, width 64 (the paper's), depth 4", "unet_valid", 1, 572),
]


def step_seconds(spec: str, batch: int, side: int, repeats: int) -> tuple[float, int]:
    model = build_model(spec, 2, 0, seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, side, side)
    times, out = [], 0
    for i in range(repeats + 1):
        start = time.perf_counter()
        logits = logits_of(model, x)
        loss = logits.logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
        out = logits.shape[-1]
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print("| network | batch × input | output | s / step | µs / output pixel |")
    print("|---|---|---:|---:|---:|")
    for name, spec, batch, side in CANDIDATES:
        seconds, out = step_seconds(spec, batch, side, args.repeats)
        per_pixel = 1e6 * seconds / (batch * out * out)
        print(
            f"| {name} | {batch} × {side}² | {out}² | {seconds:.2f} | {per_pixel:.1f} |", flush=True
        )
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
