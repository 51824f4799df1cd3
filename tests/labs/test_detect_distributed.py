"""``lab detect`` under torchrun with two CPU processes (gloo): identical models on both
ranks, each rank training on its half of every batch, and the validation mAP of the
shared model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detect_data import write_shapes
from test_colourize_distributed import free_port

from convlens.detection.coco import load_ground_truth
from convlens.detection.evaluate import evaluate_coco
from convlens.labs.detect import load_run, load_split, predict
from convlens.labs.runtime.files import read_metrics_csv

DRIVER = """
import os, sys
import torch
import convlens.labs.detect as lab

rank, record = os.environ["RANK"], sys.argv[1]
train = lab.train

def keep_model(*args, **kwargs):
    result = train(*args, **kwargs)
    torch.save(result.model.state_dict(), os.path.join(record, f"model_{rank}.pt"))
    return result

lab.train = keep_model
from convlens.cli.main import app
app(sys.argv[2:])
"""


def test_torchrun_two_processes(tmp_path: Path) -> None:
    data = write_shapes(tmp_path / "shapes")
    driver, record, out = tmp_path / "driver.py", tmp_path / "record", tmp_path / "run"
    driver.write_text(DRIVER)
    record.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(driver),
        str(record), "lab", "detect", "train", "--data", str(data), "--out", str(out),
        "--width", "4", "--epochs", "2", "--batch-size", "8", "--warmup-epochs", "0.5",
        "--pictures", "2", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "batch 8 over 2 processes" in done.stderr and "batch 4 per process" in done.stderr
    zero, one = torch.load(record / "model_0.pt"), torch.load(record / "model_1.pt")
    for name in zero:
        assert torch.equal(zero[name], one[name]), name
    rows = read_metrics_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    # The mAP in metrics.csv is the saved model's, evaluated here in one process.
    model, cfg, detector = load_run(out)
    split = load_split(data, "val", detector.categories)
    stats = evaluate_coco(load_ground_truth(data / "val.json"),
                          predict(model, split, detector.categories, cfg)).stats  # fmt: skip
    assert rows[-1]["val_map50"] == pytest.approx(stats["AP50"], abs=1e-12)
    assert rows[-1]["val_map"] == pytest.approx(stats["AP"], abs=1e-12)
