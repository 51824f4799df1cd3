"""The gradient-flow lab's figures (Matplotlib, Agg), from the numbers its JSON holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from convlens.labs.runtime.plots import pyplot, save_figure

QUANTITIES = (
    ("activation_std", "activation std"),
    ("activation_grad_norm", "‖∂L/∂activation‖"),
    ("weight_grad_norm", "‖∂L/∂W‖"),
)


def _arch_order(runs: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(run["arch"] for run in runs))


def plot_profiles(path: Path, runs: list[dict[str, Any]]) -> None:
    """One row per architecture, one column per quantity, one line per depth over the
    layers (first to last), log scale; a column shares its axis, so rows compare."""
    plt = pyplot()
    archs = _arch_order(runs)
    fig, axes = plt.subplots(
        len(archs), 3, figsize=(13, 3.0 * len(archs) + 0.6), squeeze=False, sharey="col"
    )
    depths = sorted({run["depth"] for run in runs})
    for r, arch in enumerate(archs):
        for c, (key, label) in enumerate(QUANTITIES):
            ax = axes[r][c]
            for run in (run for run in runs if run["arch"] == arch):
                values = run[key]
                ax.plot(
                    range(1, len(values) + 1),
                    values,
                    marker="o",
                    markersize=2,
                    color=f"C{depths.index(run['depth'])}",
                    label=f"{arch}-{run['depth']}",
                )
            ax.set(yscale="log", xlabel="layer (first → last = fc)", ylabel=label)
            ax.set_title(f"{arch}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    first = runs[0]
    init = first["init"] + (f" (σ = {first['init_std']})" if "init_std" in first else "")
    fig.suptitle(
        f"At initialisation, one batch of real CIFAR-10 images: norm {first['norm']}, init {init}",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path)


def plot_training(path: Path, runs: list[dict[str, Any]], title: str) -> None:
    """Top: training (dashed) and test (solid) error per epoch, one panel per
    architecture, as He et al. 2016 Fig. 6. Bottom: each net's per-layer weight-gradient
    norm, the mean over an epoch's steps, one line per epoch (dark = early)."""
    plt = pyplot()
    archs = _arch_order(runs)
    depths = sorted({run["depth"] for run in runs})
    columns = max(len(runs), 2)
    fig = plt.figure(figsize=(3.6 * columns, 7.2))
    grid = fig.add_gridspec(2, columns)
    span = columns // len(archs)
    first = None
    for a, arch in enumerate(archs):
        ax = fig.add_subplot(grid[0, a * span : (a + 1) * span], sharey=first)
        first = first or ax
        for run in (run for run in runs if run["arch"] == arch):
            epochs = range(1, len(run["train_error"]) + 1)
            colour = f"C{depths.index(run['depth'])}"
            name = f"{arch}-{run['depth']}"
            ax.plot(epochs, [100 * e for e in run["train_error"]], "--", color=colour,
                    marker="o", markersize=3, label=f"{name} train")  # fmt: skip
            ax.plot(epochs, [100 * e for e in run["test_error"]], "-", color=colour,
                    marker="o", markersize=3, linewidth=2, label=f"{name} test")  # fmt: skip
        ax.set(xlabel="epoch", ylabel="error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{arch} nets: train (dashed) and test (solid) error", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    cmap = plt.get_cmap("viridis")
    for i, run in enumerate(runs):
        ax = fig.add_subplot(grid[1, i])
        epochs = len(run["weight_grad_norm"])
        for e, norms in enumerate(run["weight_grad_norm"]):
            shade = cmap(e / max(epochs - 1, 1))
            ax.plot(range(1, len(norms) + 1), norms, color=shade, linewidth=1,
                    label=f"epoch {e + 1}" if e in (0, epochs - 1) else None)  # fmt: skip
        ax.set(yscale="log", xlabel="layer (first → last = fc)", ylabel="mean ‖∂L/∂W‖")
        ax.set_title(f"{run['arch']}-{run['depth']}: gradient norm per layer", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
