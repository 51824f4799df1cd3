"""COCO JSON in and out: round trips, and one clear message naming the bad item."""

from __future__ import annotations

import json

import pytest

from convlens.detection.coco import (
    detections_json,
    ground_truth_json,
    load_detections,
    load_ground_truth,
    parse_detections,
    parse_ground_truth,
)
from convlens.detection.files import write_json
from convlens.errors import DataError

GT = {
    "images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.png"}],
    "annotations": [
        {"id": 7, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}
    ],
    "categories": [{"id": 2, "name": "circle"}],
}
DT = [{"image_id": 1, "category_id": 2, "bbox": [1.5, 2, 3, 4], "score": 0.75}]


def test_round_trip_through_files(tmp_path) -> None:
    write_json(tmp_path / "gt.json", GT)
    gt = load_ground_truth(tmp_path / "gt.json")
    assert ground_truth_json(gt) == {**GT, "annotations": [{**GT["annotations"][0]}]}
    assert gt.category_name(2) == "circle"
    write_json(tmp_path / "dt.json", DT)
    assert detections_json(load_detections(tmp_path / "dt.json", gt)) == DT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dt.json", "gt.json"]


def test_missing_area_is_the_box_area() -> None:
    raw = json.loads(json.dumps(GT))
    del raw["annotations"][0]["area"]
    assert parse_ground_truth(raw).annotations[0].area == 12.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.pop("categories"), r"missing 'categories'"),
        (lambda g: g["annotations"][0].pop("bbox"), r"annotations\[0\]: missing 'bbox'"),
        (
            lambda g: g["annotations"][0].update(bbox=[1, 2, -3, 4]),
            r"annotations\[0\]: 'bbox' \[1, 2, -3, 4\] has a negative width",
        ),
        (
            lambda g: g["annotations"][0].update(image_id=9),
            r"annotations\[0\]: image_id 9 is not in 'images'",
        ),
        (
            lambda g: g["annotations"][0].update(category_id=5),
            r"annotations\[0\]: category_id 5 is not in 'categories'",
        ),
        (lambda g: g["images"].append({"id": 1}), r"images\[1\]: image id 1 appears twice"),
        (lambda g: g["annotations"][0].update(bbox=[1, 2, 3]), r"expected \[x, y, width"),
        (lambda g: g["annotations"][0].update(id="x"), r"'id' is 'x'; expected an integer"),
    ],
)
def test_bad_ground_truth_is_named(change, message) -> None:
    raw = json.loads(json.dumps(GT))
    change(raw)
    with pytest.raises(DataError, match=message):
        parse_ground_truth(raw, "gt.json")


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ({"image_id": 3}, r"detection 0: image_id 3 is not an image of the ground truth"),
        ({"category_id": 4}, r"detection 0: category_id 4 is not a category .*ids: 2"),
        ({"score": float("nan")}, r"detection 0: 'score' is nan"),
        ({"score": "high"}, r"'score' is 'high'; expected a finite number"),
        ({"bbox": [0, 0, 1, -1]}, r"negative width or height"),
    ],
)
def test_bad_detection_is_named(detection, message) -> None:
    gt = parse_ground_truth(GT)
    with pytest.raises(DataError, match=message):
        parse_detections([{**DT[0], **detection}], gt, "dt.json")


def test_malformed_json_names_the_file_and_place(tmp_path) -> None:
    path = tmp_path / "dt.json"
    path.write_text('[{"image_id": 1,,}]')
    with pytest.raises(DataError, match=r"dt.json: not valid JSON \(.* line 1, column 17\)"):
        load_detections(path)
    with pytest.raises(DataError, match=r"does not exist"):
        load_ground_truth(tmp_path / "missing.json")
    with pytest.raises(DataError, match=r"expected a list of detections"):
        parse_detections({"oops": 1})


def test_written_files_have_a_normal_mode(tmp_path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "x.json", {})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
