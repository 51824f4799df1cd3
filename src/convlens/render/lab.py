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
    # the segmentation lab
    "trained": "trained",
    "trainable_params": "trainable parameters",
    "val_pixel_accuracy": "val pixel accuracy",
    "val_iou_mean": "val mean IoU",
    "val_rand_error": "val Rand error",
    "seconds_per_epoch": "s / epoch",
    "memory_grads": "predicted: gradients (B)",
    "memory_optimizer": "optimizer state (B)",
    "memory_saved_activations": "saved activations (B)",
    "memory_total": "total (B)",
    "value": "mask value",
    "iou": "IoU",
    "dice": "Dice",
    # the gradient-flow lab
    "network": "network",
    "norm": "normalisation",
    "init": "initialisation",
    "first_weight_grad_norm": "‖∂L/∂W‖ first layer",
    "last_weight_grad_norm": "‖∂L/∂W‖ last layer (fc)",
    "weight_grad_ratio": "‖∂L/∂W‖ first / last",
    "activation_grad_ratio": "‖∂L/∂activation‖ first / last",
    "first_activation_std": "activation std, first layer",
    "last_conv_activation_std": "activation std, last convolution",
    "final_train_error": "train error (last epoch)",
    "final_test_error": "test error (last epoch)",
    "best_test_error": "best test error",
    "first_layer_grad": "‖∂L/∂W‖ first layer (last epoch)",
    "last_layer_grad": "‖∂L/∂W‖ fc (last epoch)",
    "epoch_seconds": "seconds per epoch",
    "paper_test_error": "He et al. 2016 test error (50k images)",
    "a": "a",
    "bn_output_max_diff": "max |BN(aWx) − BN(Wx)|",
    "output_scale_deviation": "max |std ratio − 1| per channel",
    "predicted_scale_deviation": "predicted from ε",
    "logits_max_diff": "max |Δ logits|",
    "weight_grad_norm": "‖∂L/∂(aW)‖",
    "scaled_grad_ratio": "a·‖∂L/∂(aW)‖ / ‖∂L/∂W‖",
    "input_grad_max_rel_diff": "max |Δ ∂L/∂x| (relative)",
    "tiny_eps_logits_max_diff": "max |Δ logits|, ε → 0",
    "tiny_eps_input_grad_max_rel_diff": "max |Δ ∂L/∂x|, ε → 0",
    "mean_spread": "BN: spread of batch mean (σ units)",
    "var_spread": "BN: spread of batch variance (relative)",
    "batch_dependence_spread": "BatchNorm: output vs batch-mates",
    "group_dependence_spread": "GroupNorm: output vs batch-mates",
    "none_dependence_spread": "none: output vs batch-mates",
    "batch_accuracy": "BatchNorm test accuracy",
    "batch_interval": "95 % interval",
    "group_accuracy": "GroupNorm test accuracy",
    "group_interval": "95 % interval",
    "none_accuracy": "no norm test accuracy",
    "none_interval": "95 % interval",
    "channel": "channel",
    "batch_mean": "batch mean",
    "running_mean": "running mean",
    "batch_var": "batch variance",
    "running_var": "running variance",
    "max_diff": "max |train − eval|",
    "train_mode_accuracy": "train-mode accuracy",
    "eval_mode_accuracy": "eval-mode accuracy",
}
LEFT = frozenset({"model", "run", "class", "trained", "network", "norm", "init"})
GRADIENT_SUFFIXES: tuple[str, ...] = (
    "_norm",
    "_ratio",
    "_std",
    "_grad",
    "_spread",
    "_diff",
    "_deviation",
)
GRADIENT_SUFFIXES += ("_mean", "_var")


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
    if key in ("params", "trainable_params") or key.startswith("memory_"):
        return f"{value:,}"
    if key in ("val_iou_mean", "val_rand_error", "iou", "dice"):
        return f"{value:.4f}"
    if key == "seconds_per_epoch":
        return f"{value:.1f}"
    if key == "standard_error":
        return f"{100 * value:.2f}"
    if key.endswith(GRADIENT_SUFFIXES):  # magnitudes from 1e-55 to 1e3: three digits
        return f"{value:.3g}"
    if key.endswith("error"):
        return f"{100 * value:.2f} %"
    if key == "epoch_seconds":
        return f"{value:.1f}"
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


def segment_evaluation_table(result: dict[str, Any]) -> str:
    """``lab segment evaluate``: the challenge's numbers, then IoU and Dice per class."""
    base = result["baseline"]
    head = (
        f"{result['run']} on {result['n']} sections: pixel error {result['pixel_error']:.4f}, "
        f"foreground-restricted Rand error {result['rand_error']:.4f}, VI {result['vi']:.4f} "
        f"bits (merge {result['vi_merge']:.4f} + split {result['vi_split']:.4f})\n"
        + (
            "predicted as the mean over the 8 orientations (quarter turns, each mirrored)\n"
            if result.get("orientations", 1) > 1
            else ""
        )
        + (
            f"Rand error at the best threshold of the cell probability (the challenge's way): "
            f"{best['rand_error']:.4f} at {best['threshold']}\n"
            if (best := result.get("rand_error_best_threshold"))
            else ""
        )
        + f"majority-class baseline (every pixel {base['class']}): pixel error "
        f"{base['pixel_error']:.4f}, Rand error {base['rand_error']:.4f}\n\n"
    )
    rows = [
        {"value": value, "iou": result["iou"][value], "dice": result["dice"][value]}
        for value in result["iou"]
    ]
    return head + markdown_table(rows, ["value", "iou", "dice"])
