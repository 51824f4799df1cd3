"""``convlens op`` driven through the real Typer app."""

# (I001 is silenced: with tests/torch/ in ruff's `src`, ruff takes `import torch` as first-party.)
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from convlens.cli.main import app

runner = CliRunner()


def op(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["op", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def rgb(tmp_path: Path) -> list[str]:
    paths = []
    for name, rows in {
        "R.txt": "1 2 3 4\n5 6 7 8\n9 10 11 12\n13 14 15 16\n",
        "G.txt": "0,1,0,1\n1,0,1,0\n0,1,0,1\n1,0,1,0\n",
        "B.txt": "2 2 2 2\n2 2 2 2\n2 2 2 2\n2 2 2 2\n",
    }.items():
        (tmp_path / name).write_text(rows)
        paths.append(str(tmp_path / name))
    return paths


def rgb_array(paths: list[str]) -> np.ndarray:
    return np.stack([np.loadtxt(p, delimiter="," if "G" in p else None) for p in paths])


def test_issue_example_conv2d_padded_rgb(rgb: list[str]) -> None:
    code, out, _ = op(
        "conv2d", "--input", *rgb, "--weight", "ones3x3", "--padding", "1", "--explain"
    )
    assert code == 0
    x = torch.tensor(rgb_array(rgb))[None]
    expected = F.conv2d(x, torch.ones(1, 3, 3, 3, dtype=torch.float64), padding=1)[0, 0]
    assert "R.txt: [0 0 0; 0 1 2; 0 5 6] ⊙ [1 1 1; 1 1 1; 1 1 1]" in out
    assert "sum over channels: 14 + 2 + 8 = 24" in out
    assert out.count("sum over channels") == 16  # every output element is worked
    assert "Per input channel" in out
    assert out.strip().splitlines()[-1].startswith("check: agrees with torch.nn.functional.conv2d")
    grid = out.split("output:")[1].splitlines()[1:5]
    shown = [[float(v) for v in line.strip(" []").split()] for line in grid]
    assert shown == expected.tolist()


def test_json_output_has_output_and_per_channel(rgb: list[str]) -> None:
    code, out, _ = op(
        "conv2d", "-i", *rgb, "-w", "[[1,0],[0,-1]]", "--stride", "2", "--format", "json"
    )
    assert code == 0
    payload = json.loads(out)
    x = torch.tensor(rgb_array(rgb))[None]
    w = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64).expand(1, 3, 2, 2)
    assert payload["output"] == F.conv2d(x, w, stride=2)[0, 0].tolist()
    assert len(payload["per_channel"]) == 3
    np.testing.assert_allclose(np.sum(payload["per_channel"], axis=0), payload["output"])
    assert payload["check"].startswith("check: agrees")


def test_issue_example_conv_transpose2d() -> None:
    code, out, _ = op(
        "conv_transpose2d", "--input", "[[1,2],[3,4]]", "--weight", "[[1,2],[3,4]]", "--explain"
    )
    assert code == 0
    assert "x[1, 1] = 4 → 4·[1 2; 3 4] = [4 8; 12 16] lands on output channel 0, rows 1…2" in out
    assert "y[1, 1] = 1·4 + 2·3 + 3·2 + 4·1 = 20" in out
    code, out, _ = op(
        "conv_transpose2d", "-i", "[[1,2],[3,4]]", "-w", "[[1,2],[3,4]]", "--format", "json"
    )
    assert json.loads(out)["output"] == [[1, 4, 4], [6, 20, 16], [9, 24, 16]]


def test_issue_example_max_pool_backward(tmp_path: Path) -> None:
    image = np.array([[1, 3, 2, 1], [4, 4, 0, 1], [5, 1, 2, 2], [1, 0, 2, 1]], dtype=float)
    np.save(tmp_path / "image.npy", image)
    args = (
        "max_pool2d",
        "--input",
        str(tmp_path / "image.npy"),
        "--kernel",
        "2",
        "--backward",
        "[[1,2],[3,4]]",
    )
    code, out, _ = op(*args, "--explain")
    assert code == 0
    assert "y[0, 0]: window rows 0…1, cols 0…1 [1 3; 4 4] → max 4 at x[1, 0]" in out
    assert "∂L/∂y[1, 1] = 4 → all of it to the window's arg-max ∂L/∂x[2, 2]" in out
    assert "and autograd" in out.splitlines()[-1]
    code, out, _ = op(*args, "--format", "json")
    payload = json.loads(out)
    assert payload["output"] == [[4, 2], [5, 2]]
    assert payload["gradients"]["input"] == [[0, 0, 2, 0], [1, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_markdown_and_latex(fmt: str) -> None:
    code, out, _ = op("conv2d", "-i", "arange4x4", "-w", "eye2", "--explain", "--format", fmt)
    assert code == 0
    if fmt == "latex":
        assert r"\begin{bmatrix} 5 & 7 & 9 \\" in out
        assert r"\begin{itemize}" in out and r"\cdot" in out
    else:
        assert "### Working" in out and "```text" in out and "- y[0, 0]" in out


def test_without_explain_prints_result_and_check_only() -> None:
    code, out, _ = op("avg_pool2d", "-i", "arange4x4", "--kernel", "2")
    assert code == 0
    assert "Working" not in out and "output:" in out
    assert "[  2.5   4.5 ]" in out


def test_large_input_prints_a_summary(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.arange(900.0).reshape(30, 30))
    code, out, _ = op("conv2d", "-i", str(tmp_path / "big.npy"), "-w", "ones3x3", "--explain")
    assert code == 0
    assert "Summary" in out and "working not shown: 784 elements per output plane" in out
    assert "sum over channels" not in out and len(out.splitlines()) < 40


def test_other_operators_run_and_agree_with_torch() -> None:
    for args in (
        ("upsample", "-i", "[[1,2],[3,4]]", "--scale", "2", "--mode", "bilinear", "--explain"),
        ("upsample", "-i", "[[1,2],[3,4]]", "--size", "3,5"),
        ("global_avg_pool", "-i", "arange4x4", "arange4x4", "--backward", "[[[1]],[[2]]]"),
        ("relu", "-i", "[[-1,2],[0,-4]]", "--backward", "[[1,1],[1,1]]"),
        (
            "conv2d",
            "-i",
            "arange4x4",
            "arange4x4",
            "-w",
            "ones2x2",
            "--groups",
            "2",
            "--bias",
            "1,2",
            "--dilation",
            "2",
            "--padding",
            "1,0,0,1",
        ),
        (
            "conv2d",
            "-i",
            "arange4x4",
            "-w",
            "ones3x3",
            "--padding",
            "same",
            "--backward",
            "ones4x4",
            "--explain",
        ),
        (
            "conv_transpose2d",
            "-i",
            "eye2",
            "-w",
            "ones3x3",
            "--stride",
            "2",
            "--padding",
            "1",
            "--output-padding",
            "1",
            "--backward",
            "ones4x4",
        ),
        (
            "max_pool2d",
            "-i",
            "arange4x4",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--padding",
            "1",
            "--ceil-mode",
            "--explain",
        ),
        (
            "avg_pool2d",
            "-i",
            "arange4x4",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--padding",
            "1",
            "--no-count-include-pad",
            "--backward",
            "ones2x2",
            "--explain",
        ),
    ):
        code, out, err = op(*args)
        assert code == 0, (args, err)
        assert out.strip().splitlines()[-1].startswith("check: agrees"), (args, out)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch_with_backward(training: bool) -> None:
    x = np.array([[[1.0, 2.0], [3.0, 5.0]], [[0.0, 1.0], [1.0, -2.0]]])  # (C, H, W)
    grad = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, -1.0]]])
    mode = ["--training"] if training else []
    args = (
        "batch_norm",
        "-i",
        json.dumps(x.tolist()),
        "--weight",
        "2",
        "0.5",
        "--bias",
        "0,1",
        "--running-mean",
        "0.5,-1",
        "--running-var",
        "2,0.25",
        *mode,
        "--backward",
        json.dumps(grad.tolist()),
    )
    code, out, err = op(*args, "--format", "json")
    assert code == 0, err
    payload = json.loads(out)
    tx = torch.tensor(x[None], requires_grad=True)
    gamma = torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    rm = torch.tensor([0.5, -1.0], dtype=torch.float64)
    rv = torch.tensor([2.0, 0.25], dtype=torch.float64)
    y = F.batch_norm(tx, rm, rv, gamma, beta, training=training)
    y.backward(torch.tensor(grad[None]))
    np.testing.assert_allclose(payload["output"], y[0].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(payload["gradients"]["input"], tx.grad[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(payload["gradients"]["weight"], gamma.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(payload["gradients"]["bias"], beta.grad.numpy(), atol=1e-12)
    if training:  # F.batch_norm updated rm and rv in place
        np.testing.assert_allclose(payload["running_mean"], rm.numpy(), atol=1e-12)
        np.testing.assert_allclose(payload["running_var"], rv.numpy(), atol=1e-12)
    else:
        assert "running_mean" not in payload
    assert payload["check"].startswith("check: agrees with torch.nn.functional.batch_norm")
    code, out, _ = op(*args, "--explain")
    assert code == 0
    assert (
        "batch mean μ = (1 + 2 + 3 + 5) / 4 = 2.75" in out
        if training
        else ("running statistics μ = 0.5, σ² = 2" in out)
    )
    assert out.strip().splitlines()[-1].startswith("check: agrees")


def test_batch_norm_one_running_statistic_serves_every_channel() -> None:
    code, out, _ = op(
        "batch_norm", "-i", "[[1,2],[3,4]]", "ones2x2", "--running-mean", "2", "--running-var", "4"
    )
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("check: agrees")


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "json"])
def test_linear_matches_torch_with_backward(fmt: str) -> None:
    x, w, b = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[1.0, 0.0, -1.0], [0.5, 1.0, 2.0]], [0.5, -1.0]
    g = [[1.0, 2.0], [3.0, -1.0]]
    code, out, err = op(
        "linear",
        "-i",
        json.dumps(x),
        "-w",
        json.dumps(w),
        "--bias",
        "0.5,-1",
        "--backward",
        json.dumps(g),
        "--explain",
        "--format",
        fmt,
    )
    assert code == 0, err
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    y = F.linear(tx, tw, tb)
    y.backward(torch.tensor(g, dtype=torch.float64))
    if fmt == "json":
        payload = json.loads(out)
        assert payload["output"] == y.tolist()
        assert "per_channel" not in payload
        assert payload["gradients"] == {
            "input": tx.grad.tolist(),
            "weight": tw.grad.tolist(),
            "bias": tb.grad.tolist(),
        }
        assert payload["check"].startswith("check: agrees with torch.nn.functional.linear")
    elif fmt == "text":
        assert "y[1, 1] = [4 5 6]·[0.5 1 2] + (-1) = 4·0.5 + 5·1 + 6·2 + (-1) = 18" in out
        assert out.strip().splitlines()[-1].startswith("check: agrees")
    elif fmt == "latex":
        assert r"\begin{bmatrix} 4 & 5 & 6 \end{bmatrix}" in out and r"\cdot" in out
    else:
        assert "### Working" in out and "- y[0, 0] = `[1 2 3]`" in out


def test_channelwise_operators_explain_every_element() -> None:
    code, out, _ = op("relu", "-i", "[[-1,2],[0,3]]", "--backward", "[[1,2],[3,4]]", "--explain")
    assert code == 0
    assert "y[0, 0] = max(-1, 0) = 0" in out and "y[1, 1] = max(3, 0) = 3" in out
    assert "∂L/∂y[0, 1] = 2 → all of it to ∂L/∂x[0, 1] (x > 0)" in out
    assert "∂L/∂y[1, 0] = 3 → stops: 0 to ∂L/∂x[1, 0] (x ≤ 0)" in out
    code, out, _ = op(
        "upsample", "-i", "[[1,2],[3,4]]", "--scale", "2", "--mode", "bilinear", "--explain"
    )
    assert code == 0
    assert "y[1, 1] = 0.5625·x[0, 0] + 0.1875·x[0, 1] + 0.1875·x[1, 0] + 0.0625·x[1, 1]" in out
    code, out, _ = op("upsample", "-i", "[[1,2],[3,4]]", "--size", "3", "--explain")
    assert code == 0 and "y[2, 2] = 1·x[1, 1] = 1·4 = 4" in out
    code, out, _ = op("global_avg_pool", "-i", "arange2x2", "--backward", "[[8]]", "--explain")
    assert code == 0
    assert "cols 0…1 [0 1; 2 3] → (0 + 1 + 2 + 3) / 4 = 6 / 4 = 1.5" in out
    assert "∂L/∂y[0, 0] = 8 → 2 to each input cell (0, 0), (0, 1), (1, 0), (1, 1)" in out
    assert out.strip().splitlines()[-1].startswith("check: agrees")


def test_check_is_skipped_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    code, out, _ = op("relu", "-i", "[[-1,2]]")
    assert code == 0
    assert out.strip().splitlines()[-1] == "check against PyTorch skipped: torch is not installed."


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("conv2d", "-i", "[[1,2],[3]]", "-w", "ones2x2"), "--input: the matrix is ragged"),
        (("conv2d", "-i", "[]", "-w", "ones2x2"), "--input: the matrix is empty"),
        (("conv2d", "-i", "[[1,'x']]", "-w", "ones2x2"), "not a number"),
        (
            ("conv2d", "-i", "ones4x4", "ones4x4", "ones4x4", "-w", "ones3x3", "ones3x3"),
            "got 2 filter matrices for an input with 3 channels",
        ),
        (("conv2d", "-i", "ones4x4", "ones4x3", "-w", "ones3x3"), "same shape"),
        (
            ("conv2d", "-i", "ones2x2", "-w", "ones3x3"),
            "kernel spans 3×3 (K = 3×3, dilation (1, 1)) but the padded input is only 2×2; "
            "expected an input of at least 3×3",
        ),
        (
            (
                "conv_transpose2d",
                "-i",
                "ones2x2",
                "-w",
                "ones2x2",
                "--stride",
                "2",
                "--output-padding",
                "2",
            ),
            "output_padding (2, 2) must be smaller than either stride",
        ),
        (
            ("max_pool2d", "-i", "ones4x4", "--kernel", "2", "--backward", "ones3x3"),
            "grad_output (--backward) must have the shape of the output, (2, 2)",
        ),
        (("max_pool2d", "-i", "ones2x2", "--kernel", "3"), "larger than the padded input"),
        (("max_pool2d", "-i", "ones4x4"), "needs --kernel"),
        (("conv2d", "-i", "ones4x4"), "needs --weight"),
        (("conv2d", "-i", "ones4x4", "-w", "ones2x2", "--kernel", "2"), "--kernel does not apply"),
        (
            ("conv2d", "-i", "ones4x4", "-w", "ones2x2", "--stride", "a"),
            "--stride must be integers",
        ),
        (
            ("conv2d", "-i", "ones4x4", "-w", "ones2x2", "--padding", "same", "--stride", "2"),
            "padding='same' needs stride 1",
        ),
        (
            ("conv2d", "-i", "ones4x4", "ones4x4", "ones4x4", "-w", "ones2x2", "--groups", "2"),
            "groups=2 must divide",
        ),
        (("conv2d", "-i", "missing.txt", "-w", "ones2x2"), "no such file"),
        (("upsample", "-i", "ones2x2"), "exactly one of --size"),
        (("conv2d", "-i", "ones4x4", "-w", "ones2x2", "--stride", "0"), "stride must be ≥ 1"),
        (
            ("conv2d", "-i", "ones4x4", "-w", "ones2x2", "--groups", "0"),
            "groups must be an int ≥ 1",
        ),
        (("max_pool2d", "-i", "ones4x4", "--kernel", "0"), "kernel_size must be ≥ 1"),
        (("batch_norm", "-i", "ones2x2"), "batch_norm needs --running-mean and --running-var"),
        (
            ("batch_norm", "-i", "ones2x2", "ones2x2", "--training", "--weight", "1,2,3"),
            "weight must have shape (2,), one per channel",
        ),
        (
            ("batch_norm", "-i", "ones2x2", "--running-mean", "0,0", "--running-var", "1"),
            "running_mean must have shape (1,)",
        ),
        (("batch_norm", "-i", "[[3]]", "--training"), "more than one value per channel"),
        (("batch_norm", "-i", "ones2x2", "--training", "--kernel", "2"), "--kernel does not apply"),
        (
            ("batch_norm", "-i", "ones2x2", "--training", "--weight", "a"),
            "--weight must be numbers",
        ),
        (("linear", "-i", "ones2x3"), "linear needs --weight"),
        (
            ("linear", "-i", "ones2x3", "-w", "ones2x2"),
            "weight must have shape (out_features, 3) to match the input's last axis",
        ),
        (
            ("linear", "-i", "ones2x3", "-w", "ones1x3", "--bias", "1,2"),
            "bias must have shape (1,)",
        ),
        (
            ("linear", "-i", "ones2x3", "-w", "ones4x3", "--backward", "ones2x3"),
            "grad_output (--backward) must have the shape of the output, (2, 4)",
        ),
        (
            ("linear", "-i", "ones2x3", "-w", "ones4x3", "--padding", "1"),
            "--padding does not apply",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(args: tuple[str, ...], fragment: str) -> None:
    code, out, err = op(*args)
    assert code == 2, (code, out, err)
    assert fragment in " ".join(err.split()), err
    assert err.startswith("error:") and "Traceback" not in err + out


def test_reference_imports_only_numpy() -> None:
    code = (
        "import sys, convlens.reference, convlens.reference.parse; "
        "assert 'torch' not in sys.modules, 'convlens.reference imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
