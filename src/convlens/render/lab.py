"""Tables of the training labs (sweeps, comparisons, evaluations): Markdown from rows of
numbers. The labs collect the numbers; this only formats them, by a shared vocabulary of
column names."""

from __future__ import annotations

from typing import Any

HEADERS = {
    "batch_size": "batch size",
    "model": "model",
    "params": "parameters",
    "epochs": "epochs",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "test_loss": "test loss",
    "train_accuracy": "train accuracy",
    "val_accuracy": "val accuracy",
    "test_accuracy": "test accuracy",
    "accuracy": "accuracy",
    "baseline_accuracy": "most-frequent-colour baseline",
    "train_seconds": "training time (s)",
    "run": "run folder",
    "images": "validation images",
    "standard_error": "standard error",
    "interval": "95 % bootstrap interval",
    "class": "class",
    "n": "images",
    "correct": "correct",
}
LEFT = frozenset({"model", "run", "class"})


def cell(key: str, value: Any) -> str:
    """One value as its column shows it: accuracies in %, losses to 4 decimals."""
    if value is None:
        return "—"
    if key.endswith("accuracy"):
        return f"{100 * value:.2f} %"
    if key.endswith("loss"):
        return f"{value:.4f}"
    if key == "train_seconds":
        return f"{value:.0f}"
    if key == "params":
        return f"{value:,}"
    if key == "standard_error":
        return f"{100 * value:.2f}"
    return f"`{value}`" if key == "run" else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str], title: str = "") -> str:
    lines = [f"{title}\n"] if title else []
    lines.append("| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |")
    lines.append("|" + "|".join("---" if c in LEFT else "---:" for c in columns) + "|")
    lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def spread_table(spreads: list[Any]) -> str:
    """Runs' accuracies with their standard errors and bootstrap intervals."""
    rows = [
        {
            "run": s.out,
            "model": s.model,
            "epochs": s.epochs,
            "images": s.images,
            "val_accuracy": s.accuracy,
            "standard_error": s.standard_error,
            "interval": f"{100 * s.low:.2f} – {100 * s.high:.2f} %",
        }
        for s in spreads
    ]
    columns = ["run", "model", "epochs", "images", "val_accuracy", "standard_error", "interval"]
    return markdown_table(rows, columns)


def classify_evaluation_table(result: dict[str, Any]) -> str:
    """``lab classify evaluate``: the accuracy with its interval, then one row per class."""
    low, high = result["ci95"]
    head = (
        f"{result['run']}: accuracy {100 * result['accuracy']:.2f} % on {result['n']} test "
        f"images (95 % bootstrap interval {100 * low:.2f} – {100 * high:.2f} %)\n\n"
    )
    rows = [
        {"class": name, "n": entry["n"], "correct": entry["correct"], "accuracy": entry["accuracy"]}
        for name, entry in result["per_class"].items()
    ]
    return head + markdown_table(rows, ["class", "n", "correct", "accuracy"])
