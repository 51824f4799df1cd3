"""``unary``: a plain function of each element (−x, |x|, clamp, exp, log, sqrt, rsqrt, 1/x,
x², x ** p, erf, sin, cos), traced in every PyTorch spelling, in and out of place, between
two convolutions and with the batch moved off axis 0, and described; held to PyTorch:
parameters, MACs (FlopCounterMode), output shapes, and the bytes autograd keeps
(saved_tensors_hooks) — never a partial report."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import convlens
from convlens.errors import ConvlensError, SpecError
from tests.core.oracle import BATCH, network, saved_activation_bytes
from tests.core.test_rules_vs_torch import check_against_torch
from tests.torch.pytorch_truth import check_against_pytorch

Function = Callable[[torch.Tensor], torch.Tensor]


def _ipow(y: torch.Tensor) -> torch.Tensor:
    y **= 2
    return y


# (the op, its numbers as the row holds them, the call), out of place then in place
OUT_OF_PLACE: list[tuple[str, dict[str, float], Function]] = [
    ("neg", {}, operator.neg),
    ("neg", {}, torch.neg),
    ("neg", {}, torch.negative),
    ("abs", {}, operator.abs),
    ("abs", {}, torch.Tensor.abs),
    ("abs", {}, torch.absolute),
    ("clamp", {"min": 0.0, "max": 1.0}, lambda y: y.clamp(0, 1)),
    ("clamp", {"min": 0.0}, lambda y: y.clamp(min=0)),
    ("clamp", {"max": 0.5}, lambda y: torch.clamp(y, max=0.5)),
    ("clamp", {"min": -1.0, "max": 1.0}, lambda y: torch.clip(y, -1, 1)),
    ("clamp", {"min": 0.0}, lambda y: y.clamp_min(0.0)),
    ("clamp", {"max": 0.5}, lambda y: torch.clamp_max(y, 0.5)),
    ("clamp", {"min": 1.0, "max": 0.0}, lambda y: y.clamp(1, 0)),  # min > max: all max
    ("exp", {}, torch.exp),
    ("exp", {}, torch.Tensor.exp),
    ("log", {}, lambda y: y.log()),
    ("sqrt", {}, torch.sqrt),
    ("rsqrt", {}, lambda y: y.rsqrt()),
    ("reciprocal", {}, torch.reciprocal),
    ("square", {}, lambda y: y.square()),
    ("square", {}, torch.square),
    ("pow", {"exponent": 2.0}, lambda y: y**2),
    ("pow", {"exponent": 2.0}, lambda y: y.pow(2.0)),
    ("pow", {"exponent": 0.5}, lambda y: torch.pow(y, 0.5)),
    ("pow", {"exponent": -1.0}, lambda y: y.pow(exponent=-1)),
    ("erf", {}, torch.erf),
    ("erf", {}, torch.special.erf),
    ("sin", {}, lambda y: y.sin()),
    ("cos", {}, torch.cos),
]
IN_PLACE: list[tuple[str, dict[str, float], Function]] = [
    ("neg", {}, lambda y: y.neg_()),
    ("neg", {}, torch.neg_),
    ("neg", {}, lambda y: y.negative_()),
    ("abs", {}, lambda y: y.abs_()),
    ("abs", {}, lambda y: y.absolute_()),
    ("clamp", {"min": 0.0, "max": 1.0}, lambda y: y.clamp_(0, 1)),
    ("clamp", {"min": 0.0}, lambda y: y.clamp_(min=0)),
    ("clamp", {"max": 0.5}, lambda y: y.clamp_(max=0.5)),
    ("clamp", {"min": -1.0, "max": 1.0}, lambda y: y.clip_(-1, 1)),
    ("clamp", {"min": 0.0, "max": 6.0}, lambda y: torch.clamp_(y, 0, 6)),
    ("clamp", {"min": 0.0}, lambda y: y.clamp_min_(0)),
    ("clamp", {"max": 0.5}, lambda y: y.clamp_max_(0.5)),
    ("exp", {}, lambda y: y.exp_()),
    ("exp", {}, torch.exp_),
    ("log", {}, lambda y: y.log_()),
    ("sqrt", {}, lambda y: y.sqrt_()),
    ("rsqrt", {}, torch.rsqrt_),
    ("reciprocal", {}, lambda y: y.reciprocal_()),
    ("square", {}, lambda y: y.square_()),
    ("pow", {"exponent": 3.0}, lambda y: y.pow_(3)),
    ("pow", {"exponent": 2.0}, _ipow),
    ("erf", {}, lambda y: y.erf_()),
    ("sin", {}, torch.sin_),
    ("cos", {}, lambda y: y.cos_()),
]
CASES = [(*case, False) for case in OUT_OF_PLACE] + [(*case, True) for case in IN_PLACE]


class Between(nn.Module):
    """conv → f → conv; ``moved``: f runs on the map with channels and batch swapped,
    (C, N, H, W), as a model that moves the batch off axis 0 does."""

    def __init__(self, function: Function, moved: bool) -> None:
        super().__init__()
        self.first, self.last = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.function, self.moved = function, moved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        if self.moved:
            return self.last(self.function(y.transpose(0, 1)).transpose(0, 1))
        return self.last(self.function(y))


@pytest.mark.parametrize("moved", [False, True], ids=["batch first", "batch moved"])
@pytest.mark.parametrize(
    ("op", "numbers", "function", "inplace"),
    CASES,
    ids=[f"{c[0]}-{i}{'-in place' if c[3] else ''}" for i, c in enumerate(CASES)],
)
def test_traced_function_matches_pytorch(
    op: str, numbers: dict[str, float], function: Function, inplace: bool, moved: bool
) -> None:
    x = torch.rand(2, 2, 5, 6)
    report = check_against_pytorch(Between(function, moved), x)
    rows = [r for r in report.layers if r.kind == "unary"]
    assert len(rows) == 1, [r.kind for r in report.layers]
    row = rows[0]
    given = {name: row.args[name] for name in ("min", "max", "exponent")}
    assert row.args["op"] == op
    assert given == {"min": None, "max": None, "exponent": None, **numbers}
    assert row.output_shape == (3, 5, 6)  # per sample, wherever the batch is
    assert row.other_flops == 2 * 3 * 5 * 6  # one per element
    assert row.macs == 0
    assert [r.kind for r in report.layers if r.kind not in ("conv2d", "view")] == ["unary"]
    spec = next(s for s in report.network.layers if s.name == row.name)
    assert spec.inplace == inplace


class Discarded(nn.Module):
    """conv → f in place, its result dropped (``y.exp_()`` as a statement) → conv of y."""

    def __init__(self, function: Function) -> None:
        super().__init__()
        self.first, self.last = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        self.function(y)
        return self.last(y)


@pytest.mark.parametrize(
    ("op", "function"),
    [(op, function) for op, _, function in IN_PLACE],
    ids=[f"{c[0]}-{i}" for i, c in enumerate(IN_PLACE)],
)
def test_in_place_call_as_a_statement_matches_pytorch(op: str, function: Function) -> None:
    report = check_against_pytorch(Discarded(function), torch.rand(2, 2, 5, 6))
    assert [r.args["op"] for r in report.layers if r.kind == "unary"] == [op]


def _described(line: str) -> str:
    return f"input 2x5x6\nconv2d 3 k=3 p=1\n{line}\nconv2d 4 k=1"


DESCRIBED = [
    "unary neg",
    "unary abs",
    "unary clamp min=0",
    "unary clamp max=0.5",
    "unary clamp min=-1 max=6",
    "unary exp",
    "unary log",
    "unary sqrt",
    "unary rsqrt",
    "unary reciprocal",
    "unary square",
    "unary pow exponent=2",
    "unary pow exponent=-0.5",
    "unary erf",
    "unary sin",
    "unary cos",
]


@pytest.mark.parametrize("inplace", [False, True], ids=["", "in place"])
@pytest.mark.parametrize("line", DESCRIBED)
def test_described_function_matches_pytorch(line: str, inplace: bool) -> None:
    """Shapes, MACs and the traced module's totals (``check_against_torch``), and the
    saved bytes of the built module's training forward."""
    text = _described(f"{line} inplace={str(inplace).lower()}")
    check_against_torch(text)
    report = convlens.analyze(text, batch=BATCH)
    assert report.totals.saved_activation_bytes == saved_activation_bytes(network(text), BATCH)
    (row,) = [r for r in report.layers if r.kind == "unary"]
    assert row.other_flops == BATCH * 3 * 5 * 6


# What autograd keeps, by hand, for input 2x5x6 / conv 3 / f / conv 4 at batch 2: each
# conv keeps its input (x: 2·2·5·6 floats, then f's result: 2·3·5·6); f keeps nothing,
# its input y (2·3·5·6 more; in place a copy of it, as y itself is overwritten), or its
# result (the last conv's input, already counted).
X, Y = 4 * 2 * 2 * 5 * 6, 4 * 2 * 3 * 5 * 6


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("unary neg", X + Y),
        ("unary neg inplace=true", X + Y),
        ("unary exp", X + Y),
        ("unary exp inplace=true", X + Y),
        ("unary abs", X + 2 * Y),
        ("unary clamp max=1 inplace=true", X + 2 * Y),
        ("unary pow exponent=2", X + 2 * Y),
    ],
)
def test_saved_bytes_worked_out(line: str, expected: int) -> None:
    assert convlens.analyze(_described(line), batch=2).totals.saved_activation_bytes == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("unary clamp", "unary clamp needs a bound: min=…, max=… or both"),
        ("unary clamp inplace=true", "unary clamp needs a bound"),
        ("unary expo", "must be one of neg, abs, clamp, .*did you mean 'exp'"),
        ("unary exp min=0", "unary exp takes no min= \\(only clamp has bounds\\)"),
        ("unary abs max=1", "unary abs takes no max="),
        ("unary pow", "unary pow needs exponent=…"),
        ("unary sin exponent=2", "unary sin takes no exponent= \\(only pow has one\\)"),
        ("unary clamp min=x", "'min' must be a number"),
        ("unary", "unary needs argument 'op'"),
    ],
)
def test_nonsense_is_refused_at_its_line(line: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as refused:
        convlens.analyze(_described(line))
    assert refused.value.position is not None and refused.value.position.line == 3


def _with(function: Callable[[torch.Tensor], Any]) -> Between:
    return Between(function, moved=False)


@pytest.mark.parametrize(
    ("function", "op"),
    [
        (lambda y: y.clamp(min=torch.zeros(1)), "clamp"),  # a tensor bound
        (lambda y: y ** torch.tensor(2.0), "pow"),  # a tensor exponent
        (lambda y: torch.pow(y, y), "pow"),
        (lambda y: 2**y, "__rpow__"),  # a number to a traced power: not x ** p
        (lambda y: y - y.argmax(1, keepdim=True).neg(), "neg"),  # −i of an int64 index
    ],
    ids=["tensor bound", "tensor exponent", "y ** y", "2 ** y", "int64"],
)
def test_calls_outside_the_kind_stay_opaque(function: Function, op: str) -> None:
    """Not a unary row with a wrong count: an opaque row, and the report says partial."""
    report = convlens.analyze(_with(function), input=torch.rand(2, 2, 5, 6))
    assert "unary" not in {r.kind for r in report.layers}
    assert op in report.totals.unsupported


def test_pytorch_error_stands_for_a_clamp_without_bounds() -> None:
    with pytest.raises(ConvlensError, match="both min and max are none"):
        convlens.analyze(_with(lambda y: y.clamp()), input=torch.rand(2, 2, 5, 6))
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        torch.rand(2).clamp()  # what PyTorch says on the CPU; the trace runs on meta
