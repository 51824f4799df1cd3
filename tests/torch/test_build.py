"""build_module makes what the rules describe: a crop at a given offset is that slice."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.api import load_network
from convlens.errors import ConvlensError
from convlens.torch.build import build_module
from tests.core.oracle import gradient_extents


@st.composite
def crops(draw):  # type: ignore[no-untyped-def]
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    oh, ow = draw(st.integers(1, h)), draw(st.integers(1, w))
    offset = None
    if draw(st.booleans()):  # 0 … I − O on each axis; None: centred
        offset = (draw(st.integers(0, h - oh)), draw(st.integers(0, w - ow)))
    return h, w, oh, ow, offset


@settings(max_examples=50)
@given(crops())
def test_built_crop_is_the_slice_at_its_offset(config) -> None:  # type: ignore[no-untyped-def]
    h, w, oh, ow, offset = config
    given_text = "" if offset is None else f" offset=({offset[0]},{offset[1]})"
    text = f"input 2x{h}x{w}\ncrop ({oh},{ow}){given_text}\n"
    top, left = offset if offset is not None else ((h - oh) // 2, (w - ow) // 2)
    x = torch.rand(3, 2, h, w)
    out = build_module(load_network(text))(x)
    assert torch.equal(out, x[..., top : top + oh, left : left + ow])
    row = convlens.analyze(text).layers[-1]
    assert row.output_shape == (2, oh, ow)
    assert row.args["offsets"] == (top, left)
    # the receptive field starts where the module reads: output o sees input t + o
    assert row.start == (top, left) and row.rf == (1, 1)
    net = load_network(f"input 1x{h}x{w}\ncrop ({oh},{ow}){given_text}\n")
    for axis, (start, size) in enumerate(((top, oh), (left, ow))):
        assert gradient_extents(net, axis) == [(o, start + o, start + o) for o in range(size)]


def test_crop_offset_out_of_range_is_refused_and_zero_is_allowed() -> None:
    with pytest.raises(ConvlensError, match="runs past the width 8"):
        convlens.analyze("input 3x8x8\ncrop 4 offset=(0,5)\n")
    row = convlens.analyze("input 3x8x8\ncrop 4 offset=(0,4)\n").layers[-1]
    assert row.args["offsets"] == (0, 4) and row.output_shape == (3, 4, 4)


def test_traced_slice_from_the_top_left_corner_is_a_crop() -> None:
    class Corner(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, :4, 2:6]

    row = convlens.analyze(Corner(), input_size=(2, 3, 8, 8)).layers[-1]
    assert (row.kind, row.args["offsets"], row.output_shape) == ("crop", (0, 2), (3, 4, 4))
