"""The real ``convlens lab detect`` commands: make-data, train, evaluate (its numbers against
the evaluator and pycocotools), and exit status 2 with nothing written on bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from detect_data import write_shapes
from test_colourize_cli import invoke

from convlens.detection.coco import load_detections, load_ground_truth
from convlens.detection.evaluate import evaluate_coco
from convlens.detection.render import coco_json

SMALL = ["--width", "4", "--batch-size", "8", "--warmup-epochs", "0.5", "--pictures", "2"]
SMALL += ["--device", "cpu", "--threads", "1", "--no-progress"]
TINY = ["--train", "24", "--val", "8", "--image-size", "32", "--min-size", "6"]
TINY += ["--max-size", "16", "--no-progress"]


def train_args(data: Path, out: Path, *extra: str | Path) -> list[str | Path]:
    return ["lab", "detect", "train", "--data", data, "--out", out, "--epochs", "1", *SMALL,
            *extra]  # fmt: skip


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def run(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    code, output = invoke(*train_args(shapes, out))
    assert code == 0, output
    return out


# ----------------------------------------------------------------------------- make-data


def test_make_data_is_deterministic(tmp_path: Path) -> None:
    code, output = invoke("lab", "detect", "make-data", tmp_path / "a", *TINY, "--seed", "3")
    assert code == 0, output
    assert "wrote " in output and "24 training images (" in output and "of 32×32, seed 3" in output
    progress = [a for a in TINY if a != "--no-progress"]  # the bar's path too
    assert invoke("lab", "detect", "make-data", tmp_path / "b", *progress, "--seed", "3")[0] == 0
    assert invoke("lab", "detect", "make-data", tmp_path / "c", *TINY, "--seed", "4")[0] == 0
    a = digest(tmp_path / "a")
    assert len(a) == 24 + 8 + 2 and a == digest(tmp_path / "b") and a != digest(tmp_path / "c")
    gt = load_ground_truth(tmp_path / "a/train.json")
    assert len(gt.images) == 24 and str(len(gt.annotations)) in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no partial folders


def test_make_data_into_an_empty_folder_but_never_over_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert invoke("lab", "detect", "make-data", tmp_path / "empty", *TINY)[0] == 0
    assert (tmp_path / "empty/val.json").is_file()
    before = digest(tmp_path / "empty")
    code, output = invoke("lab", "detect", "make-data", tmp_path / "empty", *TINY)
    assert code == 2 and "already exists and is not an empty folder" in output
    assert digest(tmp_path / "empty") == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train", "0"], "--train must be at least 1 image"),
        (["--max-size", "40"], "1 ≤ --min-size ≤ --max-size ≤ --image-size; got 6, 40, 32"),
        (["--min-size", "20", "--max-size", "10"], "got 20, 10, 32"),
    ],
)
def test_make_data_bad_options_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    code, output = invoke("lab", "detect", "make-data", tmp_path / "d", *TINY, *extra)
    assert code == 2 and message in output.replace("\n", " ") and "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- train, evaluate


def test_train_prints_the_final_numbers(run: Path) -> None:
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,train_loss,train_xy,train_wh,train_objectness,train_class")
    assert json.loads((run / "config.json").read_text())["width"] == 4


def test_evaluate_json_is_the_evaluator_on_the_written_detections(
    shapes: Path, run: Path, tmp_path: Path
) -> None:
    written = tmp_path / "dt.json"
    code, output = invoke("lab", "detect", "evaluate", run, "--format", "json",
                          "--detections", written)  # fmt: skip
    assert code == 0, output
    result = json.loads(output)
    gt = load_ground_truth(shapes / "val.json")
    detections = load_detections(written, gt)
    assert result["detections"] == len(detections) > 0
    expected = coco_json(evaluate_coco(gt, detections))
    assert {k: result[k] for k in expected} == expected
    assert list(result["per_class"]) == ["ellipse", "rectangle", "triangle"]
    assert result["images"] == 8 and result["ground_truth_boxes"] == len(gt.annotations)
    last = (run / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert float(last[6]) == result["map"] and float(last[7]) == result["map50"]  # as trained


def test_evaluate_equals_pycocotools(shapes: Path, run: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    code, output = invoke("lab", "detect", "evaluate", run, "--format", "json")
    assert code == 0, output
    result = json.loads(output)
    assert result["detections_file"] == str(run / "val_detections.json")
    coco = COCO(str(shapes / "val.json"))
    reference = COCOeval(coco, coco.loadRes(str(run / "val_detections.json")), "bbox")
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    assert result["map"] == pytest.approx(reference.stats[0], abs=1e-9)
    assert result["map50"] == pytest.approx(reference.stats[1], abs=1e-9)
    assert result["map75"] == pytest.approx(reference.stats[2], abs=1e-9)


def test_evaluate_table(run: Path) -> None:
    code, output = invoke("lab", "detect", "evaluate", run)
    assert code == 0, output
    first = output.splitlines()[0]
    assert first.startswith(f"{run}: COCO mAP ") and "on 8 validation images" in first
    lines = output.splitlines()
    assert "category   ground truth      AP    AP50    AP75" in lines
    names = [line.split()[0] for line in lines if line.strip()]
    assert [n for n in names if n in ("ellipse", "rectangle", "triangle")] == [
        "ellipse", "rectangle", "triangle"
    ]  # fmt: skip
    assert any(line.startswith("AP @ IoU 0.50  ") for line in lines)


def test_evaluate_on_other_data_and_resume_from_the_command_line(
    shapes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code, output = invoke(*train_args(shapes, out, "--lr-schedule", "constant"))
    assert code == 0, output
    assert "TinyYolo w4: 1 epochs, validation COCO mAP" in output
    code, output = invoke("lab", "detect", "train", "--resume", out, "--epochs", "2",
                          "--no-progress")  # fmt: skip
    assert code == 0 and "TinyYolo w4: 2 epochs" in output, output
    other = write_shapes(tmp_path / "other", seed=5)
    code, output = invoke("lab", "detect", "evaluate", out, "--data", other, "--format", "json")
    assert code == 0, output
    assert json.loads(output)["data"] == str(other)


# ----------------------------------------------------------------------------- bad input


def broken(tmp_path: Path, shapes: Path, change: str) -> Path:
    """A copy of the tiny data set with one thing wrong."""
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    val = json.loads((data / "val.json").read_text())
    if change == "no val.json":
        (data / "val.json").unlink()
    elif change == "malformed":
        (data / "val.json").write_text('{"images": [')
    elif change == "missing image":
        (data / "val/000003.png").unlink()
    elif change == "no boxes":
        (data / "val.json").write_text(json.dumps({**val, "annotations": []}))
    elif change == "bad bbox":
        val["annotations"][1]["bbox"] = [1, 2, -3, 4]
        (data / "val.json").write_text(json.dumps(val))
    elif change == "empty box":
        val["annotations"][1]["bbox"] = [1, 2, 0, 4]
        (data / "val.json").write_text(json.dumps(val))
    elif change == "other categories":
        val["categories"][2]["name"] = "star"
        (data / "val.json").write_text(json.dumps(val))
    elif change == "wrong size":
        val["images"][2]["width"] = 40
        (data / "val.json").write_text(json.dumps(val))
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no val.json", "holds no val.json (COCO ground truth of the val images"),
        ("malformed", "val.json: not valid JSON (Expecting value at line 1, column 13)"),
        ("missing image", "cannot read image"),
        ("no boxes", "val.json: no boxes (no annotations that are not crowds) to learn from"),
        ("bad bbox", "val.json: annotations[1]: 'bbox' [1, 2, -3, 4] has a negative width"),
        ("empty box", "has the empty box [1.0, 2.0, 0.0, 4.0]"),
        ("other categories", "its categories [1: ellipse, 2: rectangle, 3: star] differ from"),
        ("wrong size", "is 32×32 pixels, but its entry in 'images' says 40×32"),
    ],
)
def test_bad_data_exit_2_and_write_nothing(
    shapes: Path, tmp_path: Path, change: str, message: str
) -> None:
    data = broken(tmp_path, shapes, change)
    out = tmp_path / "run"
    code, output = invoke(*train_args(data, out))
    text = output.replace("\n", " ")
    assert code == 2 and message in text, output
    assert "Traceback" not in output and not out.exists()


def test_missing_data_folder_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = invoke(*train_args(tmp_path / "nowhere", out))
    text = output.replace("\n", " ")
    assert code == 2 and "nowhere is not a folder" in text and "make-data" in text
    assert not out.exists()
    code, output = invoke("lab", "detect", "train", "--out", out, "--no-progress")
    assert code == 2 and "--data is required" in output and not out.exists()


def test_images_of_a_size_the_grid_does_not_divide_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert invoke("lab", "detect", "make-data", data, *TINY, "--image-size", "36")[0] == 0
    out = tmp_path / "run"
    code, output = invoke(*train_args(data, out))
    assert code == 2 and "36×36 pixels; the detector needs sides that are multiples" in output
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--augment", "rotate"], "--augment: 'rotate' is not one of none, hflip, hflip,vflip"),
        (["--lr-schedule", "onecycle"], "--lr-schedule: 'onecycle' is not one of cosine, constant"),
        (["--num-anchors", "0"], "--num-anchors must be at least 1"),
        (["--num-anchors", "500"], "--num-anchors 500 is more than the"),
        (["--batch-size", "32"], "larger than the training set (24 images)"),
        (["--warmup-epochs", "1"], "--warmup-epochs must be at least 0 and less than --epochs 1"),
        (["--iou-threshold", "1.5"], "--iou-threshold must be in [0, 1]"),
        (["--threads", "-1"], "--threads must be 0"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    shapes: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, output = invoke(*train_args(shapes, out), *extra)
    assert code == 2 and message in output.replace("\n", " "), output
    assert "Traceback" not in output and not out.exists()


def test_evaluate_refuses_what_is_not_a_finished_detect_run(
    shapes: Path, tmp_path: Path, tiny_data: Path
) -> None:
    code, output = invoke("lab", "detect", "evaluate", tmp_path / "nothing")
    assert code == 2 and "nothing does not exist" in output.replace("\n", " ")
    classify = tmp_path / "classify"
    assert invoke("lab", "classify", "train", "--data", tiny_data, "--out", classify,
                  "--classes", "horse,cat", "--model", "cifar_resnet9?width=4", "--epochs", "1",
                  "--batch-size", "8", "--threads", "1", "--no-progress")[0] == 0  # fmt: skip
    code, output = invoke("lab", "detect", "evaluate", classify)
    assert code == 2 and "is not a detect run" in output
    out = tmp_path / "run"
    assert invoke(*train_args(shapes, out, "--lr-schedule", "constant"))[0] == 0
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "epochs": 3}))  # 1 of 3 epochs done
    code, output = invoke("lab", "detect", "evaluate", out)
    text = output.replace("\n", " ")
    assert code == 2 and "stopped after 1 of 3 epochs" in text and "--resume" in text
    assert not (out / "val_detections.json").exists()
    code, output = invoke("lab", "detect", "evaluate", out, "--format", "csv")
    assert code == 2 and "--format: 'csv' is not one of table, json" in output
    (out / "detector.json").write_text('{"anchors": [[1, 2]]}')
    code, output = invoke("lab", "detect", "evaluate", out)
    assert code == 2 and "detector.json is not a detector description" in output
    (out / "detector.json").unlink()
    code, output = invoke("lab", "detect", "evaluate", out)
    assert code == 2 and "detector.json is missing" in output.replace("\n", " ")
