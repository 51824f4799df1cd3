"""Segmentation metrics against hand-computed values, a brute-force count over every pixel
pair (the foreground-restricted Rand error as Fiji defines it) and scikit-image."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import adapted_rand_error, variation_of_information

from convlens.labs.seg_data import objects
from convlens.labs.seg_metrics import (
    best_threshold_rand_error,
    confusion,
    iou_and_dice,
    pixel_error,
    predicted_segments,
    rand_error,
    score,
)
from convlens.labs.seg_metrics import variation_of_information as vi


def test_pixel_error_iou_and_dice_by_hand() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])
    matrix = confusion(truth, predicted, 2)
    np.testing.assert_array_equal(matrix, [[2, 1], [1, 4]])
    assert pixel_error(matrix) == 2 / 8
    iou, dice = iou_and_dice(matrix)
    np.testing.assert_allclose(iou, [2 / (2 + 1 + 1), 4 / (4 + 1 + 1)])
    np.testing.assert_allclose(dice, [2 * 2 / (2 * 2 + 2), 2 * 4 / (2 * 4 + 2)])


def brute_force_rand_error(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Every pair of pixels that are cell (non-border) in the truth: same true cell?
    same predicted cell (a pixel the prediction calls border is in no cell)?"""
    true_cells, predicted_cells = objects(truth).ravel(), objects(predicted).ravel()
    kept = np.flatnonzero(true_cells)
    both = same_true = same_predicted = 0
    for a, b in itertools.combinations(kept, 2):
        t = true_cells[a] == true_cells[b]
        p = predicted_cells[a] == predicted_cells[b] and predicted_cells[a] > 0
        both += t and p
        same_true += t
        same_predicted += p
    if both == 0:
        return 1.0
    precision, recall = both / same_predicted, both / same_true
    return 1 - 2 * precision * recall / (precision + recall)


masks = st.integers(0, 2**31 - 1).map(
    lambda seed: (np.random.default_rng(seed).random((7, 8)) < 0.7).astype(np.int64)
)


@settings(max_examples=40, deadline=None)
@given(masks, masks)
def test_rand_error_equals_a_count_over_every_pixel_pair(
    truth: np.ndarray, predicted: np.ndarray
) -> None:
    assert rand_error(truth, predicted) == pytest.approx(brute_force_rand_error(truth, predicted))


def test_rand_error_by_hand() -> None:
    """Truth: two cells of 3 pixels split by a border column. Prediction: one merged cell
    of 6 (the border pixel of the truth is ignored whatever is predicted there)."""
    truth = np.array([[1, 1, 1, 0, 1, 1, 1]])
    merged = np.ones_like(truth)
    # pairs among the 6 cell pixels: 3 + 3 truly together, all 15 together in the prediction
    precision, recall = 6 / 15, 6 / 6
    assert rand_error(truth, merged) == pytest.approx(
        1 - 2 * precision * recall / (precision + recall)
    )
    assert rand_error(truth, truth) == 0.0
    # a predicted border pixel inside a true cell is a segment of its own: only splits
    split = np.array([[1, 0, 1, 0, 1, 1, 1]])
    precision, recall = 3 / 3, 3 / 6
    assert rand_error(truth, split) == pytest.approx(
        1 - 2 * precision * recall / (precision + recall)
    )
    assert rand_error(truth, np.zeros_like(truth)) == 1.0  # all border: no pair right


def test_without_predicted_border_it_is_scikit_images_adapted_rand_error() -> None:
    rng = np.random.default_rng(1)
    truth = (rng.random((40, 40)) < 0.8).astype(np.int64)
    predicted = np.ones_like(truth)  # no border predicted: segments are the same either way
    expected = adapted_rand_error(objects(truth), objects(predicted), ignore_labels=(0,))[0]
    assert rand_error(truth, predicted) == pytest.approx(expected)


def test_predicted_border_pixels_are_singletons() -> None:
    predicted = np.array([[1, 0, 1], [0, 0, 1]])
    labels = predicted_segments(predicted)
    assert labels[0, 0] != labels[0, 2] and labels[0, 2] == labels[1, 2]
    border = labels[predicted == 0]
    assert len(set(border.tolist())) == 3 and border.min() > labels[predicted == 1].max()


def test_variation_of_information_by_hand_and_against_scikit_image() -> None:
    truth = np.array([[1, 1, 0, 1, 1]])  # two cells of 2 (the border pixel is ignored)
    merged = np.ones_like(truth)
    merge, split = vi(truth, merged)
    assert (merge, split) == pytest.approx((1.0, 0.0))  # H(truth | one segment) = 1 bit
    # predicted segments over the kept pixels 0, 1, 3, 4: {0}, {1} (border: a singleton),
    # {3} (the cell {2, 3}), {4} (border): each true cell is cut into two halves
    quartered = np.array([[1, 0, 1, 1, 0]])
    merge, split = vi(truth, quartered)
    assert (merge, split) == pytest.approx((0.0, -math.log2(0.5)))
    rng = np.random.default_rng(2)
    for _ in range(5):
        t = (rng.random((20, 20)) < 0.75).astype(np.int64)
        p = (rng.random((20, 20)) < 0.75).astype(np.int64)
        total = variation_of_information(objects(t), predicted_segments(p), ignore_labels=(0,))
        assert sum(vi(t, p)) == pytest.approx(float(np.sum(total)))


def test_score_aggregates_pixels_over_sections_and_rand_error_per_section() -> None:
    a = np.array([[1, 1, 0, 1, 1]])
    b = np.array([[1, 1, 1, 1, 1, 1]])
    pa, pb = np.ones_like(a), np.ones_like(b)
    scores = score([a, b], [pa, pb], 2)
    assert scores.pixel_error == pytest.approx(1 / 11)
    assert scores.rand_error == pytest.approx((rand_error(a, pa) + 0.0) / 2)
    assert scores.iou == pytest.approx([0.0, 10 / 11]) and scores.n == 2


def test_the_best_threshold_is_the_one_that_recovers_the_truth() -> None:
    """Cell probability 0.75 inside cells, 0.65 on the border: only thresholds 0.7 and
    above separate the cells (0.7 first)."""
    truth = np.array([[1, 1, 1, 0, 1, 1, 1], [1, 1, 1, 0, 1, 1, 1]])
    probability = np.where(truth == 1, 0.75, 0.65)
    threshold, error = best_threshold_rand_error([truth], [probability])
    assert (threshold, error) == (0.7, 0.0)
    precision = 2 * (6 * 5) / (12 * 11)  # merged at 0.5: 2 cells of 6 pixels in one of 12
    merged = rand_error(truth, (probability > 0.5).astype(np.int64))
    assert merged == pytest.approx(1 - 2 * precision / (precision + 1))
