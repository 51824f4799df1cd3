"""Matplotlib figures of the labs (Agg backend: no display needed), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convlens.labs.runtime import files


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 80) -> None:
    plt = pyplot()
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi), suffix=".png")
    plt.close(fig)


@dataclass(frozen=True)
class Series:
    key: str  # metric column
    label: str
    style: str = "-"


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    series: tuple[Series, ...]
    percent: bool = False  # values are fractions, shown ×100
    baseline: str = ""  # a metric drawn as a dotted horizontal line (first run, first epoch)
    baseline_label: str = ""
    log: bool = False  # a logarithmic y axis (losses that fall by orders of magnitude)


def plot_curves(
    path: Path, runs: dict[str, list[dict[str, float]]], panels: Sequence[Panel], title: str = ""
) -> None:
    """One subplot per panel, one line per (run, series), over whole-numbered epochs.

    Every point has a marker, so a one-epoch run shows its single point.
    """
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        scale = 100 if panel.percent else 1
        for r, (name, metrics) in enumerate(runs.items()):
            epochs = [m["epoch"] for m in metrics]
            prefix = f"{name} " if len(runs) > 1 else ""
            for s, series in enumerate(panel.series):
                ax.plot(
                    epochs,
                    [scale * m[series.key] for m in metrics],
                    series.style,
                    marker="o",
                    markersize=3,
                    color=f"C{r if len(runs) > 1 else s}",
                    label=f"{prefix}{series.label}",
                )
        first = next(iter(runs.values()))
        if panel.baseline and first:
            ax.axhline(
                scale * first[0][panel.baseline], color="grey", ls=":", label=panel.baseline_label
            )
        ax.set(xlabel="epoch", ylabel=panel.ylabel, title=panel.title)
        if panel.log:
            ax.set_yscale("log")
        epochs = sorted({m["epoch"] for metrics in runs.values() for m in metrics})
        if len(epochs) <= 12:  # a tick per epoch; a single epoch gets room either side
            ax.set_xticks(epochs, [str(int(e)) for e in epochs])
            ax.set_xlim(min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_grid(
    path: Path,
    rows: Sequence[tuple[str, np.ndarray]],
    title: str = "",
    captions: Sequence[str] = (),
) -> None:
    """One row per (label, images (n, H, W, 3) or (n, H, W)) in [0, 1]; ``captions`` go
    above the images of the first row."""
    plt = pyplot()
    n = len(rows[0][1])
    height = 1.0 * len(rows) + (0.6 if title else 0.2) + (0.3 if captions else 0)
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.0 * n + 0.9, height), squeeze=False, layout="constrained"
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            image = np.clip(images[c], 0, 1)
            ax.imshow(
                image,
                cmap="gray" if image.ndim == 2 else None,
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c < len(captions):
                ax.set_title(captions[c], fontsize=6)
        axes[r][0].set_ylabel(label, fontsize=7)
    if title:  # constrained layout keeps the title above the top row
        fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def plot_confusion(path: Path, matrix: np.ndarray, names: Sequence[str], title: str = "") -> None:
    """Rows: true class; columns: predicted class; each cell the count (row-normalised colour)."""
    plt = pyplot()
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * k, 1.0 + 0.45 * k), layout="constrained")
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true")
    if title:
        ax.set_title(title, fontsize=8)
    save_figure(fig, path)


def plot_labelled_images(
    path: Path, images: np.ndarray, captions: Sequence[str], columns: int = 8, title: str = ""
) -> None:
    """Images (n, H, W, 3) in [0, 1] in rows of ``columns``, each with its caption."""
    plt = pyplot()
    n = max(len(images), 1)
    rows = -(-n // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.1 * columns, 1.25 * rows + 0.4), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(np.clip(images[i], 0, 1), interpolation="nearest")
            ax.set_title(captions[i], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    save_figure(fig, path)
