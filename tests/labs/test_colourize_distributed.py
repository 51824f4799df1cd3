"""Two processes under torchrun on the CPU (gloo): identical models, every file written once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

# Runs the real CLI in each process; records every file the lab writes and the final model.
DRIVER = """
import os, sys
import torch
import convlens.labs.colourize as lab
import convlens.labs.runtime.files as files

rank, record = os.environ["RANK"], sys.argv[1]
log = open(os.path.join(record, f"writes_{rank}.txt"), "w")
atomic_write = files.atomic_write

def logged(path, write, suffix=""):
    log.write(f"{path}\\n"); log.flush()
    atomic_write(path, write, suffix)

files.atomic_write = logged
train = lab.train

def keep_model(*args, **kwargs):
    result = train(*args, **kwargs)
    torch.save(result.model.state_dict(), os.path.join(record, f"model_{rank}.pt"))
    return result

lab.train = keep_model
from convlens.cli.main import app
app(sys.argv[2:])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_torchrun_two_processes(tiny_data: Path, tmp_path: Path) -> None:
    driver, record, out = tmp_path / "driver.py", tmp_path / "record", tmp_path / "run"
    driver.write_text(DRIVER)
    record.mkdir()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(driver),
        str(record),
        "lab",
        "colourize",
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--classes",
        "horse,cat",
        "--model",
        "colour_unet",
        "--num-filters",
        "4",
        "--num-colours",
        "4",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--grid-every",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "over 2 processes" in done.stderr

    # the same weights and BatchNorm statistics on both ranks
    zero = torch.load(record / "model_0.pt")
    one = torch.load(record / "model_1.pt")
    assert zero.keys() == one.keys()
    for name in zero:
        assert torch.equal(zero[name], one[name]), name

    # rank 1 wrote nothing; rank 0 wrote each file once per epoch (the end-of-run files once)
    assert (record / "writes_1.txt").read_text() == ""
    writes = Counter(
        Path(line).relative_to(out).as_posix()
        for line in (record / "writes_0.txt").read_text().splitlines()
    )
    assert writes == Counter(
        {
            "config.json": 1,
            "palette.npy": 1,
            "summary.json": 1,
            "grid.png": 1,
            "checkpoint.pt": 2,
            "metrics.csv": 2,
            "learning_curves.png": 2,
            "grids/epoch_001.png": 1,
            "grids/epoch_002.png": 1,
        }
    )
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3  # header + 2 epochs, no duplicated rows
