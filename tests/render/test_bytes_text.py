"""Byte figures (issue 15): the exact count, then the largest binary unit the figure
reaches, up to YiB; past 1,024 YiB a power of ten instead of a long count of YiB."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convlens.render.columns import bytes_text

YIB = 1024**8
UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0 B"),
        (1023, "1,023 B"),
        (1024, "1,024 B (1.00 KiB)"),
        (3 * 1024**3, "3,221,225,472 B (3.00 GiB)"),
        (5 * 1024**4, "5,497,558,138,880 B (5.00 TiB)"),
        (2 * 1024**5, "2,251,799,813,685,248 B (2.00 PiB)"),
        (YIB, f"{YIB:,} B (1.00 YiB)"),
        (1024 * YIB, f"{1024 * YIB:,} B (1.24e+27 B)"),
    ],
)
def test_bytes_text_by_hand(value: int, expected: str) -> None:
    assert bytes_text(value) == expected


@given(st.integers(min_value=0, max_value=2**100))
def test_the_readable_form_is_the_largest_unit_reached(value: int) -> None:
    text = bytes_text(value)
    exact, _, readable = text.partition(" B")
    assert int(exact.replace(",", "")) == value
    if value < 1024:
        assert readable == ""
        return
    number, unit = re.fullmatch(r" \((\S+) (\S+)\)", readable).groups()  # type: ignore[union-attr]
    if value >= 1024 * YIB:
        assert unit == "B" and "e+" in number
        assert float(number) == pytest.approx(value, rel=5e-3)
        return
    power = UNITS.index(unit) + 1
    assert 1024**power <= value < 1024 ** (power + 1)  # the largest unit it reaches
    assert float(number) == pytest.approx(value / 1024**power, abs=5e-3)
