"""Bad input through the real ``convlens`` command: exit status 2, a message that names
the problem and where it is (file:line:column, and the layer when one is involved), and
never a traceback. The stride warning is a warning: exit status 0."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convlens.cli.main import app

runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "net.cnn") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def fails(*args: str) -> str:
    """Run, expect exit status 2 and a one-paragraph ``error:`` message; return it."""
    code, output = run(*args)
    assert code == 2, output
    assert output.startswith("error: "), output
    assert len(output.strip().splitlines()) == 1, output
    return output.strip()


def at(path: Path, line: int, column: int) -> str:
    return f"{path}:{line}:{column}: "


# -- description errors, each with file:line:column ------------------------------------

# (description, expected position (line, column), fragments the message must contain)
DESCRIPTION_ERRORS = {
    "unknown kind with suggestion": (
        "input 3x32x32\nconv2 64\n",
        (2, 1),
        ["unknown layer kind 'conv2'", "did you mean 'conv2d'"],
    ),
    "unknown argument with suggestion": (
        "input 3x32x32\nconv2d 64 k=3 strid=2\n",
        (2, 15),
        ["unknown argument 'strid' for conv2d", "did you mean 'stride'", "conv2d takes:"],
    ),
    "typo in add": (
        "input 3x32x32\nconv2d 3 k=3 p=1 as skip\nrelu\nadd skp\n",
        (4, 5),
        ["undefined name 'skp'", "did you mean 'skip'"],
    ),
    "typo in concat": (
        "input 3x32x32\nconv2d 3 k=3 p=1 as shortcut\nrelu\nconcat shortcat\n",
        (4, 8),
        ["undefined name 'shortcat'", "did you mean 'shortcut'"],
    ),
    "typo in from": (
        "input 3x32x32\nconv2d 8 k=3 p=1 as stem\nrelu\nfrom stme\nrelu\n",
        (4, 6),
        ["undefined name 'stme'", "did you mean 'stem'"],
    ),
    "typo in crop like": (
        "input 3x32x32\nconv2d 3 as small\nfrom input\ncrop like=smal\n",
        (4, 11),
        ["undefined name 'smal'", "did you mean 'small'"],
    ),
    "undefined name": (
        "input 3x32x32\nconv2d 8\nfrom nowhere\n",
        (3, 6),
        ["undefined name 'nowhere'", "label an output with 'as NAME' first"],
    ),
    "zero out_channels": (
        "input 3x32x32\nconv2d 0\n",
        (2, 8),
        ["conv2d argument 'out_channels' must be positive, got 0"],
    ),
    "negative out_channels": (
        "input 3x32x32\nconv2d -4\n",
        (2, 8),
        ["conv2d argument 'out_channels' must be positive, got -4"],
    ),
    "negative kernel": (
        "input 3x32x32\nconv2d 8 k=-3\n",
        (2, 10),
        ["conv2d argument 'kernel_size' must be positive, got -3"],
    ),
    "zero stride": (
        "input 3x32x32\nconv2d 8 s=0\n",
        (2, 10),
        ["conv2d argument 'stride' must be positive, got 0"],
    ),
    "negative padding": (
        "input 3x32x32\nconv2d 8 p=-1\n",
        (2, 10),
        ["conv2d argument 'padding' must be at least 0, got -1"],
    ),
    "zero input size": (
        "input 0x32x32\nconv2d 4\n",
        (1, 7),
        ["input sizes must be positive, got 0"],
    ),
    "input with five sizes": (
        "input 3x8x8x8x8\n",
        (1, 7),
        ["input must be channels x height x width", "channels x length for a signal"],
    ),
    "missing input line": ("conv2d 8 k=3\n", (1, 1), ["must start with 'input CxHxW'"]),
    "input twice": ("input 3x32x32\ninput 3x32x32\n", (2, 1), ["'input' must come once"]),
    "empty description": ("# only a comment\n", (1, 1), ["the description is empty"]),
    "argument given twice": (
        "input 3x32x32\nconv2d 8 kernel_size=3 k=5\n",
        (2, 24),
        ["argument 'kernel_size' of conv2d is given twice"],
    ),
    "kernel pair of three": (
        "input 3x32x32\nconv2d 8 k=3x3x3\n",
        (2, 10),
        ["'kernel_size' takes one value or a pair, got 3 values"],
    ),
    "non-integer kernel": (
        "input 3x32x32\nconv2d 64 k=1.5\n",
        (2, 11),
        ["'kernel_size' must be an integer, got 1.5"],
    ),
    "bad choice": (
        "input 3x32x32\nupsample 2 mode=bilnear\n",
        (2, 12),
        ["'mode' must be one of nearest, bilinear; got 'bilnear' (did you mean 'bilinear'?)"],
    ),
    "bad boolean": (
        "input 3x32x32\nconv2d 8 bias=maybe\n",
        (2, 10),
        ["'bias' must be true or false"],
    ),
    "division by zero": ("input 3x32x32\nconv2d 8 k=3//0\n", (2, 10), ["by zero"]),
    "negative repeat": (
        "input 3x32x32\nrepeat -1: relu\n",
        (2, 8),
        ["repeat count must be a whole number, got -1"],
    ),
    "freeze with argument": (
        "input 3x32x32\nfreeze now\n",
        (2, 8),
        ["'freeze' takes no arguments"],
    ),
    "as without a name": ("input 3x32x32\nconv2d 64 as\n", (2, 11), ["'as' needs a name after it"]),
    "concat without names": (
        "input 3x32x32\nconcat\n",
        (2, 1),
        ["'concat' needs the names of the outputs to join"],
    ),
    "block header without parenthesis": (
        "input 3x32x32\nblock foo(a:\n    conv2d a\nfoo 3\n",
        (2, 10),
        ["a bracket opened here is never closed"],
    ),
    "block header without colon": (
        "input 3x32x32\nblock foo(a)\n    conv2d a\nfoo 3\n",
        (2, 1),
        ["a block is defined as 'block NAME(param, param=default):'"],
    ),
    "block without body": (
        "input 3x32x32\nblock foo(a):\nfoo 3\n",
        (2, 1),
        ["block 'foo' has no indented body"],
    ),
    "block named like a kind": (
        "input 3x32x32\nblock relu(a):\n    conv2d a\n",
        (2, 7),
        ["block name 'relu' is already a layer kind or statement"],
    ),
    "block bad parameter": (
        "input 3x32x32\nblock foo(2a):\n    conv2d 3\n",
        (2, 7),
        ["bad block parameter '2a'"],
    ),
    "block call with unknown parameter": (
        "input 3x32x32\nblock foo(width):\n    conv2d width\nfoo widht=3\n",
        (4, 5),
        ["block 'foo' has no parameter 'widht'", "did you mean 'width'", "it takes: width"],
    ),
    "block call missing parameter": (
        "input 3x32x32\nblock foo(width):\n    conv2d width\nfoo\n",
        (4, 1),
        ["block 'foo' needs parameter 'width'"],
    ),
    "error inside a block names the call": (
        "input 3x32x32\nblock foo(c):\n    conv2d c k=3 strid=2\nfoo 8\n",
        (3, 18),
        ["unknown argument 'strid'", "in block 'foo' called at line 4"],
    ),
}


@pytest.mark.parametrize("case", list(DESCRIPTION_ERRORS), ids=list(DESCRIPTION_ERRORS))
def test_description_error(tmp_path: Path, case: str) -> None:
    text, (line, column), fragments = DESCRIPTION_ERRORS[case]
    path = write(tmp_path, text)
    message = fails("analyze", path)
    assert at(path, line, column) in message
    for fragment in fragments:
        assert fragment in message


# Errors found while analysing: they also name the layer.
# (description, position, layer name, fragments)
LAYER_ERRORS = {
    "kernel larger than padded input": (
        "input 3x4x4\nconv2d 8 k=7 p=1\n",
        (2, 1),
        "conv2d_1",
        ["kernel height 7 is larger than the padded input height 6", "(input 4 + padding 2)"],
    ),
    "dilated kernel larger than input": (
        "input 3x8x8\nconv2d 8 k=3 d=4\n",
        (2, 1),
        "conv2d_1",
        ["kernel height 3 (dilated to 9) is larger than the padded input height 8"],
    ),
    "groups do not divide in_channels": (
        "input 3x32x32\nconv2d 8 g=2\n",
        (2, 1),
        "conv2d_1",
        ["groups=2 must divide the input channels (3)"],
    ),
    "groups do not divide out_channels": (
        "input 4x32x32\nconv2d 6 groups=4\n",
        (2, 1),
        "conv2d_1",
        ["groups=4 must divide the output channels (6)"],
    ),
    "padding same with stride": (
        "input 3x32x32\nrelu\nconv2d 8 k=3 s=2 p=same as down\n",
        (3, 1),
        "down",
        ["padding='same' is not supported for strided convolutions", "PyTorch refuses it"],
    ),
    "concat of different spatial sizes": (
        "input 3x32x32\nconv2d 8 k=3 as a\nfrom input\nconv2d 8 k=3 p=1\nconcat a\n",
        (5, 1),
        "concat_1",
        ["concat needs the same spatial size", "(8, 32, 32) and (8, 30, 30)"],
    ),
    "add of different shapes": (
        "input 3x32x32\nconv2d 8 k=3 p=1 as a\nfrom input\nconv2d 4 k=3 p=1\nadd a\n",
        (5, 1),
        "add_1",
        ["add needs equal shapes", "(4, 32, 32) and (8, 32, 32)"],
    ),
    "add of different symbolic shapes": (
        "input CxHxW\nconv2d 8 k=3 as a\nfrom input\nconv2d 8 k=5\nadd a\n",
        (5, 1),
        "add_1",
        ["add needs equal shapes", "(8, H - 4, W - 4) and (8, H - 2, W - 2)"],
    ),
    "output_padding not below stride or dilation": (
        "input 3x32x32\nconv_transpose2d 8 k=2 s=2 op=2\n",
        (2, 1),
        "conv_transpose2d_1",
        [
            "output_padding 2 along the height must be smaller than the stride (2) "
            "or the dilation (1)"
        ],
    ),
    "output_padding equal to stride and dilation": (
        "input 3x32x32\nconv_transpose2d 8 k=3 s=2 d=2 output_padding=2\n",
        (2, 1),
        "conv_transpose2d_1",
        [
            "output_padding 2 along the height must be smaller than the stride (2) "
            "or the dilation (2)"
        ],
    ),
    "conv after flatten": (
        "input 3x32x32\nflatten\nconv2d 8\n",
        (3, 1),
        "conv2d_1",
        ["conv2d expects a (C, H, W) input, got (3072)", "flatten or linear come too early"],
    ),
    "crop to a larger size": (
        "input 3x32x32\ncrop 40\n",
        (2, 1),
        "crop_1",
        ["cannot crop the height 32 to a larger 40"],
    ),
    "pooling padding over half the window": (
        "input 3x32x32\nmaxpool2d 2 p=2\n",
        (2, 1),
        "maxpool2d_1",
        [
            "padding 2 must be at most half the kernel size (2 // 2 = 1, dilation aside)",
            "PyTorch refuses",
        ],
    ),
    "se reduction too large": (
        "input 3x32x32\nse 16\n",
        (2, 1),
        "se_1",
        ["reduction r=16 leaves no channels from 3"],
    ),
    "align_corners with nearest": (
        "input 3x32x32\nupsample 2 align_corners=true\n",
        (2, 1),
        "upsample_1",
        ["align_corners applies only to mode=bilinear"],
    ),
    "shape error inside a block": (
        "input 3x32x32\nblock res(c):\n    conv2d c k=3\n    add in\nres 8\n",
        (4, 5),
        "res_1.add_1",
        ["add needs equal shapes", "(8, 30, 30) and (3, 32, 32)"],
    ),
}


@pytest.mark.parametrize("case", list(LAYER_ERRORS), ids=list(LAYER_ERRORS))
def test_layer_error(tmp_path: Path, case: str) -> None:
    text, (line, column), layer, fragments = LAYER_ERRORS[case]
    path = write(tmp_path, text)
    message = fails("analyze", path)
    assert at(path, line, column) in message
    assert f"in layer '{layer}'" in message
    for fragment in fragments:
        assert fragment in message


def test_explain_and_compare_report_the_same_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, "input 3x32x32\nconv2 64\n", "bad.cnn")
    good = write(tmp_path, "input 3x32x32\nconv2d 8\n", "good.cnn")
    for args in (("explain", bad), ("compare", good, bad), ("compare", bad, good)):
        message = fails(*args)
        assert at(bad, 2, 1) in message
        assert "did you mean 'conv2d'" in message


# -- command-line errors ------------------------------------------------------------------


def test_unused_set_symbol(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 8 k=k\n")
    message = fails("analyze", path, "--set", "k=3,NF=3")
    assert "--set names symbol(s) the description does not use: NF" in message
    assert "(its symbols: k)" in message


def test_set_symbol_on_a_file_without_symbols(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 8 k=3\n")
    message = fails("analyze", path, "--set", "NF=3")
    assert "does not use: NF" in message
    assert "(its symbols: none)" in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("NF=abc", "--set NF: the value must be an integer, got 'abc'"),
        ("NF", "--set takes NAME=VALUE pairs separated by commas, got 'NF'"),
        ("2x=3", "--set takes NAME=VALUE pairs"),
    ],
)
def test_malformed_set(tmp_path: Path, value: str, fragment: str) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d NF\n")
    assert fragment in fails("analyze", path, "--set", value)


def test_set_value_that_makes_a_size_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d NF\n")
    message = fails("analyze", path, "--set", "NF=0")
    assert at(path, 2, 8) in message
    assert "'out_channels' must be positive, got 0" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cnn"
    message = fails("analyze", missing)
    assert f"no such description file: {missing}" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert f"cannot read {tmp_path}" in fails("analyze", tmp_path)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "--input must look like 3x224x224 (C x H x W), got 'abc'"),
        ("3x32x32x32x32", "--input must be three positive sizes C x H x W, got '3x32x32x32x32'"),
        ("3", "(a signal takes two, C x L; a volume or clip four, C x D x H x W)"),
        ("3x0x32", "--input must be three positive sizes C x H x W, got '3x0x32'"),
        ("3x-4x32", "--input must be three positive sizes"),
    ],
)
def test_bad_input_option(tmp_path: Path, value: str, fragment: str) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    assert fragment in fails("analyze", path, "--input", value)


def test_input_option_too_small_for_the_network(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4 k=5\nconv2d 4 k=5\n")
    message = fails("analyze", path, "--input", "3x6x6")
    assert at(path, 3, 1) in message
    assert "in layer 'conv2d_2'" in message
    assert "kernel height 5 is larger than the padded input height 2" in message


@pytest.mark.parametrize(
    ("command", "value", "fragment"),
    [
        (
            "analyze",
            "xml",
            "--format must be one of table, markdown, json, csv, latex, html, got 'xml'",
        ),
        ("explain", "json", "--format must be one of text, markdown, latex"),
    ],
)
def test_bad_format(tmp_path: Path, command: str, value: str, fragment: str) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    assert fragment in fails(command, path, "--format", value)


def test_bad_compare_format(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    assert "--format must be one of table, markdown, json" in fails(
        "compare", path, path, "-f", "csv"
    )


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--dtype", "int8", "dtype must be one of float32, float16, bfloat16, float64, got 'int8'"),
        ("--optimizer", "lion", "optimizer must be one of sgd, momentum, adam, adamw, got 'lion'"),
        ("--convention", "flops", "convention must be one of full, 2mac, mac, got 'flops'"),
    ],
)
def test_bad_option_values(tmp_path: Path, option: str, value: str, fragment: str) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    assert fragment in fails("analyze", path, option, value)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--layer", "99"), "--layer: no layer 99"),
        (("--layer", "conv2d_9"), "did you mean 'conv2d_1'"),
        (("--what", "speed"), "--what must be one of shape, params, macs, flops, rf, memory, all"),
    ],
)
def test_bad_explain_options(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    assert fragment in fails("explain", path, *args)


def test_batch_must_be_positive(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 4\n")
    code, output = run("analyze", path, "--batch", "0")
    assert code == 2
    assert "--batch" in output


# -- the stride warning: exit 0 and the exact number of rows never read -----------------


def never_read(size: int, kernel: int, stride: int, padding: int) -> int:
    """Input rows after the last window: I + P − ((O − 1)·S + K − P) with O from the
    output-size formula O = ⌊(I + 2P − K)/S⌋ + 1; padding rows do not count."""
    out = (size + 2 * padding - kernel) // stride + 1
    last_read = (out - 1) * stride + kernel  # one past the last padded index read
    return max(0, size + 2 * padding - last_read - padding)


@pytest.mark.parametrize(
    ("size", "layer", "kernel", "stride", "padding"),
    [
        (10, "conv2d 1 k=3 s=2", 3, 2, 0),
        (12, "conv2d 1 k=5 s=4", 5, 4, 0),
        (10, "conv2d 1 k=2 s=4 p=1", 2, 4, 1),
        (7, "maxpool2d 2", 2, 2, 0),
        (20, "avgpool2d 3 s=3", 3, 3, 0),
    ],
)
def test_stride_warning_counts_unread_rows(
    tmp_path: Path, size: int, layer: str, kernel: int, stride: int, padding: int
) -> None:
    expected = never_read(size, kernel, stride, padding)
    assert expected > 0  # each case is chosen to leave rows unread
    path = write(tmp_path, f"input 1x{size}x{size}\n{layer}\n")
    code, output = run("analyze", path)
    assert code == 0, output
    assert not output.startswith("error")
    name = layer.split()[0] + "_1"
    # A square input loses the same rows as columns: one sentence for both axes.
    extent = kernel  # no dilation here
    if stride > extent:
        pattern = (
            rf"warning: {name}: stride {stride} is larger than the kernel extent {extent} along "
            rf"the height and width: {stride - extent} of every {stride} input rows and "
            rf"columns are skipped, and the last (\d+) are never read"
        )
    else:
        pattern = (
            rf"warning: {name}: stride {stride} does not divide evenly along the height and "
            rf"width: the last (\d+) input rows and columns are never read"
        )
    warning = re.search(pattern, output)
    assert warning, output
    assert int(warning.group(1)) == expected
    assert output.count("warning:") == 1


def test_first_stride_case_by_hand() -> None:
    # input 10, k=3, s=2: O = ⌊(10 − 3)/2⌋ + 1 = 4 windows read rows 0 … 3·2 + 3 − 1 = 8,
    # so row 9 (one row) is never read.
    assert never_read(10, 3, 2, 0) == 10 - ((((10 - 3) // 2 + 1) - 1) * 2 + 3) == 1


@pytest.mark.parametrize("layer", ["conv2d 1 k=3 s=2 p=1", "conv2d 1 k=3 s=1", "maxpool2d 2"])
def test_no_warning_when_every_row_is_read(tmp_path: Path, layer: str) -> None:
    path = write(
        tmp_path, f"input 1x11x11\n{layer}\n" if "p=1" in layer else f"input 1x8x8\n{layer}\n"
    )
    code, output = run("analyze", path)
    assert code == 0, output
    assert "never read" not in output


def test_stride_warning_in_json(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, "input 1x10x10\nconv2d 1 k=3 s=2\n")
    code, output = run("analyze", path, "-f", "json")
    assert code == 0
    data = json.loads(output)
    assert data["layers"][0]["warnings"] == [
        "stride 2 does not divide evenly along the height and width: the last 1 input rows "
        "and columns are never read"
    ]
    assert data["warnings"] == ["conv2d_1: " + data["layers"][0]["warnings"][0]]


def test_axes_that_lose_different_rows_warn_separately(tmp_path: Path) -> None:
    # height 10: windows read rows 0 … 8 (row 9 unread); width 11: columns 0 … 10 all read.
    # Then strides (2, 4) with a 1×1 kernel skip 1 of 2 rows but 3 of 4 columns.
    path = write(tmp_path, "input 1x10x11\nconv2d 1 k=3 s=2\n")
    code, output = run("analyze", path)
    assert code == 0
    assert output.count("warning:") == 1
    assert (
        "conv2d_1: stride 2 does not divide evenly along the height: the last 1 input rows "
        "are never read" in output
    )
    path = write(tmp_path, "input 1x10x12\nconv2d 1 k=1 s=(2, 4)\n")
    code, output = run("analyze", path)
    assert code == 0
    assert (
        "stride 2 is larger than the kernel extent 1 along the height: 1 of every 2 input "
        in output
    )
    assert (
        "stride 4 is larger than the kernel extent 1 along the width: 3 of every 4 input " in output
    )


def test_resnet50_shortcut_warnings_are_one_line() -> None:
    code, output = run("analyze", "zoo:resnet50")
    assert code == 0
    lines = [line for line in output.splitlines() if line.startswith("warning:")]
    assert lines == [
        "warning: layer2.0.downsample.0, layer3.0.downsample.0, layer4.0.downsample.0: "
        "stride 2 is larger than the kernel extent 1 along the height and width: 1 of every "
        "2 input rows and columns are skipped, and the last 1 are never read"
    ]


# -- bugs found while writing these tests, now fixed ----------------------------------------


def test_unclosed_bracket_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\nconv2d 64 k=(3, 5\n")
    message = fails("analyze", path)
    assert at(path, 2, 13) in message  # the column of the unclosed "("


def test_error_in_separable_points_at_the_call(tmp_path: Path) -> None:
    path = write(tmp_path, "input 3x32x32\n\n\n\n\n\nseparable 64 s=2 p=same\n")
    message = fails("analyze", path)
    assert "padding='same' is not supported for strided convolutions" in message
    assert f"{path}:7:" in message


def test_compare_refuses_a_set_name_neither_design_uses(tmp_path: Path) -> None:
    first = write(tmp_path, "input 3x32x32\nconv2d NF k=3\n", "first.cnn")
    second = write(tmp_path, "input 3x32x32\nconv2d 8 k=k\n", "second.cnn")
    code, output = run("compare", first, second, "--set", "NF=8,k=3,NFF=3")
    assert code == 2, output
    assert "NFF" in output


def test_compare_shares_one_set_between_two_designs(tmp_path: Path) -> None:
    first = write(tmp_path, "input 3x32x32\nconv2d NF k=3\n", "first.cnn")
    second = write(tmp_path, "input 3x32x32\nconv2d 8 k=k\n", "second.cnn")
    code, output = run("compare", first, second, "--set", "NF=8,k=3", "-f", "json")
    assert code == 0, output
    import json

    data = json.loads(output)
    assert data["left"]["totals"]["params"] == 8 * (3 * 3 * 3) + 8
    assert data["right"]["totals"]["params"] == 8 * (3 * 3 * 3) + 8
    assert data["ratios"]["params"] == 1.0
