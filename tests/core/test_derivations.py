"""The working shown must add up: every step evaluates to its result, and the final
step of each quantity equals the number the report prints. Plus closed forms and
published tables (Dumoulin & Visin 2016; LeCun et al. 1998)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import convlens
from convlens.core.numbers import symbol
from convlens.explain.derivation import derivation, render_sections
from tests.core.strategies import layers_of
from tests.core.test_rules_vs_torch import chains

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

_UNICODE = {"⌊": "floor(", "⌋": ")", "⌈": "ceiling(", "⌉": ")", "·": "*", "×": "*", "−": "-"}


def evaluate(text: str) -> sympy.Expr:
    for old, new in _UNICODE.items():
        text = text.replace(old, new)
    names = {
        n: symbol(n) for n in re.findall(r"[A-Za-z_]\w*", text) if n not in ("floor", "ceiling")
    }
    return sympy.sympify(text, locals={**names, "floor": sympy.floor, "ceiling": sympy.ceiling})


SPATIAL_AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def check_steps(text: str, **symbols: int) -> None:
    try:
        report = convlens.analyze(text, **symbols)
    except convlens.errors.SpecError:
        reject()  # a refused configuration has no steps; test_rules_vs_torch checks refusals
    for record in report.layers:
        finals: dict[str, object] = {}
        for step in record.steps:
            value = evaluate(step.substituted)
            assert sympy.simplify(value - sympy.sympify(step.result)) == 0, (text, step)
            finals[step.quantity] = step.result
        if "parameters" in finals:
            assert finals["parameters"] == record.params
        if "multiply-accumulates" in finals:
            assert finals["multiply-accumulates"] == record.macs
        # the spatial axes of a signal, an image or a volume, as the steps name them
        axes = SPATIAL_AXES.get(len(record.output_shape) - 1, ())
        for i, axis in enumerate(axes):
            if f"output {axis}" in finals:
                assert finals[f"output {axis}"] == record.output_shape[1 + i], (text, axis)
            if f"receptive field {axis}" in finals:
                assert finals[f"receptive field {axis}"] == record.rf[i], (text, axis)
    for step in report.memory_steps:
        assert sympy.simplify(evaluate(step.substituted) - step.result) == 0


@given(
    st.one_of(
        layers_of("conv2d"),
        layers_of("conv_transpose2d"),
        layers_of("maxpool2d", "avgpool2d"),
        chains(),
        layers_of(),
    )
)
@settings(max_examples=150)
def test_every_step_adds_up(text: str) -> None:
    check_steps(text)


def test_symbolic_steps_add_up() -> None:
    check_steps((EXAMPLES / "colour_cnn.cnn").read_text())


def test_explain_text_shows_formula_numbers_result() -> None:
    text = render_sections(derivation(convlens.analyze(EXAMPLES / "three_conv.cnn"), 1, "shape"))
    assert "⌊(128 + 2·2 − 1·(5 − 1) − 1)/2⌋ + 1 = 64" in text
    latex = render_sections(
        derivation(convlens.analyze(EXAMPLES / "three_conv.cnn"), 1, "params"), "latex"
    )
    assert r"\cdot" in latex and "4864" in latex


COLOUR = (EXAMPLES / "colour_cnn.cnn").read_text()


@pytest.mark.parametrize(
    "values",
    [
        dict(k=3, NF=32, NC=24),
        dict(k=5, NF=8, NC=10),
        dict(k=1, NF=3, NC=2),
        dict(k=7, NF=16, NC=32),
    ],
)
def test_closed_forms_equal_numeric_analysis(values: dict[str, int]) -> None:
    symbolic = convlens.analyze(COLOUR)
    numeric = convlens.analyze(COLOUR, **values)
    subs = {symbol(k): v for k, v in values.items()}
    for name in (
        "params",
        "macs",
        "flops",
        "buffers",
        "peak_activation_bytes",
        "saved_activation_bytes",
        "training_bytes",
    ):
        closed = sympy.sympify(getattr(symbolic.totals, name)).subs(subs)
        assert closed == getattr(numeric.totals, name), name
    for a, b in zip(symbolic.layers, numeric.layers, strict=True):
        assert tuple(sympy.sympify(d).subs(subs) for d in a.output_shape) == b.output_shape
        if a.rf is None:  # after upsampling with symbolic padding: said, not guessed
            assert "give the sizes with --set" in a.rf_reason
            continue
        assert sympy.sympify(a.rf[0]).subs(subs) == b.rf[0]


def test_colour_cnn_published_count() -> None:
    # The course's figure: kernel 3, 32 filters, 24 colours, grayscale input.
    assert convlens.analyze(COLOUR, k=3, NF=32, NC=24).totals.params == 86_784


def out(text: str) -> tuple:
    return convlens.analyze(text).layers[-1].output_shape[1:]


# Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (2016).
@given(
    i=st.integers(1, 40),
    k=st.integers(1, 9),
    s=st.integers(1, 4),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
    a=st.integers(0, 3),
)
@settings(max_examples=200)
def test_dumoulin_visin_relationships(i: int, k: int, s: int, p: int, d: int, a: int) -> None:
    if i >= k:  # Relationship 1: no padding, unit stride
        assert out(f"input 1x{i}x{i}\nconv2d 1 k={k}") == (i - k + 1,) * 2
    if i + 2 * p >= k:  # Relationships 2 and 6
        assert out(f"input 1x{i}x{i}\nconv2d 1 k={k} p={p}") == ((i - k) + 2 * p + 1,) * 2
        assert (
            out(f"input 1x{i}x{i}\nconv2d 1 k={k} p={p} s={s}") == ((i + 2 * p - k) // s + 1,) * 2
        )
    if k % 2 == 1:  # Relationship 3: half padding keeps the size
        assert out(f"input 1x{i}x{i}\nconv2d 1 k={k} p={k // 2}") == (i, i)
    # Relationship 4: full padding grows by k − 1
    assert out(f"input 1x{i}x{i}\nconv2d 1 k={k} p={k - 1}") == (i + k - 1,) * 2
    if i >= k:  # Relationship 5
        assert out(f"input 1x{i}x{i}\nconv2d 1 k={k} s={s}") == ((i - k) // s + 1,) * 2
    # Relationships 8–13: transposed convolutions
    assert out(f"input 1x{i}x{i}\nconv_transpose2d 1 k={k}") == (i + k - 1,) * 2
    assert out(f"input 1x{i}x{i}\nconv_transpose2d 1 k={k} s={s}") == (s * (i - 1) + k,) * 2
    if s * (i - 1) + k - 2 * p >= 1:
        assert (
            out(f"input 1x{i}x{i}\nconv_transpose2d 1 k={k} s={s} p={p}")
            == (s * (i - 1) + k - 2 * p,) * 2
        )
    if a < s and s * (i - 1) + a + k - 2 * p >= 1:
        assert (
            out(f"input 1x{i}x{i}\nconv_transpose2d 1 k={k} s={s} p={p} output_padding={a}")
            == (s * (i - 1) + a + k - 2 * p,) * 2
        )
    # Relationship 15: dilation
    if i + 2 * p >= k + (k - 1) * (d - 1):
        assert (
            out(f"input 1x{i}x{i}\nconv2d 1 k={k} p={p} s={s} d={d}")
            == ((i + 2 * p - k - (k - 1) * (d - 1)) // s + 1,) * 2
        )
    if i >= k:  # Relationship 7: pooling
        assert out(f"input 1x{i}x{i}\nmaxpool2d {k} s={s}") == ((i - k) // s + 1,) * 2


def test_dumoulin_visin_figures() -> None:
    assert out("input 1x4x4\nconv2d 1 k=3") == (2, 2)  # figure 2.1
    assert out("input 1x5x5\nconv2d 1 k=4 p=2") == (6, 6)  # figure 2.2
    assert out("input 1x5x5\nconv2d 1 k=3 p=1") == (5, 5)  # figure 2.3, half padding
    assert out("input 1x5x5\nconv2d 1 k=3 p=2") == (7, 7)  # figure 2.4, full padding
    assert out("input 1x5x5\nconv2d 1 k=3 s=2") == (2, 2)  # figure 2.5
    assert out("input 1x5x5\nconv2d 1 k=3 s=2 p=1") == (3, 3)  # figure 2.6
    assert out("input 1x6x6\nconv2d 1 k=3 s=2 p=1") == (3, 3)  # figure 2.7
    assert out("input 1x7x7\nconv2d 1 k=3 d=2") == (3, 3)  # figure 5.1
    assert out("input 1x2x2\nconv_transpose2d 1 k=3") == (4, 4)  # figure 4.1
    assert out("input 1x2x2\nconv_transpose2d 1 k=3 s=2") == (5, 5)  # figure 4.5


def test_lenet5_layers() -> None:
    c1 = convlens.analyze("input 1x32x32\nconv2d 6 k=5").layers[0]
    assert c1.params == 6 * (5 * 5 + 1) == 156
    assert c1.connections == 28 * 28 * 6 * (5 * 5 + 1) == 122_304
    c5 = convlens.analyze("input 16x5x5\nconv2d 120 k=5").layers[0]
    assert c5.params == c5.connections == 120 * (16 * 25 + 1) == 48_120
    f6 = convlens.analyze("input 120x1x1\nflatten\nlinear 84").layers[-1]
    assert f6.params == f6.connections == 84 * (120 + 1) == 10_164
