"""Fine-tuning compared: the last layer, the head and the whole model trained from the same
weights, one table of accuracy, time and convlens's predicted training memory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from convlens.labs.runtime import files
from convlens.labs.runtime.loop import run_or_reuse
from convlens.labs.segment import LAB, SegmentConfig, train

FINETUNE: tuple[tuple[str, list[str], bool], ...] = (
    ("last-layer", ["classifier.4*"], True),
    ("head", ["classifier.*"], True),
    ("whole", [], False),
)
FINETUNE_COLUMNS = [
    "run", "trained", "trainable_params", "val_pixel_accuracy", "val_iou_mean",
    "val_rand_error", "seconds_per_epoch", "memory_grads", "memory_optimizer",
    "memory_saved_activations", "memory_total",
]  # fmt: skip


def compare_finetuning(
    cfg: SegmentConfig, out: str, console: Any = None, progress_bar: bool = True
) -> list[dict[str, Any]]:
    """Three runs from ``cfg.init`` (reused when finished): ``--train-only 'classifier.4*'
    --freeze-bn``, ``--train-only 'classifier.*' --freeze-bn`` and the whole model; one
    row each with the validation scores, the time per epoch and convlens's predicted
    training memory. Written to ``out/finetune.md`` and ``.csv``."""
    rows = []
    for name, patterns, freeze_bn in FINETUNE:
        run = dataclasses.replace(
            cfg, out=str(Path(out) / name), train_only=list(patterns), freeze_bn=freeze_bn
        )
        result = run_or_reuse(run, LAB, train, console, progress_bar)
        summary = json.loads((Path(run.out) / files.SUMMARY).read_text())
        final, memory = result.final, summary["predicted_memory"]
        trained = " ".join(f"--train-only '{p}'" for p in patterns) or "everything"
        rows.append({
            "run": name,
            "trained": trained + (" --freeze-bn" if freeze_bn else ""),
            "trainable_params": summary["trainable_params"],
            "val_pixel_accuracy": 1 - final.get("val_pixel_error", float("nan")),
            "val_iou_mean": final.get("val_iou_mean"),
            "val_rand_error": final.get("val_rand_error"),
            "seconds_per_epoch": result.train_seconds / max(len(result.metrics), 1),
            "memory_grads": memory["grads"],
            "memory_optimizer": memory["optimizer_state"],
            "memory_saved_activations": memory["saved_activations"],
            "memory_total": memory["total"],
        })  # fmt: skip
    files.write_tables(
        Path(out) / "finetune", rows, FINETUNE_COLUMNS,
        f"Fine-tuning {cfg.model} from {cfg.init}: {cfg.epochs} epochs each",
    )  # fmt: skip
    return rows
