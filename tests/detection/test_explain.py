"""Worked steps add up to the numbers reported: IoU pieces, NMS steps, AP interpolations."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convlens.detection.ap import (
    ap_all_points,
    ap_coco101,
    ap_voc07,
    envelope,
    pr_curve,
)
from convlens.detection.boxes import (
    box_iou,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
)
from convlens.detection.evaluate import ClassCurve
from convlens.detection.explain import pair_work
from convlens.detection.nms import nms_steps
from convlens.detection.render import Doc, render_curve, render_iou, render_nms
from tests.detection.test_boxes import xyxy_boxes


@given(boxes=xyxy_boxes(min_size=2, max_size=2))
def test_pair_work_recombines_into_the_reported_values(boxes) -> None:
    a, b = boxes
    w = pair_work(a, b)
    assert w.inter == pytest.approx(w.inter_w * w.inter_h)
    assert w.union == pytest.approx(w.area_a + w.area_b - w.inter)
    for value, function in (
        (w.iou, box_iou),
        (w.giou, generalized_box_iou),
        (w.diou, distance_box_iou),
        (w.ciou, complete_box_iou),
    ):
        assert value == pytest.approx(float(function([a], [b])[0, 0]), abs=1e-12)


@settings(max_examples=60)
@given(
    boxes=xyxy_boxes(min_size=0, max_size=10, integer=True),
    threshold=st.sampled_from([0.0, 0.3, 0.5, 0.7]),
    data=st.data(),
)
def test_nms_steps_account_for_every_box(boxes, threshold, data) -> None:
    scores = [data.draw(st.sampled_from([0.2, 0.5, 0.9])) for _ in boxes]
    result = nms_steps(boxes, scores, threshold)
    assert [s.kept for s in result.steps] == result.keep.tolist()
    suppressed = [i for s in result.steps for i in s.suppressed]
    assert sorted(result.keep.tolist() + suppressed) == list(range(len(boxes)))
    for step in result.steps:
        for c in step.compared:
            assert c.suppressed == (c.iou > threshold)
            assert c.iou == pytest.approx(
                float(box_iou([boxes[step.kept]], [boxes[c.index]])[0, 0])
            )


@given(
    flags=st.lists(st.booleans(), min_size=0, max_size=30),
    extra=st.integers(0, 5),
)
def test_ap_steps_add_up(flags, extra) -> None:
    positives = sum(flags) + extra
    assume(positives > 0)  # no ground truth: AP is undefined (tested on its own)
    scores = np.linspace(1, 0, len(flags), endpoint=False)
    curve = pr_curve(scores, np.asarray(flags, bool), positives)
    voc = ap_all_points(curve)
    assert voc.ap == pytest.approx(sum(s.area for s in voc.segments))
    assert sum(s.recall_to - s.recall_from for s in voc.segments) == pytest.approx(
        curve.recall[-1] if len(flags) else 0.0
    )
    eleven = ap_voc07(curve)
    assert len(eleven.points) == 11
    assert eleven.ap == pytest.approx(np.mean([p.precision for p in eleven.points]))
    coco = ap_coco101(curve)
    assert len(coco.points) == 101
    assert coco.ap == pytest.approx(np.mean([p.precision for p in coco.points]))
    # Interpolated precision never increases with recall, and never falls below the raw value.
    smooth = envelope(curve.precision)
    assert np.all(np.diff(smooth) <= 0) and np.all(smooth >= curve.precision)
    # The three agree on a perfect ranking: AP = recall reached.
    if all(flags) and flags and extra == 0:
        assert voc.ap == pytest.approx(1) and eleven.ap == 1 and coco.ap == 1


def test_ap_by_hand_with_a_dip() -> None:
    # TP FP TP with P = 2: precision 1, ½, ⅔; recall ½, ½, 1.
    curve = pr_curve(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap_all_points(curve).ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert ap_voc07(curve).ap == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert ap_coco101(curve).ap == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)


def test_rendered_working_shows_the_arithmetic() -> None:
    a, b = np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 5, 15, 15]])
    text = render_iou(a, b, {"iou": box_iou(a, b)}, [(0, 0, pair_work(a[0], b[0]))])
    assert "5 × 5 = 25" in text and "100 + 100 − 25 = 175" in text
    markdown = render_iou(a, b, {"iou": box_iou(a, b)}, [], fmt="markdown")
    assert "| a0 | 0.1429 |" in markdown
    boxes = np.array([[0.0, 0, 10, 10], [1, 1, 11, 11]])
    text = render_nms(nms_steps(boxes, [0.9, 0.8], 0.5), boxes, np.array([0.9, 0.8]), None, True)
    assert "box 1: IoU 0.6807 > 0.5 → suppressed" in text


def test_doc_table_aligns_numbers_right_and_names_left() -> None:
    doc = Doc("text")
    doc.table(["name", "value"], [["a", "1"], ["longer", "100"]])
    assert doc.lines == ["name    value", "a           1", "longer    100"]


def _rendered_interpolation(flags: list[bool], positives: int) -> list[str]:
    scores = np.linspace(1, 0, len(flags), endpoint=False)
    curve = pr_curve(scores, np.asarray(flags, bool), positives, coco=True)
    doc = Doc("text")
    render_curve(doc, "thing", ClassCurve(1, 0.5, curve, (), ap_coco101(curve)))
    return doc.lines


def test_coco_working_of_a_class_with_only_false_positives() -> None:
    # r = 0 reads rank 1 (precision 0); no rank reaches any later point: two runs, not one
    # run from rank 1 to "no rank" (which crashed adding 1 to None).
    lines = _rendered_interpolation([False, False], 3)
    assert "  r = 0.00 … 0.00 (1 points): p̂ = 0.0000 (rank 1)" in lines
    assert "  r = 0.01 … 1.00 (100 points): p̂ = 0.0000 (no rank reaches them)" in lines


@given(flags=st.lists(st.booleans(), min_size=1, max_size=20), extra=st.integers(0, 3))
@settings(max_examples=50)
def test_coco_working_runs_cover_the_101_points(flags, extra) -> None:
    positives = sum(flags) + extra
    assume(positives > 0)
    lines = _rendered_interpolation(flags, positives)
    counts = [int(m) for line in lines for m in re.findall(r"\((\d+) points\)", line)]
    assert sum(counts) == 101
    scores = np.linspace(1, 0, len(flags), endpoint=False)
    ap = ap_coco101(pr_curve(scores, np.asarray(flags, bool), positives, coco=True)).ap
    assert lines[-1].endswith(f"/ 101 = {ap:.4f}")
