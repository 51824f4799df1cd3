"""The segmentation lab's pictures, for a person to look at: predictions against the truth,
augmented training samples, the weight map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.labs import seg_data
from convlens.labs.runtime.plots import plot_grid
from convlens.labs.seg_samples import Data, Samples


def write_predictions(
    path: Path, sections: list[seg_data.Section], probabilities: list[np.ndarray], title: str
) -> None:
    """image | truth | prediction | error (red: wrong) grid, at most 6 sections."""
    shown = list(zip(sections, probabilities, strict=True))[:6]
    k = probabilities[0].shape[0] if probabilities else 2
    scale = max(k - 1, 1)
    images = np.stack([s.image for s, _ in shown])
    truths = np.stack([s.mask / scale for s, _ in shown])  # type: ignore[operator, misc]
    predicted = np.stack([p.argmax(0) / scale for _, p in shown])
    errors = np.stack([np.stack([w, np.zeros_like(w), np.zeros_like(w)], -1) for w in
                       (s.mask != p.argmax(0) for s, p in shown)]).astype(np.float32)  # fmt: skip
    plot_grid(
        path,
        [("image", images), ("truth", truths), ("prediction", predicted), ("error", errors)],
        title,
        [s.name for s, _ in shown],
    )


def write_augmented(
    path: Path, batch: Samples, crop: int, margin: int, k: int, augment: str
) -> None:
    """Training samples as the network sees them: input tile (with its mirrored margin)
    and mask (the centre)."""
    scale = max(k - 1, 1)
    images = batch.images[:, 0, margin : margin + crop, margin : margin + crop].numpy()
    rows = [("image", images), ("mask", batch.masks.numpy() / scale)]
    if batch.weights is not None:
        rows.append(("weight", (batch.weights / batch.weights.max()).numpy()))
    plot_grid(path, rows, f"augmented training samples ({augment}), epoch 1")


def write_weight_map(path: Path, data: Data) -> None:
    """The first training section, its mask and its weight map (w / max w)."""
    assert data.weights is not None
    section, weight = data.train[0], data.weights[0]
    scale = max(len(data.values) - 1, 1)
    plot_grid(
        path,
        [("", np.stack([section.image, section.mask / scale, weight / weight.max()]))],  # type: ignore[operator, list-item]
        f"{section.name}: image, mask, weight map (max {weight.max():.2f}, "
        f"w_c = {', '.join(f'{w:.2f}' for w in data.class_weights)})",
        ["image", "mask", "weight map"],
    )
