"""Two reports side by side: totals with ratios, and each design's layers."""

from __future__ import annotations

from dataclasses import dataclass

from convlens.core.analyze import Report
from convlens.core.numbers import Dim, divide, is_numeric

COMPARED = (
    "params",
    "trainable_params",
    "macs",
    "flops",
    "peak_activation_bytes",
    "saved_activation_bytes",
    "training_bytes",
)


@dataclass(frozen=True)
class Comparison:
    left: Report
    right: Report
    rows: tuple[tuple[str, Dim, Dim, Dim | None], ...]  # metric, left, right, right/left


def compare_reports(left: Report, right: Report) -> Comparison:
    rows = []
    for metric in COMPARED:
        a, b = getattr(left.totals, metric), getattr(right.totals, metric)
        ratio = divide(b, a) if (not is_numeric(a) or a != 0) else None
        rows.append((metric, a, b, ratio))
    for metric in ("rf",):
        rows.append((metric, left.totals.rf, right.totals.rf, None))
    return Comparison(left, right, tuple(rows))
