"""Per-class precision–recall curves, raw and interpolated, and images with their
boxes (Matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convlens.detection.ap import envelope
from convlens.detection.coco import Annotation, Detection, GroundTruth
from convlens.detection.evaluate import IOU_THRESHOLDS, CocoEvaluation, VocEvaluation
from convlens.detection.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_pr_curves(
    result: CocoEvaluation | VocEvaluation,
    names: dict[int, str],
    path: str | Path,
    iou: float = 0.5,
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


def draw_boxes(
    ax: Axes,
    image: np.ndarray,
    truths: Sequence[Annotation],
    detections: Sequence[Detection],
    names: dict[int, str],
    min_score: float = 0.3,
) -> None:
    """One image (H, W, 3) on ``ax`` in pixel coordinates (pixel i spans [i, i + 1), as
    COCO boxes count), ground truth dashed green, detections scoring ≥ ``min_score`` red
    with "class score" above them; every line outlined in black, so it shows on any colour."""
    from matplotlib.patches import Rectangle
    from matplotlib.patheffects import withStroke

    outline = [withStroke(linewidth=2.2, foreground="black")]
    height, width = image.shape[:2]
    ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
    for a in truths:
        x, y, w, h = a.bbox
        ax.add_patch(
            Rectangle((x, y), w, h, fill=False, ec="lime", lw=1.0, ls="--", path_effects=outline)
        )
    for d in detections:
        if d.score < min_score:
            continue
        x, y, w, h = d.bbox
        ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="red", lw=1.0, path_effects=outline))
        ax.text(
            x, y, f"{names[d.category_id]} {d.score:.2f}", color="white", fontsize=5,
            va="bottom", bbox={"facecolor": "red", "alpha": 0.7, "pad": 0.5, "lw": 0},
        )  # fmt: skip
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()


def plot_detections(
    path: str | Path,
    images: np.ndarray,
    gt: GroundTruth,
    detections: Sequence[Detection],
    min_score: float = 0.3,
    columns: int = 4,
    title: str = "",
) -> None:
    """The first len(``images``) images of ``gt`` (N, H, W, 3), each with its boxes
    (``draw_boxes``), in rows of ``columns``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {c.id: c.name for c in gt.categories}
    shown = gt.images[: len(images)]
    truths = {im.id: [a for a in gt.annotations if a.image_id == im.id] for im in shown}
    found: dict[int, list[Detection]] = {im.id: [] for im in shown}
    for d in detections:
        if d.image_id in found:
            found[d.image_id].append(d)
    rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.2 * rows + 0.4), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, info in zip(axes.flat, images, shown, strict=False):
        draw_boxes(ax, image, truths[info.id], found[info.id], names, min_score)
    if title:
        fig.suptitle(title, fontsize=8)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
