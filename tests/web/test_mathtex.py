"""Derivation steps as LaTeX: names as subscripts, values bracketed as in the text."""

from __future__ import annotations

from fractions import Fraction

import pytest

import convlens
from convlens.core.numbers import symbol
from convlens.web.mathtex import name_latex, step_latex, value_latex


@pytest.mark.parametrize(
    ("name", "latex"),
    [
        ("H_out", r"H_{\mathrm{out}}"),
        ("K_h", "K_{h}"),
        ("C0", "C_{0}"),
        ("FLOPs", r"\mathrm{FLOPs}"),
        ("P_lo", r"P_{\mathrm{lo}}"),
        ("N", "N"),
        ("a_b_c", r"\mathrm{a\_b\_c}"),
    ],
)
def test_names(name: str, latex: str) -> None:
    assert name_latex(name) == latex


def test_values_are_bracketed_where_the_text_brackets_them() -> None:
    k = symbol("k")
    assert value_latex(-3, operand=True) == "(-3)" and value_latex(-3) == "-3"
    assert value_latex(Fraction(-1, 2), operand=True) == r"\left(-\frac{1}{2}\right)"
    assert value_latex(k, operand=True) == "k"
    assert value_latex(k**2 + 1, operand=True) == r"\left(k^{2} + 1\right)"
    assert value_latex((3, k)) == r"\left(3, k\right)"


def test_a_step_is_symbol_formula_numbers_result() -> None:
    report = convlens.analyze("input 3x32x32\nconv2d 16 k=3 s=2 p=1\n")
    shape, _, params, macs = report.layers[0].steps[:4]
    assert step_latex(shape) == (
        r"H_{\mathrm{out}} = \left\lfloor (I + 2 \cdot P - D \cdot (K - 1) - 1)/S\right\rfloor "
        r" + 1 = \left\lfloor (32 + 2 \cdot 1 - 1 \cdot (3 - 1) - 1)/2\right\rfloor  + 1 = 16"
    )
    assert step_latex(params).endswith(r"= 16 \cdot (3/1) \cdot 3 \cdot 3 + 16 = 448")
    # A result equal to its numbers is not repeated, as in the text.
    norm_steps = convlens.analyze("input 3x32x32\nbatchnorm2d\n").layers[0].steps
    assert all(s.text.count(" = ") == step_latex(s).count(" = ") for s in norm_steps)
    assert macs.quantity == "multiply-accumulates"
