"""``convlens interpret`` through the real command: files, their contents, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from typer.testing import CliRunner

from convlens.cli.main import app
from convlens.interpret import load_source
from convlens.interpret.images import cifar_picture
from convlens.interpret.maps import METHODS, attribute
from convlens.interpret.methods import MethodOptions
from tests.interpret.conftest import TINY_SOURCE
from tests.interpret.models import tiny_cnn

runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["interpret", *map(str, args)])
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def fails(*args: object) -> str:
    code, output = run(*args)
    assert code == 2, output
    assert output.startswith("error: ") and len(output.strip().splitlines()) == 1, output
    return output.strip()


SETTINGS = {
    "smoothgrad": ["--samples", "4"],
    "integrated-gradients": ["--steps", "8"],
    "occlusion": ["--window", "6", "--stride", "3"],
}
API_OPTIONS = {
    "smoothgrad": MethodOptions(samples=4),
    "integrated-gradients": MethodOptions(steps=8),
    "occlusion": MethodOptions(window=6, stride=3),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_writes_its_png_and_npy(method: str, cifar: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run(
        method, TINY_SOURCE, "--data", cifar, "--index", 2, "--out", out, *SETTINGS.get(method, [])
    )
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [f"{method}.npy", f"{method}.png"]
    saved = np.load(out / f"{method}.npy")
    assert saved.dtype == np.float32 and saved.shape == (32, 32)
    assert (out / f"{method}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The same numbers as the Python API, whose methods the captum tests check.
    source = load_source(TINY_SOURCE)
    pixels = cifar_picture(cifar, 2, (32, 32)).pixels
    expected = attribute(source, pixels, method, None, API_OPTIONS.get(method)).map
    np.testing.assert_array_equal(saved, expected)
    assert output.startswith(f"{method} of {TINY_SOURCE} on test image #2")


def test_gradcam_default_is_the_last_conv_and_the_predicted_class(
    cifar: Path, tmp_path: Path
) -> None:
    """Against captum directly: LayerGradCam at the last convolution for the argmax class,
    upsampled bilinearly to the 32×32 input."""
    code, output = run("gradcam", TINY_SOURCE, "--data", cifar, "--index", 5, "--out", tmp_path)
    assert code == 0, output
    assert "layer features.2" in output
    model = tiny_cnn()
    x = cifar_picture(cifar, 5, (32, 32)).pixels[None]
    target = int(model(x).argmax())
    oracle = LayerAttribution.interpolate(
        LayerGradCam(model, model.features[2]).attribute(x, target=target, relu_attributions=True),
        (32, 32),
        interpolate_mode="bilinear",
    )[0, 0]
    np.testing.assert_allclose(
        np.load(tmp_path / "gradcam.npy"), oracle.detach().numpy(), rtol=1e-5, atol=1e-8
    )


def test_target_by_number_and_by_name(cifar: Path, tmp_path: Path) -> None:
    """A 10-class model on CIFAR data takes the data's class names."""
    source = "tests.interpret.models:tiny_cnn_10"
    code, output = run("saliency", source, "--data", cifar, "--target", "horse", "--out", tmp_path)
    assert code == 0, output
    assert "target 7 (horse)" in output
    by_name = np.load(tmp_path / "saliency.npy")
    code, _ = run("saliency", source, "--data", cifar, "--target", 7, "--out", tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "saliency.npy"), by_name)


def test_image_file_of_another_size(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    code, output = run(
        "gradcam++", TINY_SOURCE, "--image", tmp_path / "photo.png", "--size", "16x12",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, output
    assert np.load(tmp_path / "out" / "gradcam++.npy").shape == (16, 12)


def test_activations_filters_and_maximize(cifar: Path, tmp_path: Path) -> None:
    code, output = run("activations", TINY_SOURCE, "--data", cifar, "--out", tmp_path)
    assert code == 0, output
    with np.load(tmp_path / "activations.npz") as saved:
        assert sorted(saved.files) == ["features.0", "features.2"]
        assert saved["features.0"].shape == (6, 32, 32)
        assert saved["features.2"].shape == (8, 16, 16)
        x = cifar_picture(cifar, 0, (32, 32)).pixels[None]
        with torch.no_grad():
            expected = tiny_cnn().features[:3](x)[0].numpy()
        np.testing.assert_allclose(saved["features.2"], expected, rtol=1e-6)

    code, output = run("filters", TINY_SOURCE, "--layer", "features.2", "--out", tmp_path)
    assert code == 0, output
    np.testing.assert_array_equal(
        np.load(tmp_path / "filters.npy"), tiny_cnn().features[2].weight.detach().numpy()
    )
    assert "8×6×3×3" in output

    args = ("maximize", TINY_SOURCE, "--layer", "features.2", "--channel", 1, "--steps", 12)
    code, output = run(*args, "--out", tmp_path / "a", "--no-progress")
    assert code == 0, output
    run(*args, "--out", tmp_path / "b", "--no-progress")
    a, b = np.load(tmp_path / "a" / "maximize.npy"), np.load(tmp_path / "b" / "maximize.npy")
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_activations_of_named_layers_and_the_default_filters(cifar: Path, tmp_path: Path) -> None:
    code, output = run(
        "activations", TINY_SOURCE, "--data", cifar, "--index", 2,
        "--layer", "features.3", "--layer", "features.1", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, output
    x = cifar_picture(cifar, 2, (32, 32)).pixels[None]
    with torch.no_grad():
        relu1 = tiny_cnn().features[:2](x)[0].numpy()
        relu2 = tiny_cnn().features(x)[0].numpy()
    with np.load(tmp_path / "activations.npz") as saved:
        assert list(saved.files) == ["features.3", "features.1"]
        np.testing.assert_allclose(saved["features.1"], relu1, rtol=1e-6)
        np.testing.assert_allclose(saved["features.3"], relu2, rtol=1e-6)
    assert (tmp_path / "activations.png").stat().st_size > 0

    code, output = run("filters", TINY_SOURCE, "--out", tmp_path)  # the first convolution
    assert code == 0, output
    np.testing.assert_array_equal(
        np.load(tmp_path / "filters.npy"), tiny_cnn().features[0].weight.detach().numpy()
    )
    assert "6×3×3×3" in output and (tmp_path / "filters.png").stat().st_size > 0


def test_sanity_and_faithfulness_tables(cifar: Path, tmp_path: Path) -> None:
    code, output = run(
        "sanity", TINY_SOURCE, "--data", cifar, "--images", 2, "--methods", "saliency,gradcam",
        "--format", "json", "--out", tmp_path, "--no-progress",
    )  # fmt: skip
    assert code == 0, output
    summary = json.loads(output)
    assert summary["stages"] == ["head", "features.2", "features.0"]
    assert summary == json.loads((tmp_path / "sanity.json").read_text())
    assert {p.name for p in tmp_path.iterdir()} >= {"sanity.png", "sanity-maps.png"}

    code, output = run(
        "faithfulness", TINY_SOURCE, "--data", cifar, "--images", 3, "--methods", "gradcam",
        "--steps", 8, "--out", tmp_path, "--no-progress",
    )  # fmt: skip
    assert code == 0, output
    assert "deletion AUC, to blur" in output and "random" in output  # the default
    saved = json.loads((tmp_path / "faithfulness.json").read_text())
    assert saved["deletion_substrate"] == "blur"
    assert list(saved["orders"]) == ["gradcam", "random"] and saved["images"] == 3
    assert len(saved["orders"]["gradcam"]["deletion_curve"]) == 9


def test_bad_input_is_one_line_exit_2_and_writes_nothing(cifar: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    bad_weights = tmp_path / "w.pt"
    state = tiny_cnn().state_dict()
    state["head.weight"] = torch.zeros(3, 8)
    torch.save(state, bad_weights)
    broken = tmp_path / "broken"
    broken.mkdir()
    cases = [
        (("gradcam", TINY_SOURCE, "--data", cifar, "--layer", "features.9"), "closest names"),
        (("saliency", TINY_SOURCE, "--data", cifar, "--index", 6), "--index 6 is out of range"),
        (("saliency", TINY_SOURCE, "--image", junk), "is not an image"),
        (("saliency", TINY_SOURCE, "--data", cifar, "--weights", bad_weights), "'head.weight'"),
        (("saliency", TINY_SOURCE, "--data", tmp_path / "none"), "does not exist"),
        (("saliency", TINY_SOURCE, "--data", broken), "does not exist"),
        (("saliency", TINY_SOURCE), "no image"),
        (("saliency", TINY_SOURCE, "--data", cifar, "--target", 4), "--target 4 is out of range"),
        (("saliency", TINY_SOURCE, "--data", cifar, "--size", "0x3"), "--size"),
        (("occlusion", TINY_SOURCE, "--data", cifar, "--window", 2, "--stride", 3), "--stride"),
        (("activations", TINY_SOURCE, "--data", cifar, "--layer", "head"), "not N×C×H×W"),
        (("filters", TINY_SOURCE, "--layer", "head"), "not a 2-D convolution"),
        (("maximize", TINY_SOURCE, "--class", 9, "--steps", 2), "--class 9 is out of range"),
        (("sanity", TINY_SOURCE, "--data", cifar, "--methods", "lime"), "unknown method 'lime'"),
        (("faithfulness", TINY_SOURCE, "--data", cifar, "--images", 7), "more than the 6"),
        (("faithfulness", TINY_SOURCE, "--data", cifar, "--deletion", "grey"), "--deletion"),
        (("saliency", "zoo:nonesuch", "--data", cifar), "nonesuch"),
    ]
    (tmp_path / "file").write_text("")
    message = fails("saliency", TINY_SOURCE, "--data", cifar, "--out", tmp_path / "file" / "x")
    assert "cannot create the folder" in message
    for args, expected in cases:
        message = fails(*args, "--out", out)
        assert expected in message, (args, message)
        assert not out.exists(), args


def test_help_lists_every_command() -> None:
    code, output = run("--help")
    assert code == 0
    for name in ("activations", "filters", "maximize", "sanity", "faithfulness", *METHODS):
        assert name in output
