"""Run folders written by the colourization lab before the lab runtime (``legacy/``, made by
``legacy/make_runs.py`` at commit d25b432) still resume bit-identically and evaluate."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from test_colourize_cli import invoke

from convlens.labs.colourize import ColourizeConfig, config_from_saved, spread, train

LEGACY = Path(__file__).parent / "legacy"
EXACT = ("epoch", "train_loss", "val_loss", "val_accuracy", "baseline_accuracy")


def copy_run(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(LEGACY / name, folder)
    return folder


def fresh(folder: Path, data: Path, epochs: int, tmp_path: Path) -> tuple[dict, list]:
    """The same configuration trained from scratch by today's code."""
    saved = json.loads((folder / "config.json").read_text())
    cfg = config_from_saved(saved, {"data": str(data), "out": str(tmp_path / "fresh")})
    result = train(dataclasses.replace(cfg, epochs=epochs), progress_bar=False)
    assert result.model is not None
    return result.model.state_dict(), result.metrics


def assert_same(folder: Path, reference: tuple[dict, list]) -> None:
    weights, metrics = reference
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert saved["model"].keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(saved["model"][name], value), name
    assert [{k: m[k] for k in EXACT} for m in saved["metrics"]] == [
        {k: m[k] for k in EXACT} for m in metrics
    ]


@pytest.mark.parametrize(
    ("name", "extra"),
    [("stopped", []), ("finished", ["--epochs", "2"])],  # Ctrl-C mid-epoch 2; 1 of 1 done
)
def test_a_legacy_run_resumes_bit_identically(
    tiny_data: Path, tmp_path: Path, name: str, extra: list[str]
) -> None:
    folder = copy_run(name, tmp_path)
    code, output = invoke(
        "lab",
        "colourize",
        "train",
        "--resume",
        folder,
        "--data",
        tiny_data,
        *extra,
        "--no-progress",
    )
    assert code == 0, output
    assert "resuming colour_unet at epoch 2" in output
    assert_same(folder, fresh(folder, tiny_data, 2, tmp_path))
    assert {"summary.json", "metrics.csv", "learning_curves.png", "grid.png"} <= {
        p.name for p in folder.iterdir()
    }


def test_a_legacy_run_evaluates(tiny_data: Path, tmp_path: Path) -> None:
    folder = copy_run("finished", tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    got = spread(folder, data=str(tiny_data))
    assert (got.model, got.epochs, got.images) == ("colour_unet", 1, 6)
    assert got.accuracy == pytest.approx(summary["val_accuracy"], abs=1e-12)
    code, output = invoke("lab", "colourize", "evaluate", folder, "--data", tiny_data)
    assert code == 0, output
    assert f"{100 * summary['val_accuracy']:.2f} %" in output


def test_legacy_configs_are_complete() -> None:
    """The fixtures hold every field today's config has (so they test the real format)."""
    for name in ("stopped", "finished"):
        saved = json.loads((LEGACY / name / "config.json").read_text())
        assert set(saved) == {f.name for f in dataclasses.fields(ColourizeConfig)}
