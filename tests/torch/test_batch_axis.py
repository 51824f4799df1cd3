"""Results without a batch: a statistic (x.mean()), a split or indexed batch axis, a 3-D
attention broadcast against a 4-D mask. None may vanish or be counted as if it were per
sample: each is a row that counts nothing and says why, and the report is partial and
names it. Axis moves are followed: what runs on a tensor whose batch moved is counted per
sample where a rule can (an activation), and named where none can (a convolution)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import convlens
from convlens.torch.batch_axis import Layout, layout_after_reshape
from tests.torch.saved import saved_bytes


def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


class QueryWithHeads(nn.Module):
    """3-D q (N, L, E) with a 4-D mask (1, N, L, L), or with 4-D k and v (1, N, L, E):
    PyTorch broadcasts the attention to (1, N, L, E), whose axis 0 is not the batch; a
    projection follows. (The CPU kernel refuses the 4-D mask; its meta kernel does not.)"""

    def __init__(self, batch: int, four_d: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)
        self.q = nn.Linear(4, 4)
        self.proj = nn.Linear(4, 3)
        self.four_d = four_d
        self.register_buffer("mask", torch.ones(1, batch, 4, 4, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)  # (N, L=4, 4)
        if self.four_d == "mask":
            a = F.scaled_dot_product_attention(self.q(t), t, t, attn_mask=self.mask)
        else:
            kv = t.unsqueeze(0)  # (1, N, L, 4): the batch axis is axis 1
            a = F.scaled_dot_product_attention(self.q(t), kv, kv)
        return self.proj(a)


@pytest.mark.parametrize("four_d, device", [("mask", "meta"), ("kv", "meta"), ("kv", "cpu")])
def test_attention_that_loses_the_batch_axis_is_named_not_dropped(four_d: str, device: str) -> None:
    model = QueryWithHeads(2, four_d)
    report = convlens.analyze(model, input_size=(2, 1, 2, 2), device=device)
    assert report.totals.unsupported == (
        "scaled_dot_product_attention (no batch axis)",
        "linear (no batch axis)",
    )
    proj = next(r for r in report.layers if r.name == "proj")  # it ran: it has its row
    assert (proj.kind, proj.macs, proj.activation_bytes) == ("opaque", 0, 0)
    assert any("'scaled_dot_product_attention' gives 1×2×4×4" in w for w in report.warnings)
    assert any(
        w.startswith("proj: ")
        and (
            "in module '' (QueryWithHeads) gave 1×2×4×4" in w
            or "needs the batch on axis 0, but its input has it on axis 1" in w
        )
        for w in report.warnings
    )
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.macs == 2 * 4 * 4 + 2 * 4 * 4 * 4  # conv and q: counted exactly
    assert dict(report.network.module_outputs)["proj"] == "1×2×4×3 (no batch axis)"


class Statistic(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv1, self.conv2 = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> object:
        y = self.conv1(x)
        if self.how == "side output":  # e.g. a regulariser the training loop adds
            return self.conv2(y), y.pow(2).mean()
        if self.how == "normalised":
            return self.conv2(y / y.amax())
        return self.conv2(y), y.std()  # a statistic of the whole batch


@pytest.mark.parametrize(
    "how, ops", [("side output", ("mean",)), ("normalised", ("amax", "div")), ("std", ("std",))]
)
def test_a_statistic_of_the_batch_makes_the_report_partial(how: str, ops: tuple) -> None:
    model = Statistic(how)
    x = torch.rand(2, 2, 5, 5)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.unsupported  # never silently complete
    for op in ops:
        assert any(u.startswith(op) for u in report.totals.unsupported)
    stat = next(r for r in report.layers if r.args.get("op") == ops[0])
    assert stat.unsupported == f"{ops[0]} (no batch axis)" and stat.activation_bytes == 0
    assert report.totals.macs == conv_macs(model, x)  # both convolutions still count


LOSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "__getitem__": lambda y: y[0],  # one sample
    "__getitem__ ": lambda y: y[:1],
    "cat": lambda y: torch.cat([y, y]),
    "reshape": lambda y: y.reshape(2, -1),  # splits the batch of 3 over two rows
}


@pytest.mark.parametrize("op", sorted(LOSES))
def test_an_operation_that_takes_the_batch_apart_is_partial(op: str) -> None:
    # batch 3 = channels 3: sizes alone cannot tell the batch axis from another one
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(LOSES[op](self.conv(x)))

    report = convlens.analyze(Model(), input_size=(3, 3, 4, 4))
    assert report.totals.unsupported[0] == f"{op.strip()} (no batch axis)"
    assert report.layers[-1].unsupported == "relu (no batch axis)"  # computed from it


class Moves(nn.Module):
    """conv → an axis move → (the move undone, or not) → conv or ReLU."""

    def __init__(self, channels: int, perm: tuple[int, ...], undo: str) -> None:
        super().__init__()
        self.perm, self.undo = perm, undo
        self.conv1, self.conv2 = nn.Conv2d(1, channels, 1), nn.Conv2d(channels, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        moved = y.permute(*self.perm)
        if self.undo == "permute":  # axis i of moved is axis perm[i] of y
            back = moved.permute(*sorted(range(4), key=lambda i: self.perm[i]))
        elif self.undo == "movedim":
            back = moved.movedim(tuple(range(4)), self.perm)
        else:
            return F.relu(moved)
        return self.conv2(back)


@settings(max_examples=50)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.permutations(range(4)),
    st.sampled_from(["permute", "movedim", "none"]),
)
def test_axis_moves_follow_the_batch_axis(
    batch: int, channels: int, perm: list[int], undo: str
) -> None:
    model = Moves(channels, tuple(perm), undo)
    x = torch.rand(batch, 1, 3, 3)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    # the batch came back to axis 0, or a ReLU runs where it moved: counted exactly
    assert report.totals.unsupported == ()
    assert report.totals.macs == conv_macs(model, x)
    torch.manual_seed(0)
    assert report.totals.saved_activation_bytes == saved_bytes(model.train(), x)
    with torch.no_grad():
        last = [r for r in report.layers if r.kind != "params_only"][-1]
        full = list(model(x).shape)
        axis = perm.index(0) if undo == "none" else 0  # where the batch is in the output
        assert last.output_shape == tuple(full[:axis] + full[axis + 1 :])  # one sample


def test_a_transposed_batch_is_never_taken_for_a_sample() -> None:
    # (N, C, H, W) with N = C = 3: transpose(0, 1) has axis 0 of size N, but it holds
    # the channels; a conv on it counts nothing rather than a wrong per-sample figure
    class Swap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.transpose(0, 1))

    report = convlens.analyze(Swap(), input_size=(3, 3, 4, 4))
    view, conv = report.layers[0], report.layers[1]
    assert (view.kind, view.output_shape) == ("view", (3, 4, 4))  # per sample: C·H·W
    assert (conv.kind, conv.macs) == ("opaque", 0)
    assert report.totals.unsupported == ("conv2d (no batch axis)",)
    assert (
        "'conv2d' in module 'conv' (Conv2d) needs the batch on axis 0, but its input has it "
        "on axis 1" in conv.warnings[0]
    )
    assert dict(report.network.module_outputs)[""] == "3×3×4×4 (no batch axis)"


def test_a_constant_made_with_new_ones_is_no_activation() -> None:
    # x.new_ones(3) only borrows x's dtype and device: a constant, as a buffer would be
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x.new_ones(3).view(1, 3, 1, 1)

    report = convlens.analyze(Scale(), input_size=(2, 3, 4, 4))
    assert "(no batch axis)" not in " ".join(report.totals.unsupported)


class MergeSplit(nn.Module):
    """conv → NHWC → the batch merged with rows (N·H, W, C) → per-row work → split back
    (N, H, W, C) → NCHW → conv, in the ways models write it."""

    def __init__(self, merge: str, work: list[str], split: str) -> None:
        super().__init__()
        self.merge, self.work, self.split = merge, work, split
        self.conv1, self.conv2 = nn.Conv2d(2, 6, 3, padding=1), nn.Conv2d(6, 3, 1)
        self.linear, self.norm = nn.Linear(6, 6), nn.LayerNorm(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        n, h, w, c = y.shape
        z = y.flatten(0, 1) if self.merge == "flatten" else y.reshape(-1, w, c)  # (N·H, W, C)
        for op in self.work:
            if op == "linear":
                z = self.linear(z)
            elif op == "norm":
                z = self.norm(z)
            elif op == "gelu":
                z = F.gelu(z)
            elif op == "softmax":
                z = z.softmax(dim=-1)
            elif op == "scale":
                z = z * 0.5
            else:  # an axis move inside the merged tensor and back
                z = z.transpose(1, 2).contiguous().transpose(1, 2)
        back = z.reshape_as(y) if self.split == "reshape_as" else z.view(n, h, w, c)
        return self.conv2(back.permute(0, 3, 1, 2))


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.sampled_from(["flatten", "reshape"]),
    st.lists(st.sampled_from(["linear", "norm", "gelu", "softmax", "scale", "move"]), max_size=4),
    st.sampled_from(["reshape_as", "view"]),
)
def test_a_batch_merged_with_an_axis_and_split_again_is_counted_per_sample(
    batch: int, merge: str, work: list[str], split: str
) -> None:
    model = MergeSplit(merge, work, split)
    x = torch.rand(batch, 2, 5, 4)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.unsupported == ()
    assert report.totals.macs == conv_macs(model, x)  # the linear on rows counted too
    torch.manual_seed(0)
    assert report.totals.saved_activation_bytes == saved_bytes(model.train(), x)
    ran = [r for r in report.layers if r.kind != "params_only"]  # unused linear, norm
    assert ran[-1].output_shape == (3, 5, 4)


# -- reshapes: where the samples are afterwards, asked of the values themselves -----------
def _reshape_to(draw: st.DrawFn, total: int) -> tuple[int, ...]:
    """A random shape of ``total`` elements (unit axes included)."""
    sizes: list[int] = []
    left = total
    while left > 1 or (not sizes and draw(st.booleans())):
        divisors = [d for d in range(1, left + 1) if left % d == 0]
        size = draw(st.sampled_from(divisors))
        sizes.append(size)
        left //= size
        if len(sizes) > 5:
            sizes.append(left)
            break
    return tuple(sizes) or (1,)


def _holds(values: torch.Tensor, layout: Layout, batch: int) -> bool:
    """Whether sample n's elements are exactly where ``layout`` says: along its axis, index
    i belongs to sample (i // inner) % N, whatever the other indices."""
    size = values.shape[layout.axis]
    if size % (layout.outer * batch):
        return False
    inner = size // (layout.outer * batch)
    sample = (torch.arange(size) // inner) % batch
    shape = [1] * values.dim()
    shape[layout.axis] = size
    return bool((values == sample.view(shape)).all()) and layout.merged == (size != batch)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_reshape_keeps_the_batch_where_the_values_say(data: st.DataObject) -> None:
    """Reshape twice a tensor holding its sample index; after each, the predicted layout
    (axis, merged, outer factor) holds for every element, and none is missed: when no
    layout is predicted, no axis holds the samples in that way."""
    batch = data.draw(st.integers(2, 3), label="batch")
    sample = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=3), label="sample")
    axis = data.draw(st.integers(0, len(sample)), label="axis")
    shape = (*sample[:axis], batch, *sample[axis:])
    marks = [1] * len(shape)
    marks[axis] = batch
    values = torch.arange(batch).view(marks).expand(shape).contiguous()
    layout: Layout | None = Layout(axis)
    for _ in range(2):
        after = _reshape_to(data.draw, values.numel())
        reshaped = values.reshape(after)
        layout = layout_after_reshape(layout, values.shape, after, batch)  # type: ignore[arg-type]
        if layout is None:
            for j, size in enumerate(after):
                for outer in (o for o in range(1, size + 1) if size % (o * batch) == 0):
                    assert not _holds(reshaped, Layout(j, size != batch, outer), batch)
            return
        assert _holds(reshaped, layout, batch), (shape, after, layout)
        values = reshaped
