"""Renderers: every format for every explained operator, well-formed and complete."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convlens import reference
from convlens.reference.render import num

CASES = [
    ("conv2d", dict(x=np.arange(18.0).reshape(2, 3, 3), weight=np.eye(2), bias=0.5, padding=1)),
    ("conv2d", dict(x=np.arange(9.0).reshape(3, 3), weight=np.eye(2), grad_output=np.ones((2, 2)))),
    (
        "conv_transpose2d",
        dict(x=[[1.0, 2.0], [3.0, 4.0]], weight=[[1.0, 2.0], [3.0, 4.0]], stride=2, padding=1),
    ),
    ("conv_transpose2d", dict(x=[[1.0, 2.0]], weight=[[1.0, 2.0]], grad_output=[[1.0, 2.0, 3.0]])),
    (
        "max_pool2d",
        dict(x=np.arange(16.0).reshape(4, 4), kernel_size=2, grad_output=[[1.0, 2.0], [3.0, 4.0]]),
    ),
    ("avg_pool2d", dict(x=np.arange(16.0).reshape(4, 4), kernel_size=3, stride=1, padding=1)),
    ("upsample", dict(x=[[1.0, 2.0]], scale_factor=2, mode="bilinear")),
    ("relu", dict(x=[[-1.0, 2.0]], grad_output=[[1.0, 1.0]])),
    ("global_avg_pool", dict(x=np.arange(4.0).reshape(2, 2))),
]


def worked(name: str, kw: dict) -> reference.Worked:
    kw = dict(kw)
    return reference.run(name, kw.pop("x"), **kw)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_latex_is_balanced_and_escaped(name: str, kw: dict) -> None:
    text = reference.render(worked(name, kw), "latex", check="check: agrees (|d| ≤ 1e-10)")
    for env in ("itemize", "bmatrix"):
        assert text.count(rf"\begin{{{env}}}") == text.count(rf"\end{{{env}}}")
    assert text.count(r"\[") == text.count(r"\]")
    outside_math = re.sub(r"\$[^$]*\$|\\\[.*?\\\]", "", text, flags=re.S)
    assert "_" not in outside_math.replace(r"\_", "")  # max\_pool2d, not max_pool2d
    assert "≤" not in text and "×" not in outside_math
    assert text.count("$") % 2 == 0


@pytest.mark.parametrize(("name", "kw"), CASES)
@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_text_and_markdown_show_the_result(name: str, kw: dict, fmt: str) -> None:
    w = worked(name, kw)
    text = reference.render(w, fmt)
    assert "Result" in text
    first = w.output.reshape(-1)[0]
    assert num(first) in text
    if fmt == "markdown":
        assert text.count("```") % 2 == 0


def test_every_element_is_worked_in_a_small_problem() -> None:
    w = worked(*CASES[0])
    text = reference.render(w, "text")
    for r in range(4):
        for c in range(4):
            assert f"y[{r}, {c}]: window" in text


def test_numbers_are_printed_exactly_when_they_can_be() -> None:
    assert [num(v) for v in (12.0, -0.0, 0.5, 1 / 3, -np.inf)] == [
        "12",
        "0",
        "0.5",
        "0.333333",
        "-∞",
    ]
    assert num(-np.inf, "latex") == r"-\infty"
