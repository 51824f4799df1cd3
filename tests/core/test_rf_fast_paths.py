"""The receptive field's integer fast paths (one span, integer jump) give exactly what
the general, periodic computation gives — and step aside for everything else."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from convlens.core.numbers import symbol
from convlens.core.receptive_field import (
    AxisRF,
    _affine_compose,
    _compose_patterns,
    _union_of_patterns,
    _union_of_spans,
    compose,
    union,
)
from convlens.core.registry import AxisMap


@st.composite
def spans(draw: st.DrawFn, step: int | None = None) -> AxisRF:
    lo = draw(st.integers(-20, 20))
    return AxisRF(
        1,
        draw(st.integers(1, 8)) if step is None else step,
        (lo,),
        (lo + draw(st.integers(0, 40)),),
    )


@st.composite
def windows(draw: st.DrawFn) -> AxisMap:
    """A convolution's or pooling's window: kernel, stride, padding, dilation."""
    k, s = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    p, d = draw(st.integers(0, 3)), draw(st.integers(1, 3))
    return AxisMap(lo=lambda o: o * s - p, hi=lambda o: o * s - p + d * (k - 1), jump=s)


@given(spans(), windows())
def test_composing_one_span_is_the_general_composition(previous: AxisRF, layer: AxisMap) -> None:
    assert compose(previous, layer) == _compose_patterns(previous, layer)


@given(st.integers(1, 8).flatmap(lambda step: st.lists(spans(step), min_size=1, max_size=6)))
def test_the_union_of_spans_is_the_general_union(branches: list[AxisRF]) -> None:
    assert _union_of_spans(branches) is not None
    assert union(branches) == _union_of_patterns(branches)


def test_the_fast_paths_step_aside() -> None:
    k = symbol("k")
    periodic = AxisRF(2, 2, (0, 1), (2, 3))
    symbolic = AxisRF(1, 1, (0,), (k,))
    unread = AxisRF(1, 1, (None,), (None,))
    half = AxisMap(lo=lambda o: o // 2, hi=lambda o: o // 2, jump=Fraction(1, 2))
    window = AxisMap(lo=lambda o: o, hi=lambda o: o + 2, jump=1)
    assert _union_of_spans([AxisRF(1, 1, (0,), (2,)), AxisRF(1, 2, (0,), (2,))]) is None
    assert _union_of_spans([symbolic, symbolic]) is None
    assert _union_of_spans([unread, AxisRF(1, 1, (0,), (2,))]) is None
    assert _union_of_spans([periodic, periodic]) is None
    assert _affine_compose(symbolic, window, 1) is None
    assert _affine_compose(unread, window, 1) is None
    for previous, layer in [(periodic, window), (symbolic, window), (unread, window)]:
        assert compose(previous, layer) == _compose_patterns(previous, layer)
    assert compose(AxisRF(1, 1, (0,), (2,)), half) == _compose_patterns(
        AxisRF(1, 1, (0,), (2,)), half
    )
