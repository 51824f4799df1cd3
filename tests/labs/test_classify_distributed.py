"""``lab classify`` under torchrun with two CPU processes (gloo): identical models on both
ranks, and the per-epoch train accuracy summed over both processes' slices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from test_colourize_distributed import free_port

from convlens.labs.runtime.files import read_metrics_csv

DRIVER = """
import os, sys
import torch
import convlens.labs.classify as lab

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


def test_torchrun_two_processes(tiny_data: Path, tmp_path: Path) -> None:
    driver, record, out = tmp_path / "driver.py", tmp_path / "record", tmp_path / "run"
    driver.write_text(DRIVER)
    record.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(driver),
        str(record), "lab", "classify", "train", "--data", str(tiny_data), "--out", str(out),
        "--classes", "horse,cat", "--model", "cifar_resnet9?width=4", "--epochs", "2",
        "--batch-size", "8", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "batch 8 over 2 processes" in done.stderr
    assert "batch 4 per process" in done.stderr  # the memory prediction is per process
    zero, one = torch.load(record / "model_0.pt"), torch.load(record / "model_1.pt")
    for name in zero:
        assert torch.equal(zero[name], one[name]), name
    rows = read_metrics_csv(out / "metrics.csv")
    assert len(rows) == 2
    for row in rows:  # a count of right predictions over the 40 images of the epoch
        assert (row["train_accuracy"] * 40).is_integer()
