"""Tables of the sanity and faithfulness results: one set of rows, three renderings
(Rich for the terminal, Markdown for docs, JSON for programs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convlens.interpret.faithfulness import RANDOM, FaithfulnessResult
from convlens.interpret.sanity import SanityResult


@dataclass(frozen=True)
class Rows:
    """A table's cells as text; the first ``text_columns`` are labels, the rest numbers."""

    columns: list[str]
    rows: list[list[str]]
    text_columns: int = 1

    def right_aligned(self, index: int) -> bool:
        return index >= self.text_columns


def number(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:+.3f}"


def sanity_rows(result: SanityResult) -> Rows:
    """One row per cascade step: mean Spearman ρ of each method (n/a: every map constant;
    a count in brackets: images whose map was constant and are left out)."""
    means, undefined = result.mean(), result.undefined()
    rows = []
    for s, stage in enumerate(result.stages):
        cells = [f"{s + 1}", stage]
        for k in range(len(result.methods)):
            text = number(float(means[k, s]))
            if 0 < undefined[k, s] < result.correlations.shape[2]:
                text += f" ({undefined[k, s]} constant)"
            cells.append(text)
        rows.append(cells)
    return Rows(["step", "re-initialised down to", *result.methods], rows, text_columns=2)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def faithfulness_rows(result: FaithfulnessResult) -> Rows:
    """One row per order: deletion AUC, its paired difference from the random order's, and
    insertion AUC; mean ± standard error over images."""
    deletion, insertion = result.auc(result.deletion), result.auc(result.insertion)
    rows = []
    for k, order in enumerate(result.orders):
        cells = [order, "{:.3f} ± {:.3f}".format(*_mean_se(deletion[k]))]
        if order == RANDOM:
            cells.append("")
        else:
            paired = result.deletion_against_random(order)
            cells.append(
                f"{paired.mean:+.3f} ± {paired.se:.3f} (lower on {paired.lower_on}/{paired.images})"
            )
        cells.append("{:.3f} ± {:.3f}".format(*_mean_se(insertion[k])))
        rows.append(cells)
    columns = [
        "order",
        f"deletion AUC, to {result.deletion_substrate} (lower is better)",
        "deletion − random, per image",
        "insertion AUC (higher is better)",
    ]
    return Rows(columns, rows)


def rich_table(title: str, table_rows: Rows) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(table_rows.columns):
        table.add_column(
            column, justify="right" if table_rows.right_aligned(i) else "left", no_wrap=True
        )
    for row in table_rows.rows:
        table.add_row(*row)
    return table


def markdown_table(table_rows: Rows) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = [
        "---:" if table_rows.right_aligned(i) else "---" for i in range(len(table_rows.columns))
    ]
    head = [line(table_rows.columns), "|" + "|".join(rule) + "|"]
    return "\n".join(head + [line(row) for row in table_rows.rows]) + "\n"


def sanity_json(result: SanityResult) -> dict[str, Any]:
    means, undefined = result.mean(), result.undefined()
    return {
        "test": "cascading model-parameter randomisation (Adebayo et al. 2018)",
        "statistic": "Spearman rank correlation of |map|, trained vs randomised model",
        "images": int(result.correlations.shape[2]),
        "stages": list(result.stages),
        "methods": {
            method: {
                "mean": [None if np.isnan(v) else round(float(v), 6) for v in means[k]],
                "constant_maps": [int(u) for u in undefined[k]],
            }
            for k, method in enumerate(result.methods)
        },
    }


def _paired_json(result: FaithfulnessResult, order: str) -> dict[str, Any]:
    paired = result.deletion_against_random(order)
    return {
        "deletion_minus_random": round(paired.mean, 6),
        "deletion_minus_random_se": round(paired.se, 6),
        "deletion_lower_than_random_on": paired.lower_on,
    }


def faithfulness_json(result: FaithfulnessResult) -> dict[str, Any]:
    deletion, insertion = result.auc(result.deletion), result.auc(result.insertion)
    orders = {}
    for k, order in enumerate(result.orders):
        d_mean, d_se = _mean_se(deletion[k])
        i_mean, i_se = _mean_se(insertion[k])
        orders[order] = {
            "deletion_auc": round(d_mean, 6),
            "deletion_auc_se": round(d_se, 6),
            **({} if order == RANDOM else _paired_json(result, order)),
            "insertion_auc": round(i_mean, 6),
            "insertion_auc_se": round(i_se, 6),
            "deletion_curve": [round(float(v), 6) for v in result.deletion[k].mean(axis=0)],
            "insertion_curve": [round(float(v), 6) for v in result.insertion[k].mean(axis=0)],
        }
    return {
        "test": "deletion and insertion (Petsiuk et al. 2018)",
        "images": int(result.deletion.shape[1]),
        "pixels_per_step": result.step,
        "insertion_blur_sigma": result.blur_sigma,
        "deletion_substrate": result.deletion_substrate,
        "fractions": [round(float(f), 6) for f in result.fractions],
        "orders": orders,
    }
