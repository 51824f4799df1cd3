"""``lab memory``'s table: convlens's prediction beside one real training step, part by
part, then the allocator's peak and what it held there. Reads a ``MemoryComparison``'s
``to_dict()`` (the JSON), so both formats show the same numbers."""

from __future__ import annotations

from typing import Any

from convlens.render.columns import bytes_text

PARTS = {
    "params": "parameters",
    "grads": "gradients",
    "optimizer": "optimizer state",
    "saved_activations": "saved activations",
    "buffers": "buffers",
    "total": "total of the parts",
}
PEAK_ROWS = {
    "start": "held at the start",
    "forward_peak": "highest in forward",
    "backward_peak": "highest in backward",
    "optimizer_step_peak": "highest in the optimizer step",
    "peak": "**peak**",
    "end": "held at the end",
}
AT_PEAK = {
    "params_and_buffers": "parameters and buffers",
    "input": "input batch",
    "optimizer": "optimizer state",
    "grads": "gradients made so far",
    "saved_activations": "saved activations not yet freed",
    "other": "other: gradients of activations, output, temporaries",
}
PHASES = {"forward": "forward", "backward": "backward", "optimizer_step": "optimizer step"}


def _signed(value: int) -> str:
    return ("+" if value >= 0 else "−") + bytes_text(abs(value))


def _heading(result: dict[str, Any]) -> str:
    n, *sample = result["input"]
    trains = (
        "all"
        if result["trainable_params"] == result["params"]
        else f"{result['trainable_params']:,} of {result['params']:,}"
    )
    patterns = ", ".join(f"'{p}'" for p in result["train_only"])
    lines = [
        f"{result['model']}: batch {n} × {'×'.join(map(str, sample))} ({result['dtype']}), "
        f"optimizer {result['optimizer']}, one real training step on the CPU",
        f"trains {trains} parameters"
        + (f" (--train-only {patterns})" if patterns else "")
        + f"; BatchNorm layers in eval mode: {result['eval_batchnorms']} of "
        f"{result['batchnorms']}",
    ]
    if result["predicted"]["partial"]:
        lines.append(
            "warning: the prediction is partial; not counted: "
            + ", ".join(result["predicted"]["partial"])
        )
    return "\n".join(lines)


def _parts_table(result: dict[str, Any]) -> list[str]:
    predicted, measured, equal = result["predicted"], result["measured"], result["equal"]
    rows = ["| part | predicted (analyze) | measured (real step) | |", "|---|---:|---:|---|"]
    for key, label in PARTS.items():
        same = "equal" if equal[key] else f"differs by {_signed(measured[key] - predicted[key])}"
        rows.append(
            f"| {label} | {bytes_text(predicted[key])} | {bytes_text(measured[key])} | {same} |"
        )
    return rows


def _peak_table(steps: list[dict[str, Any]]) -> list[str]:
    rows = ["| CPU allocator | first step | every later step |", "|---|---:|---:|"]
    for key, label in PEAK_ROWS.items():
        cells = []
        for step in steps:
            text = bytes_text(step[key])
            if key == "peak":
                text = f"**{text}**, in {PHASES.get(step['peak_phase'], step['peak_phase'])}"
            cells.append(text)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in AT_PEAK.items():
        cells = [bytes_text(step["at_peak"][key]) for step in steps]
        rows.append(f"| at the peak: {label} | " + " | ".join(cells) + " |")
    return rows


def render_memory_table(result: dict[str, Any]) -> str:
    """The comparison as text: a heading, the parts (Markdown table), the peak (Markdown
    table) and the peak against the total of the parts, explained."""
    measured = result["measured"]
    steps = measured["steps"]
    highest = max(steps, key=lambda s: s["peak"])
    excess = measured["peak"] - measured["total"]
    share = f" ({100 * excess / measured['total']:+.1f} %)" if measured["total"] else ""
    largest = ", ".join(
        f"{op} {bytes_text(size)}" for op, size in highest["other_by_op"].items() if size
    )
    lines = [
        _heading(result),
        "",
        *_parts_table(result),
        "",
        *_peak_table(steps),
        "",
        f"peak − total of the parts: {_signed(excess)}{share}. The parts never all coexist: "
        "backward frees saved activations while it makes gradients, and in the first step "
        "the optimizer state appears only in the optimizer step. The peak also holds the "
        f"input batch ({bytes_text(measured['input'])}) and 'other', which no part counts.",
        f"largest of 'other' at the peak, by the operation that allocated it: {largest or '—'}.",
        "measured: parts from the tensors (.grad, optimizer.state, saved_tensors_hooks); the "
        "peak from every allocation PyTorch's CPU allocator made (torch.profiler, "
        "profile_memory=True) — memory libraries allocate themselves (oneDNN, BLAS, OpenMP) "
        "and allocator overhead are not in it.",
    ]
    return "\n".join(lines) + "\n"
