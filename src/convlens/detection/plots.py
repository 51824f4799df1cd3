"""Per-class precision–recall curves (Matplotlib, Agg), raw and interpolated."""

from __future__ import annotations

import numpy as np

from convlens.detection.ap import envelope
from convlens.detection.evaluate import IOU_THRESHOLDS, CocoEvaluation, VocEvaluation
from convlens.detection.files import atomic_write


def plot_pr_curves(
    result: CocoEvaluation | VocEvaluation, names: dict[int, str], path: str, iou: float = 0.5
) -> None:
    """One panel per class: precision against recall (thin) and its envelope (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(result, CocoEvaluation):
        t = int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))[0])
        curves = {k: result.curves.get((k, t)) for k in result.category_ids}
    else:
        curves = {k: result.curves.get(k) for k in sorted(names)}
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), squeeze=False)
    for ax, (k, curve) in zip(axes[0], curves.items(), strict=True):
        ax.set_title(f"{names[k]} (IoU {iou:.2f})")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
        if curve is None or not len(curve.curve.recall):
            ax.text(0.5, 0.5, "no AP", ha="center")
            continue
        recall, precision = curve.curve.recall, curve.curve.precision
        ax.plot(recall, precision, lw=0.8, alpha=0.6, label="precision")
        ax.step(recall, envelope(precision), where="post", lw=1.8, label="envelope")
        ax.legend(loc="lower left", fontsize=8)
        ax.text(0.98, 0.98, f"AP {curve.ap.ap:.3f}", ha="right", va="top", transform=ax.transAxes)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
