"""Anchor boxes by k-means with the distance 1 − IoU (YOLOv2's "dimension clusters").

Only widths and heights matter: every box is placed at the origin, so the IoU of boxes
(w₁, h₁) and (w₂, h₂) is min(w₁, w₂)·min(h₁, h₂) / (w₁h₁ + w₂h₂ − min·min). Euclidean
k-means on (w, h) would let big boxes dominate the error; 1 − IoU does not (Redmon &
Farhadi 2017, Section 2, Figure 2: mean IoU with the closest centroid against k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.detection.coco import GroundTruth
from convlens.detection.files import atomic_write
from convlens.errors import DataError


def wh_iou(boxes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N, K) IoU of (w, h) pairs aligned at a common corner."""
    inter = np.minimum(boxes[:, None, 0], centroids[None, :, 0]) * np.minimum(
        boxes[:, None, 1], centroids[None, :, 1]
    )
    union = (boxes[:, 0] * boxes[:, 1])[:, None] + (centroids[:, 0] * centroids[:, 1])[None] - inter
    return inter / union


@dataclass(frozen=True)
class AnchorClusters:
    """k centroids (w, h), sorted by area, and how well they fit the boxes."""

    k: int
    anchors: np.ndarray  # (k, 2)
    mean_iou: float  # mean over boxes of the IoU with the closest anchor
    assignment: np.ndarray  # (N,) index into anchors
    iterations: int


def box_sizes(gt: GroundTruth, grid: int | None = None) -> tuple[np.ndarray, str]:
    """(N, 2) widths and heights of the ground-truth boxes, in pixels or in grid cells.

    With ``grid`` = S, sizes are in cells of an S×S grid laid over each image (YOLOv2's
    anchors are given that way: multiply by the stride for pixels).
    """
    images = {im.id: im for im in gt.images}
    sizes = []
    for a in gt.annotations:
        w, h = a.bbox[2], a.bbox[3]
        if grid is not None:
            image = images[a.image_id]
            if not image.width or not image.height:
                raise DataError(f"grid cells need image sizes: image {image.id} has none.")
            w, h = w / image.width * grid, h / image.height * grid
        sizes.append((w, h))
    if not sizes:
        raise DataError("the ground truth has no boxes to cluster.")
    unit = f"cells of a {grid}×{grid} grid" if grid else "pixels"
    return np.asarray(sizes, float), unit


def _check_sizes(sizes: np.ndarray) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.ndim != 2 or sizes.shape[1] != 2:
        raise DataError(f"box sizes must be (N, 2) widths and heights; got shape {sizes.shape}.")
    bad = np.flatnonzero(~np.isfinite(sizes).all(1) | (sizes <= 0).any(1))
    if bad.size:
        raise DataError(
            f"box {bad[0]} has size {sizes[bad[0]].tolist()}; widths and heights must be "
            "positive for IoU clustering."
        )
    return sizes


def _initial(sizes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with 1 − IoU: each next centre drawn ∝ its distance² to the nearest."""
    centres = [sizes[rng.integers(len(sizes))]]
    for _ in range(1, k):
        distance = 1 - wh_iou(sizes, np.asarray(centres)).max(1)
        weights = distance**2
        total = weights.sum()
        index = rng.choice(len(sizes), p=weights / total) if total > 0 else rng.integers(len(sizes))
        centres.append(sizes[index])
    return np.asarray(centres)


def kmeans_anchors(
    sizes: np.ndarray, k: int, seed: int = 0, max_iterations: int = 300
) -> AnchorClusters:
    """Cluster box sizes (N, 2) into k anchors with the distance d = 1 − IoU.

    Lloyd's iterations: assign each box to the centroid of highest IoU, move each centroid
    to the mean (w, h) of its boxes, until no assignment changes. Seeded (k-means++), so
    the same ``seed`` gives the same anchors. A cluster left empty takes the box worst
    served by the others.
    """
    sizes = _check_sizes(sizes)
    if not 1 <= k <= len(sizes):
        raise DataError(f"k must be between 1 and the number of boxes ({len(sizes)}); got {k}.")
    rng = np.random.default_rng(seed)
    centroids = _initial(sizes, k, rng)
    assignment = np.full(len(sizes), -1)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported below)
        new = wh_iou(sizes, centroids).argmax(1)
        if np.array_equal(new, assignment):
            break
        assignment = new
        for j in range(k):
            members = sizes[assignment == j]
            if len(members):
                centroids[j] = members.mean(0)
            else:
                worst = int(wh_iou(sizes, centroids).max(1).argmin())
                centroids[j] = sizes[worst]
    order = np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")
    centroids = centroids[order]
    ious = wh_iou(sizes, centroids)
    return AnchorClusters(k, centroids, float(ious.max(1).mean()), ious.argmax(1), iterations)


def mean_iou_by_k(sizes: np.ndarray, ks: range | list[int], seed: int = 0) -> list[AnchorClusters]:
    """The YOLOv2 Figure 2 curve: clusters for each k (same seed)."""
    return [kmeans_anchors(sizes, k, seed) for k in ks]


def plot_mean_iou(results: list[AnchorClusters], path: str, k: int | None = None) -> None:
    """Mean IoU against k (left) and the k anchors' shapes (right; default the largest k)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot([r.k for r in results], [r.mean_iou for r in results], "o-")
    left.set_xlabel("number of clusters k")
    left.set_ylabel("mean IoU with the closest anchor")
    left.grid(alpha=0.3)
    shown = next((r for r in results if r.k == k), results[-1])
    scale = shown.anchors.max()
    for w, h in shown.anchors:
        right.add_patch(plt.Rectangle((-w / 2, -h / 2), w, h, fill=False))
    right.set_xlim(-scale / 2 * 1.05, scale / 2 * 1.05)
    right.set_ylim(-scale / 2 * 1.05, scale / 2 * 1.05)
    right.set_aspect("equal")
    right.set_title(f"the k = {shown.k} anchors, centred")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
