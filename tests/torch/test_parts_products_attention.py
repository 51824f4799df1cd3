"""Parts of an axis (chunk, split, unbind, narrow, x[:, a:b]), products with a weight or a
1-D operand, and masked, causal or dropout attention, traced and held to PyTorch itself:
shapes from a real forward, MACs from FlopCounterMode / 2, saved bytes from
saved_tensors_hooks in a training forward, receptive fields from gradients — and never
a partial report."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import convlens
from convlens.errors import ConvlensError
from convlens.torch.shape_tensor import ShapeTensor
from tests.core.oracle import impulse_extents
from tests.torch.pytorch_truth import check_against_pytorch
from tests.torch.saved import saved_bytes


def flat(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in flat(v)]  # type: ignore[attr-defined]


def check(model: nn.Module, shape: tuple[int, ...], math_macs: bool = False) -> convlens.Report:
    """Not partial; every output shape, the MACs and the saved bytes equal PyTorch's."""
    torch.manual_seed(0)
    report = convlens.analyze(model, input_size=shape)
    assert report.totals.unsupported == ()
    x = torch.rand(shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.math_only = math_macs  # FlopCounterMode does not count the CPU flash kernel
        outs = flat(model.eval()(x))
        model.math_only = False
    produced = [tuple(r.output_shape) for r in report.layers]
    assert all(tuple(o.shape[1:]) in produced for o in outs)
    assert report.totals.macs == counter.get_total_flops() // 2
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.buffers == sum(b.numel() for b in model.buffers())
    torch.manual_seed(0)
    assert report.totals.saved_activation_bytes == saved_bytes(model.train(), x)
    return report


# -- parts of one axis -----------------------------------------------------------------
class Parts(nn.Module):
    """conv → one way of taking parts → ReLU on each part (which keeps its output)."""

    def __init__(self, how: str, dim: int, arg: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.how, self.dim, self.arg = how, dim, arg

    def forward(self, x: torch.Tensor) -> object:
        y = self.conv(x)
        how, dim, arg = self.how, self.dim, self.arg
        if how == "chunk":
            parts = y.chunk(arg, dim)
        elif how == "torch.chunk":
            parts = torch.chunk(y, arg, dim=dim)
        elif how == "split":
            parts = y.split(arg, dim)
        elif how == "torch.split":
            parts = torch.split(y, arg, dim=dim)
        elif how == "unbind":
            parts = y.unbind(dim)
        elif how == "narrow":
            parts = (torch.narrow(y, dim, *arg),)  # type: ignore[misc]
        elif how == "slice":
            key = (slice(None),) * dim + (slice(*arg),)  # type: ignore[misc]
            parts = (y[key],)
        else:  # "index": x[:, i] drops the axis
            parts = (y[(slice(None),) * dim + (arg,)],)
        return tuple(torch.relu(p) for p in parts)


@st.composite
def part_configs(draw):  # type: ignore[no-untyped-def]
    shape = (6, draw(st.integers(2, 7)), draw(st.integers(2, 7)))
    dim = draw(st.integers(1, 3))
    size = shape[dim - 1]
    how = draw(
        st.sampled_from(
            ["chunk", "torch.chunk", "split", "torch.split", "unbind", "narrow", "slice", "index"]
        )
    )
    if how in ("chunk", "torch.chunk"):
        arg: object = draw(st.integers(1, size + 1))
    elif how in ("split", "torch.split"):
        if draw(st.booleans()):
            arg = draw(st.integers(1, size))
        else:
            cut = sorted(draw(st.sets(st.integers(1, size - 1), max_size=3)))
            arg = [b - a for a, b in zip([0, *cut], [*cut, size], strict=True)]
    elif how == "narrow":
        start = draw(st.integers(-size, size - 1))
        arg = (start, draw(st.integers(1, size - start % size)))
    elif how == "slice":
        arg = (draw(st.integers(-size, size - 1)), draw(st.one_of(st.none(), st.integers(1, size))))
    elif how == "index":
        arg = draw(st.integers(-size, size - 1))
    else:
        arg = None
    return how, (dim if draw(st.booleans()) else dim - 4), arg, shape


@settings(max_examples=80)
@given(part_configs())
def test_parts_of_an_axis_match_pytorch(config) -> None:  # type: ignore[no-untyped-def]
    how, dim, arg, shape = config
    model = Parts(how, dim, arg)
    if how == "slice" and not flat(model(torch.rand(1, 2, *shape[1:])))[0].numel():
        return  # an empty slice: nothing to compare
    report = check(model, (2, 2, *shape[1:]))
    kinds = {r.kind for r in report.layers}
    assert kinds <= {"conv2d", "narrow", "crop", "relu"}
    parts = [r for r in report.layers if r.kind in ("narrow", "crop")]
    assert all(r.macs == 0 and r.saved_bytes == 0 for r in parts)


class SpatialPart(nn.Module):
    """conv 3×3 → a part of H or W → conv 3×3, without padding (so nothing is clipped)."""

    def __init__(self, dim: int, start: int, length: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 1, 3)
        self.dim, self.start, self.length = dim, start, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x).narrow(self.dim, self.start, self.length))


@settings(max_examples=50)
@given(st.integers(2, 3), st.integers(0, 6), st.integers(3, 6), st.integers(0, 3))
def test_a_spatial_part_shifts_the_receptive_field_as_gradients_do(
    dim, start, length, slack
) -> None:
    shape = (1, 16 + slack, 16)
    model = SpatialPart(dim, start, length)
    report = convlens.analyze(model, input_size=(1, *shape))
    last = report.layers[-1]
    axis = dim - 2
    rows = impulse_extents(model, shape, axis)
    _, lo, hi = rows[0]
    assert last.rf[axis] == max(h - low + 1 for _, low, h in rows) == 5
    assert last.start[axis] == (lo + hi) / 2 == start + 2
    # the channel axis and the untouched axis keep their map
    assert last.start[1 - axis] == 2 and last.rf[1 - axis] == 5


def test_channel_slice_keeps_the_receptive_field_and_is_a_view() -> None:
    class Half(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)[:, 1:3]

    report = check(Half(), (2, 1, 8, 8))
    row = report.layers[-1]
    assert (row.kind, row.output_shape, row.rf, row.start) == ("narrow", (2, 6, 6), (3, 3), (1, 1))
    assert (
        row.activation_bytes == 2 * 2 * 6 * 6 * 4
        and report.totals.peak_activation_bytes
        == report.layers[0].activation_bytes + 2 * 1 * 8 * 8 * 4
    )  # the view adds nothing


def test_narrow_in_a_description_and_its_errors() -> None:
    report = convlens.analyze("input 8x6x6\nnarrow 1 2 3\nnarrow 3 1 4 keepdim=true\n")
    assert [tuple(r.output_shape) for r in report.layers] == [(3, 6, 6), (3, 6, 4)]
    assert report.layers[-1].start == (0, 1)
    assert convlens.analyze("input 8x6x6\nnarrow 1 2 1 keepdim=false\n").layers[0].output_shape == (
        6,
        6,
    )
    with pytest.raises(ConvlensError, match="runs past its end"):
        convlens.analyze("input 8x6x6\nnarrow 1 6 3\n")
    with pytest.raises(ConvlensError, match="does not exist"):
        convlens.analyze("input 8x6x6\nnarrow 4 0 1\n")
    with pytest.raises(ConvlensError, match="keeps one index"):
        convlens.analyze("input 8x6x6\nnarrow 1 0 2 keepdim=false\n")


# -- products with a weight or a 1-D operand -------------------------------------------
class WeightProduct(nn.Module):
    """conv → a (per-sample) rank-1, 2 or 3 activation → x @ W or W @ x."""

    def __init__(
        self, rank: int, transposed: bool, shape: tuple[int, ...], first: bool, kind: str
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)
        self.rank, self.transposed, self.first = rank, transposed, first
        w = torch.randn(shape)
        if kind == "parameter":
            self.w = nn.Parameter(w)
        elif kind == "frozen":
            self.w = nn.Parameter(w, requires_grad=False)
        elif kind == "buffer":
            self.register_buffer("w", w)
        else:
            self.w = w
        self.oracle = False  # FlopCounterMode does not count mv and dot: see below

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (N, 3, H, W)
        if self.rank == 1:
            return y.flatten(1)
        if self.rank == 2:
            y = y.flatten(2)  # (N, 3, H·W)
            return y.transpose(1, 2) if self.transposed else y
        return y.transpose(2, 3) if self.transposed else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, w = self.activation(x), self.w
        if self.oracle and w.dim() == 1:  # the same product with w as a matrix, which
            if self.first:  # FlopCounterMode counts (mv and dot it does not)
                return torch.matmul(w.unsqueeze(0), a).squeeze(-2)
            return torch.matmul(a, w.unsqueeze(-1)).squeeze(-1)
        return torch.matmul(w, a) if self.first else a @ w


@st.composite
def product_configs(draw):  # type: ignore[no-untyped-def]
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rank = draw(st.integers(1, 3))
    transposed = rank > 1 and draw(st.booleans())
    sample = {1: (3 * h * w,), 2: (3, h * w), 3: (3, h, w)}[rank]
    if transposed:
        sample = (*sample[:-2], sample[-1], sample[-2])
    first = rank >= 2 and draw(st.booleans())
    out = draw(st.integers(1, 4))
    wrank = draw(st.integers(1, 2))
    # W (m, k) @ x (…, k, n), or x (…, n, k) @ W (k, m)
    shape = (out, sample[-2])[-wrank:] if first else (sample[-1], out)[:wrank]
    kind = draw(st.sampled_from(["parameter", "parameter", "frozen", "buffer", "constant"]))
    return rank, transposed, tuple(shape), first, kind, (h, w)


@settings(max_examples=100)
@given(product_configs())
def test_products_with_a_weight_match_pytorch(config) -> None:  # type: ignore[no-untyped-def]
    rank, transposed, shape, first, kind, (h, w) = config
    model = WeightProduct(rank, transposed, shape, first, kind)
    x = torch.rand(2, 1, h, w)
    model.oracle = True
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        truth = model(x)
    model.oracle = False
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.unsupported == ()
    row = next(r for r in report.layers if r.kind == "matmul")
    assert tuple(row.output_shape) == tuple(truth.shape[1:])
    assert report.totals.macs == counter.get_total_flops() // 2
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.buffers == sum(b.numel() for b in model.buffers())
    torch.manual_seed(0)
    assert report.totals.saved_activation_bytes == saved_bytes(model.train(), x)


def test_matrix_vector_products_are_counted_although_flop_counter_skips_them() -> None:
    model = WeightProduct(3, False, (4,), False, "parameter")  # (3, 5, 4) @ (4,) → mv
    x = torch.rand(2, 1, 5, 4)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() == 2 * 2 * 3 * 5 * 4  # only the 1×1 conv: mv is 0
    report = convlens.analyze(model, input_size=tuple(x.shape))
    row = next(r for r in report.layers if r.kind == "matmul")
    assert (row.output_shape, row.macs, row.params) == ((3, 5), 2 * 3 * 5 * 4, 4)


def test_matmul_in_a_description_and_its_errors() -> None:
    report = convlens.analyze("input 3x5x4\nmatmul weight=(4,6)\n", batch=2)
    row = report.layers[0]
    assert (row.output_shape, row.macs, row.params) == ((3, 5, 6), 2 * 3 * 5 * 4 * 6, 24)
    vec = convlens.analyze("input 3x5x4\nmatmul weight=(5,) weight_first=true weight_kind=buffer\n")
    assert (vec.layers[0].output_shape, vec.totals.buffers) == ((3, 4), 5)
    with pytest.raises(ConvlensError, match=r"\(…, n, k\) @ \(…, k, m\)"):
        convlens.analyze("input 3x5x4\nmatmul weight=(5,6)\n")
    with pytest.raises(ConvlensError, match="reaches the batch axis"):
        convlens.analyze("input 3x5x4\nflatten\nmatmul weight=(5,60) weight_first=true\n")
    with pytest.raises(ConvlensError, match="a vector or a matrix"):
        convlens.analyze("input 3x5x4\nmatmul weight=(2,4,6)\n")
    with pytest.raises(ConvlensError, match="needs the names of the outputs to join"):
        convlens.analyze("input 3x5x4\nmatmul\n")


# -- attention with a mask, causal, with dropout ---------------------------------------
class MaskedAttention(nn.Module):
    """conv → tokens → q, k, v (heads split and made contiguous, or not) → sdpa."""

    def __init__(
        self,
        heads: int,
        e: int,
        ev: int,
        mask: str,
        on_buffer: bool,
        causal: bool,
        dropout: float,
        flash: bool,
        length: int,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)
        self.heads, self.e, self.ev = heads, e, ev
        self.q, self.k = nn.Linear(4, max(heads, 1) * e), nn.Linear(4, max(heads, 1) * e)
        self.v = nn.Linear(4, max(heads, 1) * ev)
        self.causal, self.dropout, self.flash = causal, dropout, flash
        self.math_only = False  # for FlopCounterMode, which does not count the flash kernel
        shape = {
            "none": None,
            "bool": (length, length),
            "float": (length, length),
            "float4d": (1, 1, length, length),
            "bool_row": (1, length),
        }[mask]
        value = None
        if shape is not None:
            value = torch.rand(shape) > 0.3 if mask.startswith("bool") else torch.randn(shape)
            if value.dtype == torch.bool:
                value[..., 0] = True  # a fully masked row gives NaN
        if on_buffer:
            self.register_buffer("mask", value)
        else:
            self.mask = value

    def split(self, t: torch.Tensor, size: int) -> torch.Tensor:
        if self.heads == 0:  # 3-D q, k, v: no heads axis
            return t
        n, length, _ = t.shape
        return t.view(n, length, self.heads, size).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)  # (N, L, 4): each linear copies it
        q, k = self.split(self.q(t), self.e), self.split(self.k(t), self.e)
        v = self.split(self.v(t), self.ev)
        flash = self.flash and not self.math_only
        with sdpa_kernel([SDPBackend.MATH] + ([SDPBackend.FLASH_ATTENTION] if flash else [])):
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=self.mask, dropout_p=self.dropout, is_causal=self.causal
            )
        return a


@st.composite
def attention_configs(draw):  # type: ignore[no-untyped-def]
    heads = draw(st.integers(0, 2))
    e = draw(st.integers(1, 4))
    ev = e if draw(st.booleans()) else draw(st.integers(1, 4))
    mask = draw(
        st.sampled_from(
            ["none", "none", "bool", "float", "bool_row"] + (["float4d"] if heads else [])
        )
    )  # 4-D: needs 4-D q
    causal = mask == "none" and draw(st.booleans())
    dropout = draw(st.sampled_from([0.0, 0.0, 0.25]))
    return (
        heads,
        e,
        ev,
        mask,
        draw(st.booleans()),
        causal,
        dropout,
        draw(st.booleans()),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
    )


@settings(max_examples=100)
@given(attention_configs())
def test_masked_causal_and_dropout_attention_match_pytorch(config) -> None:  # type: ignore
    heads, e, ev, mask, on_buffer, causal, dropout, flash, h, w = config
    model = MaskedAttention(heads, e, ev, mask, on_buffer, causal, dropout, flash, h * w)
    report = check(model, (2, 1, h, w), math_macs=True)
    row = next(r for r in report.layers if r.kind == "attention")
    length, n = h * w, max(heads, 1)
    assert row.macs == 2 * n * length * length * (e + ev)
    assert any("CPU " in warning and "attention kernel" in warning for warning in row.warnings)


QKV = "input 2x4x8\nidentity as k\nidentity as v\nfrom input\n"


def test_attention_in_a_description_and_its_errors() -> None:
    row = convlens.analyze(QKV + "attention k v is_causal=true dropout_p=0.1\n", batch=2).layers[-1]
    assert (row.output_shape, row.macs) == ((2, 4, 8), 2 * 2 * 4 * 4 * (8 + 8))
    assert row.args["kernel"] == "math"  # dropout: PyTorch's CPU flash kernel refuses it
    with pytest.raises(ConvlensError, match="refuses them"):
        convlens.analyze(QKV + "attention k v attn_mask=(4,4) is_causal=true\n")
    with pytest.raises(ConvlensError, match="does not broadcast"):
        convlens.analyze(QKV + "attention k v attn_mask=(3,4)\n")
    with pytest.raises(ConvlensError, match=r"dropout_p must be in \[0, 1\)"):
        convlens.analyze(QKV + "attention k v dropout_p=1.5\n")


# -- which kernel: q, k, v strided along their last axis ----------------------------------
class StridedAttention(nn.Module):
    """Heads split from a conv's channels without a copy, (N, C, L) → (N, h, L, E): the
    last axis then has stride L, and PyTorch's CPU flash kernel refuses such q, k or v."""

    def __init__(self, strided: tuple[bool, bool, bool]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.strided = strided
        self.choice: int | None = None  # what PyTorch's dispatcher picked in a real run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2)  # (N, 8, L)
        heads = t.unflatten(1, (2, 4))  # (N, 2, 4, L)
        q, k, v = (
            heads.transpose(-1, -2) if strided else heads.transpose(-1, -2).contiguous()
            for strided in self.strided
        )
        if not isinstance(x, ShapeTensor):
            self.choice = int(torch._fused_sdp_choice(q, k, v))
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("strided", list(itertools.product([False, True], repeat=3)))
def test_the_kernel_is_the_one_pytorch_picks_for_strided_operands(
    strided: tuple[bool, bool, bool],
) -> None:
    model = StridedAttention(strided)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        model(x)
    picked = {0: "math", 1: "flash"}[model.choice or 0]
    assert picked == ("math" if any(strided) else "flash")
    report = check_against_pytorch(model, x)  # saved bytes as autograd keeps them
    (row,) = [r for r in report.layers if r.kind == "attention"]
    assert row.args["kernel"] == picked
