"""Receptive fields against the empirical gradient method.

With positive weights, every input that an output depends on gets a non-zero
gradient; the extent of that gradient is the receptive field. Positions whose
field is cut by the image border are left out (convlens reports the field on an
unbounded input), and the largest extent over the rest must equal convlens's.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.core.numbers import symbol
from tests.core.oracle import gradient_extents, network


@st.composite
def rf_networks(draw):
    lines = [f"input 1x{draw(st.integers(48, 64))}x{draw(st.integers(48, 64))}"]
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 8))
        if kind == 0:
            k, s, d = draw(st.integers(1, 5)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
            lines.append(f"conv2d 1 k={k} s={s} d={d} p={draw(st.integers(0, k // 2))}")
        elif kind == 1:
            lines.append(f"avgpool2d {draw(st.integers(2, 3))} s={draw(st.integers(1, 2))}")
        elif kind == 2:
            mode = draw(st.sampled_from(["nearest", "bilinear"]))
            lines.append(f"upsample {draw(st.sampled_from([2, 4]))} mode={mode}")
        elif kind == 3:
            k, s = draw(st.integers(1, 4)), draw(st.integers(1, 3))
            lines.append(f"conv_transpose2d 1 k={k} s={s} d={draw(st.integers(1, 3))}")
        elif kind == 4:  # two branches that must be joined exactly
            a, b = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            lines += [
                f"conv2d 1 k={2 * a + 1} p={a} as x{i}",
                "from " + _prev(lines, i),
                f"conv2d 1 k={2 * b + 1} p={b} d={draw(st.integers(1, 2))} as y{i}"
                if b == 0
                else f"conv2d 1 k={2 * b + 1} p={b} as y{i}",
                f"add x{i}",
            ]
        elif kind == 6:  # F.pad (negative: a crop) before a convolution without padding
            pads = ",".join(str(draw(st.integers(-1, 3))) for _ in range(4))
            lines += [f"pad ({pads})", f"conv2d 1 k={draw(st.integers(1, 4))}"]
        elif kind == 7:  # sub-pixel convolution: r² maps of stride r → one map of jump 1
            r, k = draw(st.integers(2, 3)), draw(st.integers(1, 4))
            lines += [f"conv2d {r * r} k={k} s={r}", f"channel_shuffle {r}", f"pixel_shuffle {r}"]
        elif kind == 8:  # space-to-depth of a map made a multiple of r, then a conv mixes
            r, a = draw(st.integers(2, 3)), draw(st.integers(0, 1))  # its r² channels
            lines += [f"upsample {r}", f"conv2d 1 k={2 * a + 1} p={a}", f"pixel_unshuffle {r}"]
            lines.append(f"conv2d 1 k={draw(st.integers(1, 2))}")
        else:
            lines += [
                f"conv2d 1 k=3 as u{i}",
                "from " + _prev(lines, i),
                "conv2d 1 k=1",
                f"crop like=u{i}",
                f"concat u{i}",
                "conv2d 1 k=1",
            ]
    return "\n".join(lines)


def _prev(lines: list[str], i: int) -> str:
    """Name the current output so a branch can start from it."""
    lines.append(f"identity as p{i}")
    return f"p{i}"


def check_rf(text: str, margin: int = 8) -> None:
    """convlens's RF, jump and start along every spatial axis against the gradient's
    extents, ``margin`` positions away from the border, so that no dependency (even across
    a dilation gap) is cut: convlens reports the field on an unbounded input."""
    report = convlens.analyze(text)
    last = report.layers[-1]
    net = network(text)
    size_in = net.input_shape[1:]
    assert len(last.rf) == len(size_in), text
    for axis in range(len(size_in)):
        rows = gradient_extents(net, axis)
        interior = [
            (o, lo, hi) for o, lo, hi in rows if lo >= margin and hi <= size_in[axis] - 1 - margin
        ]
        if not interior:
            continue
        measured = max(hi - lo + 1 for _, lo, hi in interior)
        assert last.rf[axis] >= measured, text
        period = last.rf_period[axis]
        if len(interior) >= period + 1:
            assert last.rf[axis] == measured, text
        if period == 1:  # centres move by exactly one jump per output
            for o, lo, hi in interior:
                assert Fraction(lo + hi, 2) == last.start[axis] + o * last.jump[axis], text


@given(rf_networks())
@settings(max_examples=100)
def test_receptive_field_equals_gradient_extent(text: str) -> None:
    check_rf(text)


def test_textbook_receptive_fields() -> None:
    # Two 3×3 convs see 5×5; a stride-2 layer doubles the growth of what follows.
    assert convlens.analyze("input 1x32x32\nconv2d 1 k=3\nconv2d 1 k=3").totals.rf == (5, 5)
    r = convlens.analyze("input 1x32x32\nconv2d 1 k=3 s=2\nconv2d 1 k=3")
    assert r.totals.rf == (3 + (3 - 1) * 2, 3 + (3 - 1) * 2)
    assert r.totals.jump == (2, 2)
    # Dilation 2 turns a 3×3 kernel into a 5×5 field.
    assert convlens.analyze("input 1x32x32\nconv2d 1 k=3 d=2").totals.rf == (5, 5)
    # Pooling counts: conv 3 → pool 2 → conv 3 sees 3 + 1 + 2·2 = 8.
    r = convlens.analyze("input 1x32x32\nconv2d 1 k=3\nmaxpool2d 2\nconv2d 1 k=3")
    assert r.totals.rf == (8, 8)
    # Output 0 reads pooled 0…2 = conv outputs 0…5 = inputs 0…7: centre (0 + 7)/2.
    assert r.totals.start == (Fraction(0 + 7, 2), Fraction(0 + 7, 2))


def test_global_layers_see_the_whole_input() -> None:
    r = convlens.analyze("input 3x20x24\nconv2d 4 k=3\nglobal_avgpool\nflatten\nlinear 2")
    assert r.totals.rf_status == "whole input"
    assert r.totals.rf == (20, 24)


def test_symbolic_receptive_field_matches_numeric() -> None:
    text = "input 1x64x64\nconv2d 1 k=k p=k//2\nmaxpool2d 2\nconv2d 1 k=k p=k//2"
    symbolic = convlens.analyze(text).totals.rf[0]
    for k in (1, 3, 5, 7):
        numeric = convlens.analyze(text, k=k).totals.rf[0]
        assert symbolic.subs(symbol("k"), k) == numeric


def test_downsample_then_upsample_is_periodic() -> None:
    # Jump 2·½ = 1, but outputs alternate between two patterns (measured by gradients:
    # outputs read rows 0–1, 0–3, 2–3, 2–5, …): the widest sees 4, output 0 centres at ½.
    for up in ("conv_transpose2d 1 k=2 s=2", "upsample 2"):
        r = convlens.analyze(f"input 1x32x32\nconv2d 1 k=2 s=2\n{up}\nconv2d 1 k=2")
        assert r.totals.rf == (4, 4) and r.totals.jump == (1, 1)
        assert r.totals.start == (Fraction(0 + 1, 2), Fraction(0 + 1, 2))
        assert r.layers[-1].rf_period == (2, 2)
        check_rf(f"input 1x32x32\nconv2d 1 k=2 s=2\n{up}\nconv2d 1 k=2")


def test_a_non_monotone_map_is_composed_through_every_tap() -> None:
    # A stride-2, dilation-3 transposed conv interleaves its phases: the interval its
    # outputs read does not grow with the position, so the next layer's window ends do
    # not hold its extremes. The gradient method measures 4 (it was reported as 3).
    text = "input 1x60x60\nconv_transpose2d 1 k=3 s=2 d=3\nconv2d 1 k=2"
    assert convlens.analyze(text).totals.rf == (4, 4)
    check_rf(text)
