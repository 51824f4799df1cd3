"""``lab detect``: a run writes its files and true numbers, keeps its anchors, resumes
bit-identically after Ctrl-C, and flips images together with their boxes."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import lab_runs
import numpy as np
import pytest
import torch
from detect_data import small, write_shapes
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.detection.anchors import kmeans_anchors
from convlens.detection.coco import load_ground_truth
from convlens.detection.evaluate import evaluate_coco
from convlens.detection.tiny_yolo import detect
from convlens.labs import detect as lab
from convlens.labs.detect import (
    DetectConfig,
    epoch_vertical_flips,
    flip,
    learning_rate,
    load_run,
    train,
)
from convlens.labs.runtime import loop
from convlens.labs.runtime.files import read_metrics_csv
from convlens.labs.runtime.loop import RunResult, epoch_flips

PARTS = ["train_xy", "train_wh", "train_objectness", "train_class"]
EXACT = ("epoch", "train_loss", *PARTS, "val_map", "val_map50", "val_map75")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def finished(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """One finished two-epoch run, shared by the tests that only read it."""
    return train(small(shapes, tmp_path_factory.mktemp("runs") / "run"), progress_bar=False)


def test_a_run_writes_its_files(finished: RunResult) -> None:
    out = finished.out
    assert finished.finished
    assert {
        "config.json", "checkpoint.pt", "metrics.csv", "summary.json", "detector.json",
        "learning_curves.png", "detections.png",
    } <= {p.name for p in out.iterdir()}  # fmt: skip
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    rows = read_metrics_csv(out / "metrics.csv")
    assert list(rows[0]) == [*EXACT, "epoch_seconds", "images_per_second"]
    assert [r["epoch"] for r in rows] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_map50"] == rows[-1]["val_map50"] and summary["epochs"] == 2
    assert list(summary["per_class"]) == ["ellipse", "rectangle", "triangle"]


def test_validation_map_is_the_evaluators_on_the_models_detections(
    shapes: Path, finished: RunResult
) -> None:
    """Recomputed here from the trained model: detect() on the validation PNGs, then
    evaluate_coco — the numbers in metrics.csv are exactly these."""
    from convlens.detection.synthetic import load_images

    model = finished.model
    assert model is not None
    gt = load_ground_truth(shapes / "val.json")
    images = torch.from_numpy(load_images(shapes, gt)).permute(0, 3, 1, 2).float() / 255
    detections = detect(model, images, [im.id for im in gt.images], [1, 2, 3], 0.01, 0.45)
    stats = evaluate_coco(gt, detections).stats
    row = finished.metrics[-1]
    assert (row["val_map"], row["val_map50"], row["val_map75"]) == (
        stats["AP"], stats["AP50"], stats["AP75"]
    )  # fmt: skip


def test_loss_parts_add_up_to_the_loss(finished: RunResult) -> None:
    # Every batch has 8 images: the mean of the batch losses is the per-image mean of the
    # parts (the loss is summed in float32, hence the tolerance).
    for row in finished.metrics:
        assert row["train_loss"] == pytest.approx(sum(row[p] for p in PARTS), rel=1e-6)
        assert all(row[p] >= 0 for p in PARTS)


def test_anchors_are_the_clusters_of_the_training_boxes(shapes: Path, finished: RunResult) -> None:
    gt = load_ground_truth(shapes / "train.json")
    sizes = np.array([a.bbox[2:] for a in gt.annotations])
    clusters = kmeans_anchors(sizes, 3, seed=0)
    saved = json.loads((finished.out / "detector.json").read_text())
    assert saved["anchors"] == [[round(w, 2), round(h, 2)] for w, h in clusters.anchors.tolist()]
    assert saved["categories"] == [
        {"id": 1, "name": "ellipse"}, {"id": 2, "name": "rectangle"}, {"id": 3, "name": "triangle"}
    ]  # fmt: skip
    assert saved["anchor_mean_iou"] == pytest.approx(clusters.mean_iou, abs=2e-3)  # rounded
    model, cfg, detector = load_run(finished.out)
    assert model.config.anchors == tuple(tuple(a) for a in saved["anchors"])
    assert isinstance(cfg, DetectConfig) and detector.categories[0].name == "ellipse"


def test_load_run_gives_back_the_trained_model(finished: RunResult) -> None:
    model, _, _ = load_run(finished.out)
    assert not model.training
    assert finished.model is not None
    finished.model.eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), finished.model(x))


@pytest.mark.parametrize("stop_at", [5, 3])  # epoch 2 step 2 (mid-epoch); the end of epoch 1
def test_resume_after_ctrl_c_is_bit_identical(
    shapes: Path,
    finished: RunResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop_at: int,
) -> None:
    cfg = small(shapes, tmp_path / "cut")
    first = lab_runs.interrupted_at(train, cfg, monkeypatch, stop_at)
    assert first.interrupted
    assert (first.position.epoch, first.position.step) == ((1, 2) if stop_at == 5 else (1, 0))
    if stop_at == 5:
        assert set(first.position.sums) == {"xy", "wh", "objectness", "class"}
    resumed = train(cfg, resume=True, progress_bar=False)
    assert resumed.finished
    lab_runs.assert_same_run(finished, resumed, EXACT)
    assert (tmp_path / "cut/detector.json").read_text() == (
        finished.out / "detector.json"
    ).read_text()


def test_hard_stop_loses_at_most_the_current_epoch(
    shapes: Path, finished: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[object] = []

    def hard_stop(position: object) -> None:
        steps.append(position)
        if len(steps) == 5:  # epoch 2, step 2
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_after_step", hard_stop)
    cfg = small(shapes, tmp_path / "cut")
    first = train(cfg, progress_bar=False)
    assert first.interrupted and (first.position.epoch, first.position.step) == (1, 0)
    monkeypatch.setattr(loop, "_after_step", lambda position: None)
    resumed = train(cfg, resume=True, progress_bar=False)
    lab_runs.assert_same_run(finished, resumed, EXACT)


def test_resume_on_moved_data_keeps_the_runs_anchors(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = small(shapes, tmp_path / "run", epochs=1, lr_schedule="constant")
    first = lab_runs.interrupted_at(train, cfg, monkeypatch, 2)
    assert first.interrupted
    before = (tmp_path / "run/detector.json").read_text()
    other = write_shapes(tmp_path / "other", seed=7)  # other boxes, other clusters
    other_anchors = kmeans_anchors(
        np.array([a.bbox[2:] for a in load_ground_truth(other / "train.json").annotations]), 3
    ).anchors
    assert not np.allclose(other_anchors, json.loads(before)["anchors"], atol=0.01)
    moved = small(other, tmp_path / "run", epochs=2, lr_schedule="constant")
    resumed = train(moved, resume=True, progress_bar=False)
    assert resumed.finished and (tmp_path / "run/detector.json").read_text() == before


@settings(max_examples=60)
@given(
    size=st.sampled_from([(8, 16), (16, 16), (24, 8)]),  # (H, W)
    corners=st.lists(st.integers(0, 100), min_size=4, max_size=4),
    horizontal=st.booleans(),
    vertical=st.booleans(),
)
def test_a_flipped_box_is_the_box_of_the_flipped_pixels(
    size: tuple[int, int], corners: list[int], horizontal: bool, vertical: bool
) -> None:
    height, width = size
    x1, x2 = sorted(c % (width + 1) for c in corners[:2])
    y1, y2 = sorted(c % (height + 1) for c in corners[2:])
    image = torch.zeros(1, 3, height, width)
    image[0, :, y1:y2, x1:x2] = 1  # the box's pixels: columns x1..x2−1, rows y1..y2−1
    box = np.array([[x1, y1, x2, y2]], float)
    flipped, (moved,) = flip(image, [box], torch.tensor([horizontal]), torch.tensor([vertical]))
    expected = image.flip(-1) if horizontal else image
    expected = expected.flip(-2) if vertical else expected
    assert torch.equal(flipped, expected)
    if x2 > x1 and y2 > y1:
        rows = torch.nonzero(flipped[0, 0].any(1)).flatten()
        cols = torch.nonzero(flipped[0, 0].any(0)).flatten()
        tight = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
        assert moved[0].tolist() == tight
    assert (moved[:, 2] - moved[:, 0]).tolist() == [x2 - x1]  # the size is kept
    assert (moved[:, 3] - moved[:, 1]).tolist() == [y2 - y1]


def test_flips_are_a_function_of_seed_and_epoch() -> None:
    vertical = epoch_vertical_flips(0, 3, 1000)
    assert torch.equal(vertical, epoch_vertical_flips(0, 3, 1000))
    assert not torch.equal(vertical, epoch_vertical_flips(0, 4, 1000))
    assert not torch.equal(vertical, epoch_vertical_flips(1, 3, 1000))
    assert not torch.equal(vertical, epoch_flips(0, 3, 1000))  # an independent stream
    assert 400 < int(vertical.sum()) < 600


def test_learning_rate_warms_up_then_decays_by_cosine() -> None:
    cfg = DetectConfig(data="", lr=0.01)
    rates = [learning_rate(cfg, s, 100, 10) for s in range(100)]
    assert rates[:10] == pytest.approx([0.01 * (s + 1) / 10 for s in range(10)])
    assert rates[10] == 0.01
    assert rates[55] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a > b for a, b in itertools.pairwise(rates[10:]))
    constant = DetectConfig(data="", lr=0.01, lr_schedule="constant")
    assert [learning_rate(constant, s, 100, 2) for s in (0, 1, 2, 99)] == [0.005, 0.01, 0.01, 0.01]
    assert learning_rate(cfg, 0, 100, 0) == 0.01  # no warm-up


def test_the_loss_panel_has_a_log_axis(monkeypatch: pytest.MonkeyPatch) -> None:
    from convlens.labs.runtime import plots

    figures: list[object] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    row = {"epoch": 1, "train_loss": 40.0, **dict.fromkeys(PARTS, 0.5)}
    row |= {"val_map": 0.1, "val_map50": 0.2, "val_map75": 0.05}
    plots.plot_curves(Path("unused.png"), {"run": [row]}, lab.CURVES)
    (fig,) = figures
    loss, val = fig.axes  # type: ignore[attr-defined]
    assert (loss.get_yscale(), val.get_yscale()) == ("log", "linear")
    assert [line.get_label() for line in loss.get_lines()] == [
        "total", "xy", "wh", "objectness", "class"
    ]  # fmt: skip


def test_detections_are_drawn_where_the_boxes_are() -> None:
    from convlens.detection.coco import Annotation, Detection
    from convlens.detection.plots import draw_boxes
    from convlens.labs.runtime.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    truths = [Annotation(1, 7, 2, (3.0, 4.0, 10.0, 6.0), 60.0)]
    found = [Detection(7, 2, (2.5, 4.0, 11.0, 6.5), 0.9), Detection(7, 1, (0, 0, 5, 5), 0.2)]
    draw_boxes(ax, np.zeros((16, 24, 3)), truths, found, {1: "ellipse", 2: "rectangle"}, 0.3)
    boxes = [(p.get_xy(), p.get_width(), p.get_height(), p.get_linestyle()) for p in ax.patches]
    assert boxes == [((3.0, 4.0), 10.0, 6.0, "--"), ((2.5, 4.0), 11.0, 6.5, "solid")]
    assert [t.get_text() for t in ax.texts] == ["rectangle 0.90"]  # 0.2 is below 0.3
    assert ax.get_xlim() == (0, 24) and ax.get_ylim() == (16, 0)  # pixel edges, y down
    plt.close(fig)
