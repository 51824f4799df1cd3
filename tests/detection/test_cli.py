"""``convlens detect …`` driven through the real Typer app: numbers, working, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from convlens.cli.main import app
from convlens.detection.boxes import box_iou
from convlens.detection.coco import parse_detections, parse_ground_truth
from convlens.detection.decode import YOLOV3_ANCHORS, decode_yolov3
from convlens.detection.evaluate import evaluate_coco
from convlens.detection.files import write_json
from convlens.detection.synthetic import make_dataset

runner = CliRunner()


def detect(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["detect", *[str(a) for a in args]])
    return result.exit_code, result.stdout, result.stderr


def test_iou_matrix_and_working() -> None:
    code, out, _ = detect(
        "iou", "--a", "[[0,0,10,10]]", "--b", "[[5,5,15,15],[10,0,20,10]]", "--explain"
    )
    assert code == 0
    assert "25 / 175 = 0.1429" in out  # the worked intersection over union
    assert "(no overlap)" in out
    code, out, _ = detect(
        "iou", "--a", "0,0,10,10", "--b", "5,5,10,10", "--box-format", "xywh", "--kind", "all",
        "--format", "json",
    )  # fmt: skip
    payload = json.loads(out)
    assert set(payload) == {"iou", "giou", "diou", "ciou"}
    assert payload["iou"] == [[pytest.approx(25 / 175)]]


def test_iou_from_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (5, 2))], 1)
    np.save(tmp_path / "a.npy", boxes)
    (tmp_path / "b.txt").write_text("0 0 20 20\n10 10 40 30\n")
    code, out, _ = detect(
        "iou", "--a", tmp_path / "a.npy", "--b", tmp_path / "b.txt", "--format", "json"
    )
    assert code == 0
    expected = box_iou(boxes, [[0, 0, 20, 20], [10, 10, 40, 30]])
    np.testing.assert_allclose(json.loads(out)["iou"], expected, rtol=1e-12)


def test_nms_explains_which_box_suppressed_which() -> None:
    args = ["--boxes", "[[0,0,10,10],[1,1,11,11],[20,20,30,30]]", "--scores", "0.8,0.9,0.7"]
    code, out, _ = detect("nms", *args, "--explain")
    assert code == 0
    assert "keep box 1 (score 0.9)" in out
    assert "box 0: IoU 0.6807 > 0.5 → suppressed" in out  # 81 / 119
    assert "kept 2 of 3, by decreasing score: 1, 2" in out
    code, out, _ = detect("nms", *args, "--format", "json")
    payload = json.loads(out)
    assert payload["keep"] == [1, 2]
    assert payload["steps"][0]["suppressed"] == [{"box": 0, "iou": pytest.approx(81 / 119)}]
    code, out, _ = detect("nms", *args, "--classes", "0,1,0", "--format", "json")
    assert json.loads(out)["keep"] == [1, 0, 2]
    code, out, _ = detect("nms", *args, "--soft", "gaussian", "--format", "json")
    assert json.loads(out)["keep"] == [1, 2, 0]


def test_nms_of_nothing_keeps_nothing() -> None:
    code, out, _ = detect("nms", "--boxes", "[]", "--scores", "[]")
    assert code == 0 and "no boxes kept" in out


def test_decode_one_prediction_by_hand() -> None:
    code, out, _ = detect(
        "decode", "v3", "--t", "0,0,0,0,0,0", "--cell", "6,7", "--stride", "32",
        "--anchor", "116,90", "--format", "json",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    assert payload["box_cxcywh"] == [7.5 * 32, 6.5 * 32, 116, 90]  # σ(0) = ½, e⁰ = 1
    assert payload["score"] == pytest.approx(0.25)
    code, out, _ = detect("decode", "v2", "--t", "0,0,0,0,0,1,1", "--anchor", "10,10")
    assert code == 0 and "softmax" in out and "0.5000" in out


def test_decode_saved_yolov3_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    maps = [torch.randn(1, 3 * 7, s, s, dtype=torch.float64) for s in (2, 4, 8)]
    maps[2][0, 4, 3, 5] = 8.0  # anchor 0 of the stride-8 map, cell (3, 5): sure of an object
    maps[2][0, 5, 3, 5] = 8.0  # and of class 0
    paths = []
    for i, m in enumerate(maps):
        np.save(tmp_path / f"out{i}.npy", m.numpy())
        paths += ["--raw", tmp_path / f"out{i}.npy"]
    code, out, _ = detect(
        "decode", "v3", *paths, "--img-size", "64", "--score-threshold", "0.9", "--explain",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    row = decode_yolov3(maps, YOLOV3_ANCHORS, (32, 16, 8), 64)[0, 3 * (4 + 16) + 3 * 8 + 5]
    cx, cy, w, h = row[:4].tolist()
    assert json.loads(out)["boxes_xyxy"] == [
        pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    ]
    code, out, _ = detect(
        "decode", "v3", *paths, "--img-size", "64", "--score-threshold", "0.9", "--explain"
    )
    assert "cell (row 3, column 5), anchor 0 (10×13 px), stride 8" in out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root, num_train=30, num_val=10, seed=3)
    return root


def _detections_from(gt: dict, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        if rng.random() < 0.8:
            jitter = [x + rng.normal(0, 1), y + rng.normal(0, 1), w * rng.uniform(0.9, 1.1), h]
            out.append({**_d(a), "bbox": jitter, "score": float(rng.uniform(0.2, 1))})
        if rng.random() < 0.3:
            out.append({**_d(a), "bbox": [1.0, 1.0, 9.0, 9.0], "score": float(rng.uniform(0, 1))})
    return out


def _d(a: dict) -> dict:
    return {"image_id": a["image_id"], "category_id": a["category_id"]}


def test_map_json_equals_the_library_and_explains(shapes: Path, tmp_path: Path) -> None:
    gt = json.loads((shapes / "val.json").read_text())
    dt = _detections_from(gt, 0)
    write_json(tmp_path / "dt.json", dt)
    code, out, _ = detect(
        "map", "--gt", shapes / "val.json", "--dt", tmp_path / "dt.json", "--format", "json"
    )
    assert code == 0
    payload = json.loads(out)
    assert {"map", "map50", "map75", "per_class"} <= set(payload)
    truth = parse_ground_truth(gt)
    expected = evaluate_coco(truth, parse_detections(dt, truth))
    assert payload["map"] == expected.stats["AP"] and payload["map50"] == expected.stats["AP50"]
    assert set(payload["per_class"]) == {"ellipse", "rectangle", "triangle"}
    code, out, _ = detect(
        "map", "--gt", shapes / "val.json", "--dt", tmp_path / "dt.json", "--explain",
        "--category", "ellipse", "--plot", tmp_path / "pr.png",
    )  # fmt: skip
    assert code == 0
    assert "ellipse at IoU 0.50: precision–recall table" in out
    assert "interpolation (coco101)" in out and "/ 101 =" in out
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
    for metric, marker in (("voc", "AP = "), ("voc07", "/ 11 = ")):
        code, out, _ = detect(
            "map", "--gt", shapes / "val.json", "--dt", tmp_path / "dt.json", "--metric", metric,
            "--explain", "--category", "1",
        )  # fmt: skip
        assert code == 0 and marker in out


def test_class_without_ground_truth_is_excluded_and_said_so(tmp_path: Path) -> None:
    gt = {
        "images": [{"id": 1, "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    dt = [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9}]
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "dt.json", dt)
    code, out, _ = detect(
        "map", "--gt", tmp_path / "gt.json", "--dt", tmp_path / "dt.json", "--format", "json"
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["map"] == 0.0  # class a: its one box never detected
    assert payload["per_class"]["b"]["ap"] is None
    assert "no ground truth" in payload["per_class"]["b"]["excluded"]
    _, out, _ = detect("map", "--gt", tmp_path / "gt.json", "--dt", tmp_path / "dt.json")
    assert "left out of the mean, as COCOeval does" in out


@pytest.mark.parametrize("metric", ["coco", "voc", "voc07"])
def test_explain_a_class_never_detected_or_only_falsely(tmp_path: Path, metric: str) -> None:
    # Explaining a class with ground truth but no detection crashed (a table with no rows);
    # one with only false positives crashed in the COCO working (a run from rank 1 to none).
    gt = {
        "images": [{"id": 1, "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    write_json(tmp_path / "gt.json", gt)
    never = [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9}]
    falsely = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 5, 5], "score": 0.9}]
    for name, dt in (("never", never), ("falsely", falsely)):
        write_json(tmp_path / f"{name}.json", dt)
        code, out, err = detect(
            "map", "--gt", tmp_path / "gt.json", "--dt", tmp_path / f"{name}.json",
            "--metric", metric, "--explain", "--category", "a",
        )  # fmt: skip
        assert code == 0, err
        assert "a at IoU 0.50: precision–recall table" in out
        assert ("no detections of this class" in out) == (name == "never")
        assert out.rstrip().endswith("= 0.0000")


def test_anchors_table_and_plot(shapes: Path, tmp_path: Path) -> None:
    code, out, _ = detect(
        "anchors", "--gt", shapes / "train.json", "-k", "3", "--k-max", "5", "--grid", "8",
        "--plot", tmp_path / "k.png", "--explain",
    )  # fmt: skip
    assert code == 0
    assert "cells of a 8×8 grid" in out and "iterations for k = 3" in out
    assert (tmp_path / "k.png").exists()
    code, out, _ = detect(
        "anchors", "--gt", shapes / "train.json", "-k", "2", "--k-max", "3", "--format", "json"
    )
    payload = json.loads(out)
    assert len(payload["anchors"]) == 2 and set(payload["mean_iou"]) == {"1", "2", "3"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["iou", "--a", "[[5,0,1,1]]", "--b", "[[0,0,1,1]]"],
            "--a: box 0 (5, 0, 1, 1) has x2 < x1",
        ),
        (["iou", "--a", "[[0,0,1]]", "--b", "[[0,0,1,1]]"], "--a: expected boxes of 4 numbers"),
        (
            ["nms", "--boxes", "[[0,0,1,1]]", "--scores", "0.5", "--iou", "1.5"],
            "--iou must be a number in [0, 1], got 1.5",
        ),
        (
            ["nms", "--boxes", "[[0,0,1,1],[0,0,2,2]]", "--scores", "0.5,nan"],
            "--scores: score 1 is nan",
        ),
        (
            ["nms", "--boxes", "[[0,0,1,1]]", "--scores", "0.5,0.4"],
            "--scores: 2 scores for 1 boxes",
        ),
        (
            ["nms", "--boxes", "[[0,0,1,1]]", "--scores", "0.5", "--soft", "cubic"],
            "--soft takes linear or gaussian",
        ),
        (["decode", "v3"], "give either --raw"),
        (["decode", "v3", "--t", "1,2"], "YOLOv3 needs --anchor"),
        (["decode", "v3", "--t", "1,2", "--anchor", "3,3"], "at least 5 numbers"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message) -> None:
    code, out, err = detect(*args)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err and out == ""


def test_bad_files_name_the_item(tmp_path: Path) -> None:
    gt = {
        "images": [{"id": 1, "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    write_json(tmp_path / "gt.json", gt)
    cases = {
        "unknown_image.json": (
            [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
            "detection 0: image_id 9 is not an image",
        ),
        "unknown_category.json": (
            [{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 1}],
            "detection 0: category_id 4 is not a category",
        ),
        "nan.json": (
            '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]',
            "'score' is nan",
        ),
        "broken.json": ('[{"image_id": 1,', "not valid JSON"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        code, _, err = detect("map", "--gt", tmp_path / "gt.json", "--dt", path)
        assert code == 2, name
        assert message in " ".join(err.split()) and name in " ".join(err.split())
    code, _, err = detect("map", "--gt", tmp_path / "missing.json", "--dt", tmp_path / "nan.json")
    assert code == 2 and "does not exist" in err
    code, _, err = detect(
        "map",
        "--gt",
        tmp_path / "gt.json",
        "--dt",
        tmp_path / "unknown_image.json",
        "--iou",
        "0.52",
    )
    assert code == 2
