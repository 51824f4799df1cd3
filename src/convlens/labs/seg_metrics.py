"""Segmentation metrics: pixel error, IoU and Dice per class, and the ISBI 2012 challenge's
foreground-restricted Rand error and variation of information.

**Foreground-restricted**, as the challenge computes it (Arganda-Carreras et al. 2015;
Fiji's ``trainableSegmentation.metrics.RandError``): the segments are the 4-connected
regions of the non-border classes (ISBI: the cells; class 0, the membrane, separates them)
in the truth and in the prediction. Pixels that are border in the **truth** are left out
entirely (neither pairs nor counts). Pixels the **prediction** calls border but the truth
calls cell are kept, each as a segment of its own: every pair that includes one counts as
"split" in the prediction (Fiji prunes the prediction's zero component the same way).
Over the remaining n pixels, with n_ij the pixels in true segment i and predicted
segment j:

    precision = Σ n_ij(n_ij − 1) / Σ_j b_j(b_j − 1)    b_j = Σ_i n_ij
    recall    = Σ n_ij(n_ij − 1) / Σ_i a_i(a_i − 1)    a_i = Σ_j n_ij
    Rand error = 1 − 2 · precision · recall / (precision + recall)

which is scikit-image's ``adapted_rand_error`` on these label images (``ignore_labels=(0,)``
for the truth's border). The variation of information VI = H(truth | prediction) +
H(prediction | truth), in bits, over the same label images (scikit-image's
``variation_of_information`` gives the same sum): the first term measures merges, the
second splits. Both are computed per section and averaged over sections, as Fiji does
per slice. The challenge also thinned borders and took the best of several thresholds of
a probability map; here they are measured on the predicted mask as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.labs.seg_data import objects


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """(k, k) pixel counts: row = true class, column = predicted class."""
    return np.bincount(truth.ravel() * k + predicted.ravel(), minlength=k * k).reshape(k, k)


def pixel_error(matrix: np.ndarray) -> float:
    """The fraction of pixels whose predicted class is wrong."""
    return float(1 - np.trace(matrix) / matrix.sum())


def iou_and_dice(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN); NaN for a class
    that is neither true nor predicted anywhere."""
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(0) - tp
    fn = matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def predicted_segments(predicted: np.ndarray) -> np.ndarray:
    """Connected regions of the prediction's non-border classes, 1…; every border pixel
    gets a label of its own (a singleton segment) after them."""
    labels = objects(predicted)
    border = labels == 0
    labels[border] = labels.max() + 1 + np.arange(int(border.sum()))
    return labels


def rand_error(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Foreground-restricted Rand error of one section (class masks); NaN if the truth has
    no non-border pixel pair."""
    from skimage.metrics import adapted_rand_error

    true_labels = objects(truth)
    if np.count_nonzero(true_labels) < 2:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        error, _, _ = adapted_rand_error(
            true_labels, predicted_segments(predicted), ignore_labels=(0,)
        )
    # no two pixels share a predicted cell (all border): no pair right, F-score 0
    return 1.0 if np.isnan(error) else float(error)


def variation_of_information(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(merge, split) = (H(truth | prediction), H(prediction | truth)) in bits, over the
    truth's non-border pixels. Computed here from the joint distribution p_ij (the order
    of scikit-image's two terms has changed between releases; their sum is checked
    against its ``variation_of_information`` in the tests)."""
    from skimage.metrics import contingency_table

    table = contingency_table(
        objects(truth), predicted_segments(predicted), ignore_labels=(0,), normalize=True,
        sparse_type="array",
    )  # fmt: skip
    coo = table.tocoo()
    kept = coo.data > 0  # ignored pixels stay in the table as explicit zeros
    p, rows, cols = coo.data[kept], coo.row[kept], coo.col[kept]  # the non-zero p_ij
    p_true = np.asarray(table.sum(axis=1)).ravel()[rows]  # p_i of each p_ij
    p_pred = np.asarray(table.sum(axis=0)).ravel()[cols]
    merge = -np.sum(p * np.log2(p / p_pred))  # H(truth | prediction)
    split = -np.sum(p * np.log2(p / p_true))  # H(prediction | truth)
    return float(merge), float(split)


@dataclass(frozen=True)
class Scores:
    """Metrics over a set of sections (``n`` of them)."""

    pixel_error: float
    rand_error: float
    vi_merge: float
    vi_split: float
    iou: list[float]  # per class
    dice: list[float]
    n: int

    @property
    def vi(self) -> float:
        return self.vi_merge + self.vi_split


def score(truths: list[np.ndarray], predictions: list[np.ndarray], k: int) -> Scores:
    """Pixel error, IoU and Dice over all pixels of all sections; Rand error and VI per
    section, averaged."""
    matrix = sum(
        (confusion(t, p, k) for t, p in zip(truths, predictions, strict=True)),
        np.zeros((k, k), np.int64),
    )
    iou, dice = iou_and_dice(matrix)
    rand = [rand_error(t, p) for t, p in zip(truths, predictions, strict=True)]
    vis = [variation_of_information(t, p) for t, p in zip(truths, predictions, strict=True)]
    return Scores(
        pixel_error(matrix),
        float(np.nanmean(rand)) if not np.isnan(rand).all() else float("nan"),
        float(np.mean([v[0] for v in vis])),
        float(np.mean([v[1] for v in vis])),
        [float(v) for v in iou],
        [float(v) for v in dice],
        len(truths),
    )


THRESHOLDS = tuple(round(0.1 * t, 1) for t in range(1, 10))


def best_threshold_rand_error(
    truths: list[np.ndarray], cell_probabilities: list[np.ndarray]
) -> tuple[float, float]:
    """(threshold, mean Rand error) at the best of the thresholds 0.1 … 0.9 of a binary
    segmentation's cell (class 1) probability, as the challenge scored a probability map
    (one threshold for all sections)."""
    errors = {
        t: float(np.mean([rand_error(m, (p > t).astype(np.int64))
                          for m, p in zip(truths, cell_probabilities, strict=True)]))
        for t in THRESHOLDS
    }  # fmt: skip
    best = min(errors, key=lambda t: errors[t])
    return best, errors[best]
