"""A classify-lab run folder as SRC: ``convlens.labs.load_run`` gives the model, the run
gives the class names, and the maps are Grad-CAM's (captum) on that model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from captum.attr import LayerAttribution, LayerGradCam
from typer.testing import CliRunner

from convlens.cli.main import app
from convlens.interpret import cifar_picture, find_layer, load_source
from convlens.interpret.sources import last_convolution
from convlens.labs.classify import ClassifyConfig, train


@pytest.fixture(scope="module")
def run(cifar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a width-4 ResNet-9 on the airplanes and cats of the tiny data."""
    out = tmp_path_factory.mktemp("classify") / "run"
    config = ClassifyConfig(
        data=str(cifar),
        classes="cat,airplane",
        model="cifar_resnet9?width=4",
        epochs=1,
        batch_size=3,
        out=str(out),
        device="cpu",
        threads=1,
        misclassified=2,
    )
    train(config, progress_bar=False)
    return out


def test_load_source_reads_the_run(run: Path) -> None:
    source = load_source(str(run))
    assert source.num_classes == 2
    assert source.class_names == ("airplane", "cat")  # label order
    assert source.input_size == (32, 32) and not source.model.training


def test_gradcam_of_a_run_from_the_command_line(run: Path, cifar: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["interpret", "gradcam", str(run), "--data", str(cifar), "--index", "3",
         "--target", "cat", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(true class: cat)" in result.output and "target 1 (cat)" in result.output
    source = load_source(str(run))
    name = last_convolution(source.model, (32, 32))
    x = cifar_picture(cifar, 3, (32, 32)).pixels[None]
    oracle = LayerAttribution.interpolate(
        LayerGradCam(source.model, find_layer(source.model, name)).attribute(
            x, target=1, relu_attributions=True
        ),
        (32, 32),
        interpolate_mode="bilinear",
    )[0, 0]
    saved = np.load(tmp_path / "gradcam.npy")
    np.testing.assert_allclose(saved, oracle.detach().numpy(), rtol=1e-4, atol=1e-7)
