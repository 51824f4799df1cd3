"""pixel_shuffle, pixel_unshuffle and channel_shuffle in the description language: exact
shapes, no FLOPs, their outputs counted as copies, nothing saved; receptive fields position
by position against the gradient method; clear refusals; symbolic sizes.

(Each kind is also checked against PyTorch on random configurations by
``test_every_kind.py``; ``test_receptive_field.py``'s random networks include them.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
import sympy

import convlens
from convlens.core.numbers import symbol
from convlens.errors import SpecError
from tests.cli.test_errors import fails, write
from tests.core.oracle import gradient_extents, network
from tests.core.test_receptive_field import check_rf


def test_pixel_shuffle_figures() -> None:
    report = convlens.analyze("input 18x5x7\npixel_shuffle 3", batch=2)
    (row,) = report.layers
    assert row.output_shape == (18 // (3 * 3), 5 * 3, 7 * 3)
    assert (row.params, row.macs, row.flops, row.saved_bytes) == (0, 0, 0, 0)
    assert row.activation_bytes == 2 * 2 * 15 * 21 * 4  # a copy: counted, and at the peak
    assert report.totals.peak_activation_bytes == 2 * (18 * 5 * 7 + 2 * 15 * 21) * 4


def test_pixel_unshuffle_and_channel_shuffle_figures() -> None:
    report = convlens.analyze("input 3x8x6\npixel_unshuffle 2\nchannel_shuffle 4")
    assert [row.output_shape for row in report.layers] == [(3 * 2 * 2, 8 // 2, 6 // 2)] * 2
    assert report.totals.flops == 0 and report.totals.saved_activation_bytes == 0
    assert report.totals.activation_bytes == 2 * (12 * 4 * 3) * 4


@pytest.mark.parametrize(
    ("line", "channels", "reads"),
    [
        ("pixel_shuffle 2", 4, lambda o: (o // 2, o // 2)),
        ("pixel_shuffle 3", 9, lambda o: (o // 3, o // 3)),
        ("pixel_unshuffle 2", 1, lambda o: (2 * o, 2 * o + 1)),
        ("pixel_unshuffle 3", 2, lambda o: (3 * o, 3 * o + 2)),
        ("channel_shuffle 3", 9, lambda o: (o, o)),
    ],
)
def test_each_output_position_reads_what_its_gradient_reaches(
    line: str, channels: int, reads: Callable[[int], tuple[int, int]]
) -> None:
    """Every output position against its exact map, measured on output channel 0. A
    pixel_unshuffle position's r² channels each read one input position, the r×r block
    together: a 1×1 conv after it mixes them, as any later layer that reads them does."""
    text = f"input {channels}x18x24\n{line}"
    if "unshuffle" in line:
        text += "\nconv2d 1 k=1"
    report = convlens.analyze(text)
    for axis in (0, 1):
        rows = gradient_extents(network(text), axis)
        assert len(rows) == report.layers[-1].output_shape[1 + axis]
        assert all((lo, hi) == reads(o) for o, lo, hi in rows), (line, axis, rows)
        assert report.totals.rf[axis] == max(hi - lo + 1 for _, lo, hi in rows)


def test_sub_pixel_networks_receptive_fields() -> None:
    # ESPCN: 5×5 and 3×3 convs see 7 rows; output i reads row ⌊i/3⌋: jump ⅓
    espcn = "input 1x40x40\nconv2d 8 k=5 p=2\nconv2d 9 k=3 p=1\npixel_shuffle 3"
    report = convlens.analyze(espcn)
    assert report.totals.rf == (7, 7) and report.totals.jump == (Fraction(1, 3),) * 2
    assert report.totals.start == (0, 0)
    check_rf(espcn)
    # a 3×3 conv after the shuffle reads rows ⌊o/2⌋ … ⌊(o + 2)/2⌋: two rows
    r = convlens.analyze("input 1x48x48\nconv2d 4 k=1\npixel_shuffle 2\nconv2d 1 k=3")
    assert r.totals.rf == (2, 2) and r.totals.start == (Fraction(1, 2),) * 2
    check_rf("input 1x48x48\nconv2d 4 k=1\npixel_shuffle 2\nconv2d 1 k=3")
    # space-to-depth then a 3×3 conv: kernel 2 stride 2, then 3 positions → 2·3 = 6 rows
    down = "input 1x48x48\npixel_unshuffle 2\nconv2d 1 k=3"
    assert convlens.analyze(down).totals.rf == (6, 6)
    check_rf(down)
    # channel_shuffle between convolutions changes no field
    shuffled = "input 1x40x40\nconv2d 6 k=3\nchannel_shuffle 3\nconv2d 1 k=3"
    assert convlens.analyze(shuffled).totals.rf == (5, 5)
    check_rf(shuffled)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input 6x4x4\npixel_shuffle 2",
            "pixel_shuffle 2 needs the input channels (6) to be a multiple of 2² = 4",
        ),
        (
            "input 3x7x6\npixel_unshuffle 2",
            "pixel_unshuffle 2 needs the input height (7) to be a multiple of 2",
        ),
        (
            "input 3x8x9\npixel_unshuffle 2",
            "pixel_unshuffle 2 needs the input width (9) to be a multiple of 2",
        ),
        (
            "input 6x4x4\nchannel_shuffle 4",
            "channel_shuffle 4 needs the channels (6) to be a multiple of 4",
        ),
        ("input 8x4x4\npixel_shuffle 0", "upscale_factor"),
        ("input 8x16\npixel_shuffle 2", "pixel_shuffle expects a (C, H, W) input, got (8, 16)"),
    ],
)
def test_bad_input_is_refused_at_its_line(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        convlens.analyze(text)
    assert err.value.position is not None and err.value.position.line == 2
    path = write(tmp_path, text + "\n")
    output = fails("analyze", path)
    assert output.startswith(f"error: {path}:2:") and message in output, output


def test_symbolic_sizes() -> None:
    c, h, w = symbol("C"), symbol("H"), symbol("W")
    report = convlens.analyze("input CxHxW\npixel_shuffle 2\nchannel_shuffle 2")
    assert report.layers[0].output_shape == (c / 4, 2 * h, 2 * w)
    assert report.layers[0].warnings == ("assumes 4 divides the input channels (C)",)
    assert report.layers[1].warnings == ("assumes 2 divides the channels (C/4)",)
    numeric = convlens.analyze("input CxHxW\npixel_shuffle 2\nchannel_shuffle 2", C=16, H=5, W=3)
    assert numeric.layers[-1].output_shape == (4, 10, 6)
    down = convlens.analyze("input 3xHxW\npixel_unshuffle 2")
    assert down.layers[0].output_shape == (12, h / 2, w / 2)
    assert set(down.layers[0].warnings) == {
        "assumes 2 divides the input height (H)",
        "assumes 2 divides the input width (W)",
    }
    assert down.totals.rf == (2, 2) and down.totals.jump == (2, 2)


def test_a_symbolic_factor() -> None:
    r = symbol("r")
    # pixel_unshuffle's map is affine in r: its field stays exact
    report = convlens.analyze("input 2x32x32\npixel_unshuffle r\nconv2d 1 k=3")
    assert sympy.simplify(report.totals.rf[0] - 3 * r) == 0
    assert convlens.analyze("input 2x32x32\npixel_unshuffle r\nconv2d 1 k=3", r=2).totals.rf == (
        6,
        6,
    )
    # pixel_shuffle's floors repeat every r outputs: no field without a number for r
    report = convlens.analyze("input 8x6x6\nconv2d 4 k=3\npixel_shuffle r\nconv2d 1 k=3")
    assert report.layers[1].output_shape == (4 / r**2, 4 * r, 4 * r)
    assert report.totals.rf_status == "unavailable"
    assert "numeric upscale_factor" in report.totals.rf_reason
    numeric = "input 8x6x6\nconv2d 4 k=3\npixel_shuffle r\nconv2d 1 k=3"
    assert convlens.analyze(numeric, r=2).totals.rf == (4, 4)
