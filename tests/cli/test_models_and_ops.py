"""Models and reference operators given carelessly (issue 15): one clear line, exit status
2, and nothing built or allocated first — checked by spies that fail the test if the
model is built or the big array requested, never by a clock."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convlens.api
import convlens.zoo
from convlens.errors import ArgumentError
from convlens.reference import misc
from tests.cli.test_errors import fails, run

MODEL_SOURCE = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)

    def forward(self, x):
        return self.conv(x)


def make():
    return Net(4)
"""


@pytest.fixture
def model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: Any) -> str:
    """A module of its own name in a fresh folder; sys.path and sys.modules restored after."""
    name = f"user_model_{request.node.name.split('[')[0][-20:]}"
    (tmp_path / f"{name}.py").write_text(MODEL_SOURCE)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_the_current_directory_is_importable(
    model_folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = run("analyze", f"{model_folder}:make", "--input", "3x8x8", "-f", "csv")
    assert code == 0, output
    conv = next(csv.DictReader(io.StringIO(output)))
    assert conv["name"] == "conv" and conv["output_shape"] == "4x6x6"
    assert int(conv["params"]) == 4 * 3 * 3 * 3 + 4  # numel of Conv2d(3, 4, 3)'s weight, bias


def test_a_module_elsewhere_says_how_to_import_it(model_folder: str, tmp_path: Path) -> None:
    message = fails("analyze", f"{model_folder}:make", "--input", "3x8x8")
    assert f"cannot import module '{model_folder}'" in message
    assert "current directory" in message and "PYTHONPATH" in message


def test_a_class_that_needs_arguments_is_refused_before_it_is_called(
    model_folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = fails("analyze", f"{model_folder}:Net", "--input", "3x8x8")
    assert f"'{model_folder}:Net' is a class that needs arguments (width)" in message
    assert f"'def make(): return Net(...)' in {model_folder}, as {model_folder}:make" in message


def test_device_cuda_without_cuda_is_refused_before_building(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(convlens.api, "model_from_reference", _must_not_run("the model built"))
    message = fails("analyze", "zoo:resnet18", "--device", "cuda")
    assert f"--device cuda: this PyTorch ({torch.__version__}) is" in message
    assert "use --device cpu" in message


def test_an_unknown_device_is_refused() -> None:
    assert "--device must be meta, cpu or cuda; got 'tpu'" in fails(
        "analyze", "zoo:resnet18", "--device", "tpu"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("zoo:resnet18?num_classes=-5",), "argument 'num_classes' of model 'resnet18' must be"),
        (("zoo:resnet18", "--arg", "num_classes=0"), "must be positive, got '0'"),
        (("zoo:deeplabv3_resnet50?atrous_rates=12,0,36",), "'atrous_rates' of model"),
    ],
)
def test_zoo_sizes_must_be_positive(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], fragment: str
) -> None:
    monkeypatch.setattr(convlens.zoo, "create_model", _must_not_run("the model built"))
    assert fragment in fails("analyze", *args)


def test_zero_is_a_size_where_the_default_is_zero() -> None:
    from convlens.zoo.registry import coerce_arguments

    assert coerce_arguments("yolov2", {"passthrough_channels": "0"}) == {"passthrough_channels": 0}
    assert coerce_arguments("yolov2", {"passthrough_channels": "64"}) == {
        "passthrough_channels": 64
    }
    with pytest.raises(
        ArgumentError, match="'passthrough_channels' of model 'yolov2' must be zero"
    ):
        coerce_arguments("yolov2", {"passthrough_channels": "-1"})
    with pytest.raises(ArgumentError, match="'num_classes' of model 'yolov2' must be positive"):
        coerce_arguments("yolov2", {"num_classes": "0"})


def test_torch_refusing_a_zoo_argument_is_one_line() -> None:
    message = fails("analyze", "zoo:mobilenet_v2?width_mult=-1")
    assert "cannot build model 'mobilenet_v2'" in message and "width_mult" in message


# -- convlens op: size guards before allocating ---------------------------------------------


def _must_not_run(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} before the guard refused the request")

    return refuse


def test_a_huge_shorthand_matrix_is_refused_before_allocating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(np, "ones", _must_not_run("np.ones was called"))
    message = fails("op", "conv2d", "--input", "ones100000x100000", "--weight", "ones3x3")
    assert "--input: ones100000x100000 would hold 10,000,000,000 values" in message
    assert "more than the 10,000,000 the reference operators take" in message


def test_a_huge_npy_file_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1)))
    header["shape"] = (4000, 4000)  # the header claims 16 M values; no data follows
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
    message = fails("op", "relu", "--input", str(path))
    assert f"--input: {path} would hold 16,000,000 values (shape (4000, 4000))" in message


def test_a_huge_upsampling_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(misc, "_nearest_matrix", _must_not_run("the interpolation built"))
    message = fails("op", "upsample", "--input", "ones3x3", "--scale", "1e9")
    assert "the upsampled output would hold 9,000,000,000,000,000,000 values" in message


def test_a_huge_padding_is_refused() -> None:
    message = fails(
        "op", "conv2d", "--input", "ones3x3", "--weight", "ones3x3", "--padding", "100000"
    )
    # O = 3 + 2·100000 − 3 + 1 = 200001 rows and columns
    assert f"the output would hold {200001 * 200001:,} values" in message


def test_a_huge_transposed_output_is_refused() -> None:
    message = fails(
        "op", "conv_transpose2d", "--input", "ones3x3", "--weight", "ones3x3", "--stride", "99999"
    )
    # (H − 1)·S + K = 2·99999 + 3 = 200001 rows and columns
    assert f"would hold {200001 * 200001:,} values (shape (1, 1, 200001, 200001))" in message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--running-var", "-1"), "running_var must be ≥ 0, a variance; got -1 for channel 0"),
        (("--running-var", "1", "--eps", "-1"), "eps must be ≥ 0 (it is added to σ²); got -1.0"),
        (("--running-var", "0", "--eps", "0"), "running_var + eps must be positive"),
    ],
)
def test_batch_norm_statistics_out_of_range(args: tuple[str, ...], fragment: str) -> None:
    message = fails("op", "batch_norm", "--input", "ones3x3", "--running-mean", "0", *args)
    assert fragment in message


def test_batch_norm_with_zero_variance_and_positive_eps_runs() -> None:
    code, output = run(
        "op", "batch_norm", "--input", "ones2x2", "--running-mean", "0", "--running-var", "0"
    )
    assert code == 0, output
    assert "check: agrees with torch.nn.functional.batch_norm" in output
