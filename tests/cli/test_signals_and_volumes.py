"""The CLI on signals (C, L) and volumes or clips (C, D, H, W): descriptions, ``--input``
for traced models, and one-line errors naming the layer given a map of the wrong rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_errors import fails, run, write

MODELS = """
from torch import nn


def image_net():
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())


def signal_net():
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2),
    )


def clip_net():
    return nn.Sequential(
        nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d((1, 2, 2)),
        nn.Upsample(scale_factor=2, mode="trilinear"),
    )
"""


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "nd_models.py").write_text(MODELS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "nd_models"


def test_a_signal_description_is_analysed(tmp_path: Path) -> None:
    path = write(tmp_path, "input 1x100\nconv1d 8 k=5 s=2 p=2\nmaxpool1d 2\n")
    code, output = run("analyze", path)
    assert code == 0, output
    assert "output (C, L)" in output and "8×25" in output
    assert "receptive field: 7, jump 4, start 1" in output


def test_a_traced_signal_model_takes_input_c_x_l(models: str) -> None:
    code, output = run("analyze", f"{models}:signal_net", "--input", "1x100", "-f", "json")
    assert code == 0, output
    report = json.loads(output)
    assert report["input"] == [1, 100]
    assert report["layers"][3]["output_shape"] == [8, 50]  # the pool
    assert report["layers"][3]["rf"] == [6] and report["layers"][3]["jump"] == [2]


def test_a_traced_clip_model_takes_input_c_x_d_x_h_x_w(models: str) -> None:
    code, output = run("analyze", f"{models}:clip_net", "--input", "3x4x8x8")
    assert code == 0, output
    assert "output (C, D, H, W)" in output
    assert "upsample3d" in output and "4×8×8×8" in output


@pytest.mark.parametrize(
    ("factory", "shape", "words"),
    [
        ("image_net", "1x100", "conv2d expects a (C, H, W) input, got (1, 100) (a 1-D input"),
        ("signal_net", "1x100x100", "conv1d expects a (C, L) input, got (1, 100, 100)"),
    ],
)
def test_a_traced_layer_given_the_wrong_rank_is_named(
    models: str, factory: str, shape: str, words: str
) -> None:
    message = fails("analyze", f"{models}:{factory}", "--input", shape)
    assert "module '0'" in message and words in message


def test_a_described_layer_given_the_wrong_rank_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "input 1x100\nrelu\nconv2d 8 k=3\n")
    message = fails("analyze", path)
    assert f"{path}:3:1: in layer 'conv2d_1': conv2d expects a (C, H, W) input" in message
    assert "use conv1d" in message


def test_explain_names_the_axes_of_a_volume(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x16x112x112\nconv3d 64 k=3 p=1\n")
    code, output = run("explain", path, "--layer", "1")
    assert code == 0, output
    assert "output depth: D_out" in output
    assert "params = C_out·(C_in/g)·K_d·K_h·K_w + C_out = 64·(3/1)·3·3·3 + 64 = 5248" in output
    assert "receptive field depth" in output and "receptive field width" in output
