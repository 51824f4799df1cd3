"""benchmarks/gradflow_first_steps.py replays the lab's training step by step: its losses
average to the epochs' training losses of ``train_net`` on the same configuration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from tests.scripts import load_script

from convlens.labs.gradflow import NetConfig, train_net, warmed_rate

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gradflow_first_steps.py"


@pytest.mark.parametrize("warmup", ["constant", "linear"])
def test_the_replay_is_the_labs_training(tiny_data: Path, tmp_path: Path, warmup: str) -> None:
    bench = load_script(SCRIPT)
    cfg = NetConfig(str(tiny_data), arch="residual", depth=8, epochs=2, batch_size=8, lr=0.05,
                    warmup_epochs=1, warmup=warmup, out=str(tmp_path / "run"), device="cpu",
                    threads=1)  # fmt: skip
    threads = torch.get_num_threads()
    try:
        record = bench.first_steps(cfg, 10)  # 40 images: 5 steps per epoch
        metrics = train_net(cfg, progress_bar=False).metrics
    finally:
        torch.set_num_threads(threads)
    assert record["lr"] == [warmed_rate(cfg, step, 5) for step in range(10)]
    assert record["lr"][0] == 0.01 and record["lr"][5] == 0.05
    per_epoch = [sum(record["loss"][:5]) / 5, sum(record["loss"][5:]) / 5]
    assert per_epoch == pytest.approx([m["train_loss"] for m in metrics], rel=1e-6)
    assert all(m > 0 for m in record["max_logit"])


def test_read_back_prints_and_draws_the_saved_replay(
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--read-back`` replays nothing: the table and the picture come from the JSON alone
    (its labels need not be settings the script knows)."""
    bench = load_script(SCRIPT)
    cfg = NetConfig(str(tiny_data), arch="plain", depth=8, epochs=2, batch_size=8,
                    device="cpu", threads=1)  # fmt: skip
    threads = torch.get_num_threads()
    try:
        record = bench.first_steps(cfg, 7)
    finally:
        torch.set_num_threads(threads)
    out, pictures = tmp_path / "steps", tmp_path / "img"
    out.mkdir()
    pictures.mkdir()
    saved = json.dumps({"a net of the test": record})
    (out / "first_steps.json").write_text(saved)
    monkeypatch.setattr(sys, "argv", ["gradflow_first_steps.py", "--read-back", "--data",
                                      str(tiny_data), "--out", str(out), "--pictures",
                                      str(pictures)])  # fmt: skip
    bench.main()
    printed = capsys.readouterr().out
    for step in (0, 1, 2, 3, 4, 5, 6):
        assert f"| {step} | {bench.cell(record, step)} |" in printed
    assert "| 8 |" not in printed  # only the 7 steps saved
    assert (out / "first_steps.json").read_text() == saved
    assert (pictures / "gradflow_steps.png").read_bytes() == (out / "first_steps.png").read_bytes()
