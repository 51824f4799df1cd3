"""Symbolic sizes: what ``groups`` and ``view`` assume is stated, never silently taken."""

from __future__ import annotations

import pytest

import convlens
from convlens.core.numbers import symbol
from convlens.errors import SpecError

C, H, W = symbol("C"), symbol("H"), symbol("W")


def warnings_of(text: str, **symbols: int) -> tuple[str, ...]:
    return convlens.analyze(text, **symbols).warnings


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ("conv2d 8 g=4", "conv2d_1: assumes groups=4 divides the input channels (C)"),
        ("conv2d C g=2", "conv2d_1: assumes groups=2 divides the input channels (C)"),
        (
            "conv_transpose2d 8 g=4",
            "conv_transpose2d_1: assumes groups=4 divides the input channels (C)",
        ),
        ("group_norm 4", "group_norm_1: assumes num_groups=4 divides the channels (C)"),
        ("view (4, C/4, H*W)", "view_1: assumes 4 divides C"),
    ],
)
def test_a_divisibility_a_symbolic_size_needs_is_stated(layer: str, expected: str) -> None:
    assert expected in warnings_of(f"input CxHxW\n{layer}\n")


@pytest.mark.parametrize(
    "layer", ["conv2d 8 g=4", "conv_transpose2d 8 g=4", "group_norm 4", "view (4, C/4, H*W)"]
)
def test_nothing_is_assumed_once_the_size_is_known(layer: str) -> None:
    assert warnings_of(f"input CxHxW\n{layer}\n", C=8) == ()


def test_nothing_is_assumed_when_groups_divide_a_symbolic_size() -> None:
    assert warnings_of("input 8xHxW\nconv2d 8 g=4\n") == ()
    assert warnings_of("input CxHxW\nconv2d 2*C g=1\n") == ()


def test_a_view_whose_sizes_may_differ_states_the_equality_it_assumes() -> None:
    report = convlens.analyze("input CxHxW\nview (C*H, W//2, 2)\n")
    (warning,) = report.warnings
    assert warning.startswith("view_1: assumes (C*H, floor(W/2), 2) holds the (C, H, W) values")
    assert "2*C*H*floor(W/2) = C*H*W" in warning


def test_a_view_to_one_size_needs_no_trailing_comma() -> None:
    report = convlens.analyze("input CxHxW\nview (C*H*W)\n")
    assert report.layers[0].output_shape == (C * H * W,)
    assert report.warnings == ()


def test_the_view_with_assumed_division_counts_right() -> None:
    report = convlens.analyze("input CxHxW\nview (4, C/4, H*W)\n", C=8)
    assert report.layers[0].output_shape == (4, 2, H * W)
    assert report.layers[0].activation_bytes == 4 * 2 * H * W * 4  # float32


def test_a_fractional_size_is_refused() -> None:
    with pytest.raises(SpecError, match="a size must be a whole number, got 5/2"):
        convlens.analyze("input 5x4x4\nview (2, 5/2, 16)\n")
