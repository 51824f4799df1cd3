"""nn.Linear on inputs of 2, 3 and 4 axes, contiguous or strided views: F.linear folds a
≥ 3-D input into rows with reshape, so a strided one that cannot be viewed (after a
transpose or permute) is copied and backward keeps that copy, not the input. Saved
bytes are held to saved_tensors_hooks in a real training forward, shapes to a real
forward and MACs to FlopCounterMode / 2."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import convlens
from tests.torch.test_parts_products_attention import check

# (N, C, H, W) → the linear's input
LAYOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "flatten": lambda y: y.flatten(1),  # (N, CHW)
    "select": lambda y: y.flatten(2)[:, :, 0],  # (N, C): strided, 2-D: kept as it is
    "tokens": lambda y: y.flatten(2),  # (N, C, HW)
    "tokens.T": lambda y: y.flatten(2).transpose(1, 2),  # (N, HW, C): copied
    "tokens.mT": lambda y: y.flatten(2).mT,
    "tokens[..., 1:]": lambda y: y.flatten(2)[..., 1:],  # strided, but rows are views
    "map": lambda y: y,  # (N, C, H, W), on W
    "permute": lambda y: y.permute(0, 2, 3, 1),  # channels last: copied
    "movedim": lambda y: y.movedim(1, -1),
    "transpose(1, 2)": lambda y: y.transpose(1, 2),  # (N, H, C, W): copied
    "map[..., 1:]": lambda y: y[..., 1:],
}


def copies(layout: str, shape: tuple[int, ...], out: int) -> bool:
    """Whether a real CPU F.linear keeps a tensor that is not its input's storage."""
    t = LAYOUTS[layout](torch.rand(shape))
    weight = torch.rand(out, t.shape[-1], requires_grad=True)
    kept: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda s: kept.append(s) or s, lambda s: s):
        torch.nn.functional.linear(t, weight)
    assert len(kept) == 1  # t needs no gradient: only ∂L/∂W's operand is kept
    return kept[0].untyped_storage().data_ptr() != t.untyped_storage().data_ptr()


class Strided(nn.Module):
    """conv (so the linear's input needs a gradient) → a layout → one or two linears."""

    def __init__(
        self,
        layout: str,
        channels: int,
        h: int,
        w: int,
        out: int,
        bias: bool,
        frozen: bool,
        twice: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 1)
        self.layout = LAYOUTS[layout]
        features = self.layout(torch.zeros(1, channels, h, w)).shape[-1]
        self.fc = nn.Linear(features, out, bias=bias).requires_grad_(not frozen)
        self.fc2 = nn.Linear(features, out, bias=not bias) if twice else None

    def forward(self, x: torch.Tensor) -> object:
        t = self.layout(self.conv(x))
        return self.fc(t) if self.fc2 is None else (self.fc(t), self.fc2(t))


@settings(max_examples=50)
@given(
    st.sampled_from(sorted(LAYOUTS)),
    st.integers(1, 4),
    st.integers(2, 4),
    st.integers(2, 4),
    st.integers(1, 5),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(1, 3),
)
def test_linear_saves_what_autograd_keeps_for_strided_inputs(
    layout: str,
    channels: int,
    h: int,
    w: int,
    out: int,
    bias: bool,
    frozen: bool,
    twice: bool,
    batch: int,
) -> None:
    model = Strided(layout, channels, h, w, out, bias, frozen, twice)
    report = check(model, (batch, 1, h, w))  # saved bytes == saved_tensors_hooks
    rows = [r for r in report.layers if r.kind == "linear"]
    assert all(r.args["copies_input"] is copies(layout, (batch, channels, h, w), out) for r in rows)


def test_a_strided_input_is_copied_once_per_linear() -> None:
    # (2, 12, 4) transposed: each of the two linears keeps its own copy, 2·12·4 floats
    model = Strided("tokens.T", 4, 3, 4, 5, True, False, True).train()
    x = torch.rand(2, 1, 3, 4)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    fc, fc2 = (next(r for r in report.layers if r.name == n) for n in ("fc", "fc2"))
    assert fc.saved_bytes == fc2.saved_bytes == 2 * 12 * 4 * 4
    frozen = Strided("tokens.T", 4, 3, 4, 5, True, True, False)
    row = next(
        r for r in convlens.analyze(frozen, input_size=(2, 1, 3, 4)).layers if r.name == "fc"
    )
    assert row.saved_bytes == 0  # a frozen weight needs no input: no copy is kept


@pytest.mark.parametrize(
    "text, copied",
    [
        ("input 4x3x5\nlinear 6\n", 2 * 4 * 3 * 5 * 4),
        ("input 4x3x5\nlinear 6 copies_input=true\n", 2 * 4 * 3 * 5 * 4),
    ],
)
def test_copies_input_in_a_description(text: str, copied: int) -> None:
    # the input itself (its storage is the input's), or a copy of the same size
    row = convlens.analyze(text, batch=2).layers[-1]
    assert row.saved_bytes == copied
    assert row.args["copies_input"] is ("copies_input" in text)
