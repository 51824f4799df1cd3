"""k-means anchors with d = 1 − IoU: the IoU of aligned sizes, convergence, seeding, the curve."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.detection.anchors import kmeans_anchors, mean_iou_by_k, plot_mean_iou, wh_iou
from convlens.detection.boxes import box_iou
from convlens.errors import DataError


@given(sizes=st.lists(st.tuples(st.floats(0.1, 50), st.floats(0.1, 50)), min_size=1, max_size=6))
def test_wh_iou_is_the_iou_of_boxes_at_the_origin(sizes) -> None:
    wh = np.asarray(sizes)
    corners = np.concatenate([np.zeros_like(wh), wh], 1)  # (0, 0, w, h)
    np.testing.assert_allclose(wh_iou(wh, wh), box_iou(corners, corners), rtol=1e-12)


def test_three_obvious_clusters_are_found() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[10, 10], [40, 15], [30, 60]], float)
    sizes = np.concatenate([c * rng.uniform(0.95, 1.05, (50, 2)) for c in centres])
    result = kmeans_anchors(sizes, 3, seed=0)
    np.testing.assert_allclose(result.anchors, centres, rtol=0.03)  # sorted by area
    assert result.mean_iou > 0.9
    # Each centroid is the mean of its members: the fixed point of Lloyd's iterations.
    for j in range(3):
        np.testing.assert_allclose(result.anchors[j], sizes[result.assignment == j].mean(0))


def _lloyd_oracle(sizes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Plain loops: assign by the highest IoU, move to the mean, until nothing changes."""

    def iou(a, b):
        inter = min(a[0], b[0]) * min(a[1], b[1])
        return inter / (a[0] * a[1] + b[0] * b[1] - inter)

    centroids = centroids.copy()
    assignment = None
    while True:
        new = [max(range(len(centroids)), key=lambda j: (iou(s, centroids[j]), -j)) for s in sizes]
        if new == assignment:
            return centroids
        assignment = new
        for j in range(len(centroids)):
            members = [s for s, a in zip(sizes, assignment, strict=True) if a == j]
            if members:
                centroids[j] = np.mean(members, 0)


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_result_is_a_fixed_point_of_lloyds_iterations(seed, k) -> None:
    sizes = np.random.default_rng(seed).uniform(1, 100, (40, 2))
    result = kmeans_anchors(sizes, k, seed=seed)
    again = _lloyd_oracle(sizes, result.anchors)
    np.testing.assert_allclose(np.sort(again, 0), np.sort(result.anchors, 0), rtol=1e-12)
    best = wh_iou(sizes, result.anchors).max(1).mean()
    assert result.mean_iou == pytest.approx(best)


def test_seeded_and_mean_iou_grows_with_k() -> None:
    sizes = np.random.default_rng(3).lognormal(3, 0.6, (300, 2))
    first = mean_iou_by_k(sizes, range(1, 7), seed=5)
    second = mean_iou_by_k(sizes, range(1, 7), seed=5)
    assert [r.anchors.tolist() for r in first] == [r.anchors.tolist() for r in second]
    ious = [r.mean_iou for r in first]
    assert all(b >= a - 0.01 for a, b in itertools.pairwise(ious))
    assert ious[-1] > ious[0] + 0.1


def test_bad_sizes_are_named(tmp_path) -> None:
    with pytest.raises(DataError, match=r"box 1 has size \[0.0, 3.0\]"):
        kmeans_anchors(np.array([[1, 2], [0, 3]]), 1)
    with pytest.raises(DataError, match="k must be between 1 and the number of boxes"):
        kmeans_anchors(np.array([[1, 2]]), 2)
    results = mean_iou_by_k(np.array([[1, 2], [3, 4], [5, 1]], float), [1, 2])
    plot_mean_iou(results, str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
