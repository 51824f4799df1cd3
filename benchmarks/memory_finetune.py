"""Fine-tuning DeepLabv3's last layer against the whole model, at H×W and 2H×2W: training
memory predicted by ``analyze`` and measured in two real steps (``convlens lab memory``).

    .venv/bin/python benchmarks/memory_finetune.py \\
        --json docs/labs/memory_finetune.json

Prints the Markdown tables of ``docs/labs/memory.md`` (the parts, predicted and measured;
the allocator's peak; how each figure grows when H and W double) and writes every run's
``lab memory --format json`` to ``--json``. Each setting is one ``convlens.labs.memory.run``
(the model built afresh from the zoo with seed 0, frozen as ``--train-only`` and
``--freeze-bn`` freeze it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import torch

from convlens.labs.memory import MemoryConfig, run
from convlens.render.columns import bytes_text

# (name, --train-only patterns, --freeze-bn)
SETTINGS = [
    ("whole model", (), False),
    ("head (classifier.*), BatchNorm frozen", ("classifier.*",), True),
    ("last layer (classifier.4*), BatchNorm frozen", ("classifier.4*",), True),
]
PARTS = ("params", "grads", "optimizer", "saved_activations", "total")


def mib(value: int) -> str:
    return f"{value / 2**20:,.2f}"


def measure_all(model: str, sizes: list[int], batch: int, optimizer: str) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        for name, patterns, freeze_bn in SETTINGS:
            cfg = MemoryConfig(model, (3, size, size), batch, patterns, freeze_bn, optimizer)
            start = time.perf_counter()
            result = run(cfg).to_dict()
            seconds = time.perf_counter() - start
            print(f"{name} at {size}×{size}: {seconds:.1f} s", file=sys.stderr, flush=True)
            rows.append({"setting": name, "size": size, "seconds": round(seconds, 1), **result})
    return rows


def parts_table(rows: list[dict[str, Any]]) -> str:
    """MiB by part; each cell is the prediction, which equals the measurement (checked)."""
    lines = [
        "| setting | H×W | trainable params | parameters | gradients | optimizer state | "
        "saved activations | total of the parts | predicted = measured | measured peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        p, m = r["predicted"], r["measured"]
        same = (
            "yes, every part"
            if all(r["equal"].values())
            else "NO: " + ", ".join(k for k, v in r["equal"].items() if not v)
        )
        cells = [mib(p[k]) for k in PARTS]
        lines.append(
            f"| {r['setting']} | {r['size']}×{r['size']} | {r['trainable_params']:,} | "
            + " | ".join(cells)
            + f" | {same} | {mib(m['peak'])} |"
        )
    return "\n".join(lines)


def doubling_table(rows: list[dict[str, Any]]) -> str:
    """Measured bytes at 2H×2W over H×W, for every pair of sizes a factor 2 apart."""
    by_key = {(r["setting"], r["size"]): r for r in rows}
    lines = [
        "| setting | H×W → 2H×2W | parameters | gradients | optimizer state | "
        "saved activations | total of the parts | peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (setting, size), small in by_key.items():
        large = by_key.get((setting, 2 * size))
        if large is None:
            continue
        a, b = small["measured"], large["measured"]
        ratios = [b[k] / a[k] if a[k] else float("nan") for k in (*PARTS, "peak")]
        lines.append(
            f"| {setting} | {size} → {2 * size} | "
            + " | ".join("—" if r != r else f"×{r:.3f}" for r in ratios)
            + " |"
        )
    return "\n".join(lines)


def write_json(path: str, data: Any) -> None:
    """Atomically: a temporary file in the same folder, renamed over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:deeplabv3_resnet50")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="H = W")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="Write every run's lab memory JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure_all(args.model, args.sizes, args.batch, args.optimizer)
    print(f"{args.model}, batch {args.batch}, optimizer {args.optimizer}; MiB (2^20 bytes)\n")
    print(parts_table(rows) + "\n")
    print(doubling_table(rows))
    largest = max(rows, key=lambda r: r["measured"]["peak"])
    print(f"\nlargest measured peak: {bytes_text(largest['measured']['peak'])}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"model": args.model, "batch": args.batch, "runs": rows})


if __name__ == "__main__":
    main()
