"""The gradient-flow lab's figures (Matplotlib, Agg), from the numbers its JSON holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from convlens.labs.runtime.plots import pyplot, save_figure

PAPER_FIG6 = (
    "He et al. 2016, Fig. 6 (full CIFAR-10): plain-56 has higher training and test error than "
    "plain-20; ResNet-56 lower than ResNet-20"
)
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
        n_epochs = len(run["weight_grad_norm"])
        for e, norms in enumerate(run["weight_grad_norm"]):
            shade = cmap(e / max(n_epochs - 1, 1))
            ax.plot(range(1, len(norms) + 1), norms, color=shade, linewidth=1,
                    label=f"epoch {e + 1}" if e in (0, n_epochs - 1) else None)  # fmt: skip
        ax.set(yscale="log", xlabel="layer (first → last = fc)", ylabel="mean ‖∂L/∂W‖")
        ax.set_title(f"{run['arch']}-{run['depth']}: gradient norm per layer", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}\n{PAPER_FIG6}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_bn(path: Path, result: dict[str, Any]) -> None:
    """(a) the weight gradient and the output against the scale a; (b) the spread of the
    batch statistics, one image's dependence on its batch-mates and the test accuracy
    against the batch size; (c) accuracy with batch statistics against eval mode."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.6))
    scale, batch, modes = result["scale"], result["batch"], result["modes"]
    a = [r["a"] for r in scale["rows"]]
    ax = axes[0][0]
    base = next(r["weight_grad_norm"] for r in scale["rows"] if r["a"] == 1.0) if 1.0 in a else None
    ax.plot(a, [r["weight_grad_norm"] for r in scale["rows"]], "o-", label="measured ‖∂L/∂(aW)‖")
    if base is not None:
        ax.plot(a, [base / x for x in a], "k:", label="‖∂L/∂W‖ / a")
    ax.set(xscale="log", yscale="log", xlabel="scale a of W", ylabel="weight-gradient norm")
    ax.set_title("(a) the gradient scales as 1/a", fontsize=9)
    ax = axes[0][1]
    ax.plot(a, [max(r["output_scale_deviation"], 1e-17) for r in scale["rows"]], "o-",
            label="measured: max |std ratio − 1|")  # fmt: skip
    ax.plot(a, [max(r["predicted_scale_deviation"], 1e-17) for r in scale["rows"]], "k:",
            label="√((σ²+ε)/(σ²+ε/a²)) − 1")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="scale a of W", ylabel="deviation of BN(aWx)")
    ax.set_title("(a) BN(aWx) = BN(Wx) up to ε", fontsize=9)
    sizes = [r["batch_size"] for r in batch["statistics"]]
    ax = axes[0][2]
    ax.plot(sizes, [r["mean_spread"] for r in batch["statistics"]], "o-", label="batch mean")
    ax.plot(sizes, [r["var_spread"] for r in batch["statistics"]], "o-", label="batch variance")
    first = batch["statistics"][0]
    ax.plot(sizes, [first["mean_spread"] * (sizes[0] / s) ** 0.5 for s in sizes], "k:",
            label="∝ 1/√B")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="std over batches")
    ax.set_title(f"(b) BN statistics at {batch['layer'].split()[0]}", fontsize=9)
    ax = axes[1][0]
    for norm, rows in batch["dependence"].items():
        values = [max(r["dependence"], 1e-17) for r in rows]
        ax.plot([r["batch_size"] for r in rows], values, "o-", label=norm)
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="relative std")
    ax.set_title("(b) one image's output vs its batch-mates (train mode)", fontsize=9)
    ax = axes[1][1]
    for norm in batch["dependence"]:
        rows = [r for r in batch["accuracy"] if r["norm"] == norm]
        acc = [100 * r["test_accuracy"] for r in rows]
        low = [100 * (r["test_accuracy"] - r["ci95"][0]) for r in rows]
        high = [100 * (r["ci95"][1] - r["test_accuracy"]) for r in rows]
        ax.errorbar([r["batch_size"] for r in rows], acc, yerr=[low, high], marker="o",
                    capsize=3, label=norm)  # fmt: skip
    ax.set(xscale="log", xlabel="batch size B (lr ∝ B)", ylabel="test accuracy (%)")
    ax.set_title("(b) short trainings: 95 % bootstrap intervals", fontsize=9)
    ax = axes[1][2]
    rows = modes["train_mode"]
    ax.plot([r["batch_size"] for r in rows], [100 * r["train_mode_accuracy"] for r in rows],
            "o-", label="train mode (batch statistics)")  # fmt: skip
    ax.axhline(100 * modes["eval_mode_accuracy"], color="k", ls=":", label="eval mode")
    ax.set(xscale="log", xlabel="test batch size", ylabel="test accuracy (%)")
    ax.set_title("(c) the BN net evaluated in each mode", fontsize=9)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in (axes[0][2], axes[1][0], axes[1][1], axes[1][2]):
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
    fig.tight_layout()
    save_figure(fig, path)
