"""COCO mAP equal to pycocotools' COCOeval on hundreds of random detection sets; VOC AP by hand."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from convlens.detection.coco import parse_detections, parse_ground_truth
from convlens.detection.evaluate import evaluate_coco, evaluate_voc

SUMMARY_ORDER = [
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
]  # fmt: skip


def _box(draw: st.DrawFn, size: float = 300) -> list[float]:
    # Widths from 2 to 150 px so all three COCO area ranges occur; sometimes integers.
    w = draw(st.floats(2, 150))
    h = draw(st.floats(2, 150))
    x = draw(st.floats(0, size - w))
    y = draw(st.floats(0, size - h))
    box = [x, y, w, h]
    return [float(round(v)) for v in box] if draw(st.booleans()) else box


def _jitter(draw: st.DrawFn, box: list[float]) -> list[float]:
    """A detection near a ground-truth box: IoU anywhere from about 0.3 to 1."""
    x, y, w, h = box
    dx, dy = draw(st.floats(-0.3, 0.3)) * w, draw(st.floats(-0.3, 0.3)) * h
    sw, sh = draw(st.floats(0.7, 1.4)), draw(st.floats(0.7, 1.4))
    if draw(st.integers(0, 5)) == 0:
        return list(box)  # an exact hit
    return [x + dx, y + dy, w * sw, h * sh]


@st.composite
def coco_sets(draw: st.DrawFn, max_per_image: int = 12):
    image_ids = draw(st.lists(st.integers(1, 50), min_size=1, max_size=4, unique=True))
    category_ids = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
    annotations, detections = [], []
    for image_id in image_ids:
        for _ in range(draw(st.integers(0, 5))):
            here = [a["bbox"] for a in annotations if a["image_id"] == image_id]
            # Overlapping ground truth (crowds over people, nested boxes of two area ranges)
            # makes detections choose between boxes: the rules for ties, taken and ignored
            # boxes all come into play.
            box = (
                _jitter(draw, draw(st.sampled_from(here)))
                if here and draw(st.booleans())
                else _box(draw)
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,  # pycocotools takes id 0 for "unmatched"
                    "image_id": image_id,
                    "category_id": draw(st.sampled_from(category_ids)),
                    "bbox": box,
                    # COCO's area is the mask's, not the box's: smaller, and it decides the range
                    "area": box[2] * box[3] * draw(st.sampled_from([1.0, 0.8, 0.5])),
                    "iscrowd": int(draw(st.integers(0, 5)) == 0),
                }
            )
        near = [a for a in annotations if a["image_id"] == image_id]
        for _ in range(draw(st.integers(0, max_per_image))):
            if near and draw(st.booleans()):
                source = draw(st.sampled_from(near))
                box, category = _jitter(draw, source["bbox"]), source["category_id"]
                if draw(st.integers(0, 4)) == 0:  # right place, wrong class
                    category = draw(st.sampled_from(category_ids))
            else:
                box, category = _box(draw), draw(st.sampled_from(category_ids))
            # Few distinct scores: ties exercise the stable orderings.
            score = draw(st.sampled_from([0.9, 0.8, 0.5, 0.5, 0.3]) | st.floats(0.01, 1))
            detections.append(
                {"image_id": image_id, "category_id": category, "bbox": box, "score": score}
            )
    gt = {
        "images": [{"id": i, "width": 300, "height": 300} for i in image_ids],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class{c}"} for c in category_ids],
    }
    return gt, detections


def pycocotools_eval(gt: dict, detections: list[dict]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        evaluation = COCOeval(coco_gt, coco_dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def assert_same_as_pycocotools(gt: dict, detections: list[dict]) -> None:
    ground_truth = parse_ground_truth(gt)
    ours = evaluate_coco(ground_truth, parse_detections(detections, ground_truth))
    reference = pycocotools_eval(gt, detections)
    np.testing.assert_allclose(
        [ours.stats[k] for k in SUMMARY_ORDER], reference.stats, atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(ours.precision, reference.eval["precision"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, reference.eval["recall"], atol=1e-6, rtol=0)


@given(case=coco_sets())
@settings(max_examples=300)
def test_coco_map_equals_pycocotools(case) -> None:
    gt, detections = case
    assume(detections)  # pycocotools' loadRes cannot take an empty list (tested by hand below)
    assert_same_as_pycocotools(gt, detections)


@given(case=coco_sets(max_per_image=120))
@settings(max_examples=12)
def test_coco_map_equals_pycocotools_past_the_detection_limits(case) -> None:
    """More than 100 detections in an image: the 1 / 10 / 100 limits truncate."""
    gt, detections = case
    assume(detections)
    assert_same_as_pycocotools(gt, detections)


def _tiny_gt(**overrides) -> dict:
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "area": 100},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    gt.update(overrides)
    return gt


def test_worked_coco_case() -> None:
    """Ranked TP, FP, TP with 2 ground-truth boxes: precision 1, ½, ⅔ at recall ½, ½, 1."""
    gt = parse_ground_truth(_tiny_gt())
    detections = parse_detections(
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [30, 30, 10, 10], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.7},
        ],
        gt,
    )
    result = evaluate_coco(gt, detections)
    # Envelope: 1 up to recall ½, ⅔ after. Recall points 0 … 0.50 (51 of them) read 1,
    # 0.51 … 1.00 (50) read ⅔. Every IoU threshold sees the same (exact hits).
    expected = (51 * 1 + 50 * (2 / 3)) / 101
    assert result.stats["AP"] == pytest.approx(expected, abs=1e-12)
    assert result.class_ap(1) == pytest.approx(expected, abs=1e-12)
    # Class 2 has no ground truth: no AP, and the mean leaves it out.
    assert result.class_ap(2) is None
    curve = result.curves[(1, 0)]
    assert [r.outcome for r in curve.ranked] == ["TP", "FP", "TP"]
    assert curve.curve.precision.tolist() == pytest.approx([1, 0.5, 2 / 3])


def test_empty_detections_give_zero_ap_for_classes_with_ground_truth() -> None:
    gt = parse_ground_truth(_tiny_gt())
    result = evaluate_coco(gt, ())
    assert result.stats["AP"] == 0.0 and result.stats["AR100"] == 0.0
    assert result.class_ap(1) == 0.0 and result.class_ap(2) is None


def test_no_ground_truth_at_all_gives_no_map() -> None:
    gt = parse_ground_truth(_tiny_gt(annotations=[]))
    detections = parse_detections(
        [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], gt
    )
    result = evaluate_coco(gt, detections)
    assert result.stats["AP"] == -1.0  # COCOeval's "no value"
    assert evaluate_voc(gt, detections).map is None


def test_voc_ap_by_hand() -> None:
    """Ranks TP, FP, TP, FP with 3 positives: precision 1, ½, ⅔, ½ at recall ⅓, ⅓, ⅔, ⅔."""
    gt = parse_ground_truth(
        _tiny_gt(
            annotations=[
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10]},
                {"id": 3, "image_id": 1, "category_id": 1, "bbox": [80, 0, 10, 10]},
            ]
        )
    )
    detections = parse_detections(
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.8},  # duplicate
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.7},
            {"image_id": 1, "category_id": 1, "bbox": [30, 30, 5, 5], "score": 0.6},
        ],
        gt,
    )
    all_points = evaluate_voc(gt, detections, "voc")
    curve = all_points.curves[1]
    assert [r.outcome for r in curve.ranked] == ["TP", "FP", "TP", "FP"]
    assert "already detected" in curve.ranked[1].reason
    # Envelope 1, ⅔, ⅔, ½; recall steps 0 → ⅓ (precision 1) and ⅓ → ⅔ (precision ⅔).
    assert all_points.map == pytest.approx(1 / 3 * 1 + 1 / 3 * (2 / 3))
    # 11 points: r = 0 … 0.3 → 1 (4 points), 0.4 … 0.6 → ⅔ (3 points), 0.7 … 1 → 0.
    assert evaluate_voc(gt, detections, "voc07").map == pytest.approx((4 + 3 * 2 / 3) / 11)
    assert all_points.excluded == (2,)
