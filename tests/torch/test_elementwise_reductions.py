"""Arithmetic with a tensor the model holds (``tensor_op``), sums and means over axes
(``reduce``) and convolutions with a computed weight, traced and held to PyTorch: shapes
from a real forward, MACs from FlopCounterMode / 2, parameters and buffers from numel,
saved bytes from saved_tensors_hooks in a training forward — and never a partial report.
"""

from __future__ import annotations

import operator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import convlens
from convlens.api import load_network
from convlens.torch.build import build_module
from tests.torch.saved import saved_bytes
from tests.torch.test_parts_products_attention import check

OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
IN_PLACE = {
    "add": operator.iadd,
    "sub": operator.isub,
    "mul": operator.imul,
    "div": operator.itruediv,
}


class WithTensor(nn.Module):
    """conv → y ∘ w (or w ∘ y) with w a parameter, frozen parameter, buffer or constant,
    held in its own shape or as a flat tensor used through ``.view``; ``new_axis``: the
    RBF pattern, y.flatten(1).unsqueeze(1) ∘ w with w of shape (K, F) or (1, K, F)."""

    def __init__(
        self,
        op: str,
        form: str,
        kind: str,
        shape: tuple[int, ...],
        first: bool,
        as_view: bool,
        new_axis: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.op, self.form, self.first, self.shape = op, form, first, shape
        self.new_axis, self.as_view = new_axis, as_view and kind != "constant"
        value = torch.rand(shape) + 0.5  # away from 0: a divisor
        value = value.flatten().clone() if self.as_view else value  # its own storage
        if kind in ("parameter", "frozen"):
            self.w = nn.Parameter(value, requires_grad=kind == "parameter")
        elif kind == "buffer":
            self.register_buffer("w", value)
        else:
            self.c = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.new_axis:
            y = y.flatten(1).unsqueeze(1)  # (N, 1, F)
        w = self.w.view(self.shape) if self.as_view else getattr(self, "w", None)
        w = self.c if w is None else w
        a, b = (w, y) if self.first else (y, w)
        if self.form == "operator":
            return OPERATORS[self.op](a, b)
        if self.form == "torch":
            return getattr(torch, self.op)(a, b)
        if self.form == "method":
            return getattr(a, self.op)(b) if not self.first else OPERATORS[self.op](a, b)
        if self.form == "in place":  # y.mul_(w)
            return getattr(y, self.op + "_")(w)
        return IN_PLACE[self.op](y, w)  # y *= w


@st.composite
def tensor_configs(draw):  # type: ignore[no-untyped-def]
    op = draw(st.sampled_from(sorted(OPERATORS)))
    form = draw(st.sampled_from(["operator", "torch", "method", "in place", "augmented"]))
    kind = draw(st.sampled_from(["parameter", "frozen", "buffer", "constant"]))
    new_axis = draw(st.booleans())
    h, w = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    if new_axis:  # (N, 1, F) ∘ (K, F) or (1, K, F)
        features = 4 * h * w
        shape: tuple[int, ...] = (draw(st.integers(1, 4)), features)
        shape = (1, *shape) if draw(st.booleans()) else shape
    else:  # (N, 4, H, W) ∘ a shape that broadcasts against it, batch axis left alone
        full = (4, h, w)
        rank = draw(st.integers(0, 4))
        shape = tuple(draw(st.sampled_from([1, d])) for d in full[3 - min(rank, 3) :])
        shape = (1, *shape) if rank == 4 else shape
    in_place = form in ("in place", "augmented")
    first = not in_place and not new_axis and draw(st.booleans())
    if in_place and new_axis:  # y would have to grow
        form = "operator"
    return op, form, kind, shape, first, draw(st.booleans()), new_axis, (h, w)


@settings(max_examples=60, deadline=None)
@given(tensor_configs())
def test_arithmetic_with_a_model_tensor_matches_pytorch(config) -> None:  # type: ignore[no-untyped-def]
    op, form, kind, shape, first, as_view, new_axis, (h, w) = config
    model = WithTensor(op, form, kind, shape, first, as_view, new_axis)
    report = check(model, (2, 2, h, w))
    rows = [r for r in report.layers if r.kind == "tensor_op"]
    assert len(rows) == 1
    row = rows[0]
    assert row.args["op"] == op and row.args["weight_first"] == first
    assert row.args["weight_kind"] == {"frozen": "parameter"}.get(kind, kind)
    out = model.eval()(torch.rand(2, 2, h, w))
    assert row.output_shape == tuple(out.shape[1:])
    assert row.other_flops == out.numel()  # one operation per output element
    assert row.params == (0 if kind in ("buffer", "constant") else len(torch.rand(shape).flatten()))


class Reduction(nn.Module):
    def __init__(
        self, op: str, form: str, dims: int | tuple[int, ...], keepdim: bool, then_relu: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.op, self.form, self.dims, self.keepdim = op, form, dims, keepdim
        self.then_relu = then_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.conv(x))
        if self.form == "method":
            z = getattr(y, self.op)(self.dims, keepdim=self.keepdim)
        else:
            z = getattr(torch, self.op)(y, dim=self.dims, keepdim=self.keepdim)
        return torch.relu(z) if self.then_relu else z


@st.composite
def reduction_configs(draw):  # type: ignore[no-untyped-def]
    axes = sorted(draw(st.sets(st.integers(1, 3), min_size=1, max_size=3)))
    axes = [a - 4 if draw(st.booleans()) else a for a in axes]  # negative axes too
    dims: int | tuple[int, ...] = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return (
        draw(st.sampled_from(["sum", "mean"])),
        draw(st.sampled_from(["method", "torch"])),
        dims,
        draw(st.booleans()),
        draw(st.booleans()),
        (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
    )


@settings(max_examples=50, deadline=None)
@given(reduction_configs())
def test_sums_and_means_over_axes_match_pytorch(config) -> None:  # type: ignore[no-untyped-def]
    op, form, dims, keepdim, then_relu, (h, w) = config
    model = Reduction(op, form, dims, keepdim, then_relu)
    report = check(model, (2, 2, h, w))
    rows = [r for r in report.layers if r.kind in ("reduce", "global_avgpool")]
    assert len(rows) == 1
    row, inputs = rows[0], 2 * 3 * h * w
    out = model.eval()(torch.rand(2, 2, h, w))
    assert row.output_shape == tuple(out.shape[1:])
    assert row.saved_bytes == 0
    if row.kind == "reduce":  # sum: K − 1 additions per output; mean: and one division
        assert row.other_flops == (inputs if op == "mean" else inputs - out.numel())


class ComputedKernel(nn.Module):
    """A convolution or linear layer whose weight the forward computes from parameters
    (LeNet-5's C3 pattern: a dense kernel scattered from the connected ones) or that is a
    constant tensor; ``needs_input_grad`` puts a trainable layer in front."""

    def __init__(self, layer: str, how: str, needs_input_grad: bool, bias: bool) -> None:
        super().__init__()
        self.layer, self.how = layer, how
        self.pre = nn.Conv2d(2, 2, 1) if needs_input_grad else nn.Identity()
        shape = (
            (3, 2, 3, 3)
            if layer == "conv2d"
            else (5, 2 * 6 * 6)
            if layer == "linear"
            else (2, 3, 3, 3)
        )
        self.weight = nn.Parameter(torch.rand(shape)) if how == "computed" else None
        self.constant = torch.rand(shape)
        out = shape[1] if layer == "conv_transpose2d" else shape[0]
        self.bias = nn.Parameter(torch.rand(out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        w = self.weight * 2 if self.how == "computed" else self.constant
        if self.layer == "conv2d":
            return F.conv2d(x, w, self.bias)
        if self.layer == "conv_transpose2d":
            return F.conv_transpose2d(x, w, self.bias, stride=2)
        return F.linear(x.flatten(1), w, self.bias)


@pytest.mark.parametrize("layer", ["conv2d", "conv_transpose2d", "linear"])
@pytest.mark.parametrize("how", ["computed", "constant"])
@pytest.mark.parametrize("needs_input_grad", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_computed_or_constant_weights_are_kept_as_autograd_keeps_them(
    layer: str, how: str, needs_input_grad: bool, bias: bool
) -> None:
    model = ComputedKernel(layer, how, needs_input_grad, bias)
    if (layer, how, bias) == ("linear", "constant", True):
        # A known limit (docs/torch.md): the trace runs without autograd, so a constant
        # F.linear weight beside a trainable bias is taken as computed from parameters and
        # the input is counted as kept for its gradient. Fails once that is fixed.
        with pytest.raises(AssertionError):
            check(model, (2, 2, 6, 6))
        return
    report = check(model, (2, 2, 6, 6))
    kept = [r.args["derived_weight"] for r in report.layers if r.kind == layer]
    assert kept[-1] and not any(kept[:-1])  # ``pre`` holds its own weight


def test_the_lenet5_rbf_pattern_row_by_row() -> None:
    """y = Σ_j (x_j − w_ij)²: a (10, 84) buffer broadcast to a new axis, squared, summed."""

    class RBF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 84)
            self.register_buffer("prototypes", torch.randn(10, 84))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            diff = self.fc(x.flatten(1)).unsqueeze(1) - self.prototypes.unsqueeze(0)
            return (diff * diff).sum(-1)

    report = check(RBF(), (3, 3, 2, 2))
    rows = {r.kind: r for r in report.layers}
    assert rows["tensor_op"].output_shape == (10, 84) and rows["tensor_op"].buffers == 840
    assert rows["tensor_op"].saved_bytes == 0  # x − w keeps nothing
    assert rows["mul"].saved_bytes == 3 * 10 * 84 * 4  # diff, once for both factors
    assert rows["reduce"].output_shape == (10,)
    assert rows["reduce"].other_flops == 3 * 10 * (84 - 1)


@settings(max_examples=30, deadline=None)
@given(
    op=st.sampled_from(sorted(OPERATORS)),
    kind=st.sampled_from(["parameter", "buffer", "constant"]),
    first=st.booleans(),
    rank=st.integers(1, 4),
    reduce_op=st.sampled_from(["sum", "mean"]),
    dims=st.sampled_from(["1", "2", "(1, 3)", "(2, 3)", "(1, 2, 3)"]),
    keepdim=st.booleans(),
)
def test_a_description_and_its_module_agree(
    op, kind, first, rank, reduce_op, dims, keepdim
) -> None:  # type: ignore[no-untyped-def]
    """The description language has both kinds; the module built from it is traced to the
    same totals, and autograd keeps what the description says."""
    shape = ("(1, 4, 1, 1)", "(4, 1, 1)", "(1, 5)", "(5,)")[4 - rank]
    text = (
        f"input 2x5x5\nconv2d 4 k=1\ntensor_op {op} {shape} weight_kind={kind} "
        f"weight_first={str(first).lower()}\nreduce {reduce_op} {dims} "
        f"keepdim={str(keepdim).lower()}\n"
    )
    described = convlens.analyze(load_network(text), batch=2)
    torch.manual_seed(0)
    module = build_module(load_network(text)).train()
    traced = convlens.analyze(module, input_size=(2, 2, 5, 5))
    for field in (
        "params",
        "buffers",
        "macs",
        "flops",
        "saved_activation_bytes",
        "activation_bytes",
    ):
        assert getattr(described.totals, field) == getattr(traced.totals, field), field
    assert described.totals.saved_activation_bytes == saved_bytes(module, torch.rand(2, 2, 5, 5))
