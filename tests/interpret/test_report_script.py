"""benchmarks/interpret_report.py runs end to end (tiny model and data, few steps)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_writes_every_picture_and_the_checks(cifar: Path, tmp_path: Path) -> None:
    out = tmp_path / "img"
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "interpret_report.py"),
            "tests.interpret.models:tiny_cnn_10", "--data", str(cifar), "--out", str(out),
            "--sanity-images", "2", "--faithfulness-images", "2", "--maximize-steps", "2",
            "--control-layers", "features.0",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"interpret_{n}.png"
        for n in (
            "methods",
            "activations",
            "filters",
            "maximize",
            "sanity",
            "sanity_maps",
            "faithfulness",
        )
    )
    assert "## Sanity" in result.stdout and "## Faithfulness" in result.stdout
    assert "- Grad-CAM deletion AUC" in result.stdout
    controls = result.stdout.split("## Deletion controls")[1]
    for row in (
        "| gradcam, reversed |",
        "| random, Grad-CAM-shaped |",
        "| gradcam at `features.0` |",
    ):
        assert row in controls
    assert "to the blurred copy" in controls
