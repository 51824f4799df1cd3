"""Several runs of one lab: a sweep over one setting and a comparison of configurations.

Finished runs are read back, not retrained (``run_or_reuse``), so a sweep interrupted
half-way continues where it stopped. Tables go through ``render.lab``; plots are
Matplotlib.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from convlens.errors import ArgumentError
from convlens.labs.runtime import files
from convlens.labs.runtime.distributed import detect_distributed
from convlens.labs.runtime.loop import LabInfo, RunResult, run_or_reuse
from convlens.labs.runtime.plots import Panel, plot_curves, pyplot, save_figure

Row = dict[str, Any]


def parse_int_list(text: str, flag: str, example: str = "25,50,100") -> list[int]:
    """``"25,50,100"`` → sorted distinct positive integers."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ArgumentError(
            f"{flag}: '{text}' is not a comma-separated list of integers (e.g. {example})."
        ) from None
    if not values or any(v < 1 for v in values):
        raise ArgumentError(f"{flag}: '{text}' must list positive integers.")
    return sorted(set(values))


def finished_run(
    cfg: Any, lab: LabInfo, train: Callable[..., RunResult], console: Any, progress_bar: bool
) -> RunResult:
    """The finished run of ``cfg`` (trained, resumed or read); Ctrl-C stops the whole sweep."""
    result = run_or_reuse(cfg, lab, train, console, progress_bar)
    if result.interrupted:
        raise KeyboardInterrupt
    return result


def sweep(
    base: Any,
    field: str,
    values: Sequence[Any],
    out: Path,
    lab: LabInfo,
    train: Callable[..., RunResult],
    row: Callable[[RunResult], Row],
    columns: list[str],
    title: str,
    console: Any = None,
    progress_bar: bool = True,
    **changes: Any,
) -> list[Row]:
    """One run of ``base`` per value of ``field`` in ``out/<field>_<value>``; writes
    ``out/sweep.md`` and ``sweep.csv`` (rank 0)."""
    rows = []
    for value in values:
        cfg = dataclasses.replace(base, **{field: value}, out=str(out / f"{_short(field)}_{value}"))
        cfg = dataclasses.replace(cfg, **changes)
        result = finished_run(cfg, lab, train, console, progress_bar)
        rows.append({field: value, **row(result)})
    if detect_distributed().is_main:
        files.write_tables(out / "sweep", rows, [field, *columns], title)
    return rows


def _short(field: str) -> str:
    return field.removesuffix("_size")  # batch_size → batch_<B>, as the first sweeps named them


def plot_sweep(
    path: Path, rows: list[Row], field: str, panels: Sequence[Panel], title: str
) -> None:
    """Each panel's series against the swept value (log scale, one tick per value)."""
    plt = pyplot()
    values = [r[field] for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        scale = 100 if panel.percent else 1
        for series in panel.series:
            ax.plot(values, [scale * r[series.key] for r in rows], "o-", label=series.label)
        if panel.baseline:
            base = scale * rows[0][panel.baseline]
            ax.axhline(base, color="grey", ls=":", label=panel.baseline_label)
            ax.legend(fontsize=7)
        ax.set(xscale="log", xlabel=field.replace("_", " "), ylabel=panel.ylabel)
        ax.set_xticks(values, [str(v) for v in values])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def compare(
    configs: dict[str, Any],
    out: Path,
    lab: LabInfo,
    train: Callable[..., RunResult],
    row: Callable[[RunResult], Row],
    columns: list[str],
    title: str,
    panels: Sequence[Panel],
    console: Any = None,
    progress_bar: bool = True,
    chain: Callable[[Any, RunResult], Any] | None = None,
) -> tuple[list[RunResult], list[Row]]:
    """One finished run per named configuration (``chain(next_cfg, previous)`` may pass
    something on, as a shared palette); writes ``compare.md``/``.csv`` and
    ``compare_curves.png`` (rank 0)."""
    results: list[RunResult] = []
    for cfg in configs.values():
        if chain is not None and results:
            cfg = chain(cfg, results[-1])
        results.append(finished_run(cfg, lab, train, console, progress_bar))
    rows = [row(r) for r in results]
    if detect_distributed().is_main:
        files.write_tables(out / "compare", rows, columns, title)
        runs = dict(zip(configs, (r.metrics for r in results), strict=True))
        plot_curves(out / "compare_curves.png", runs, panels, title)
    return results, rows
