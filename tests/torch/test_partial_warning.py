"""The report-wide warning of a partial report says which figures leave what out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens.errors import ConvlensError


class Statistic(nn.Module):
    def __init__(self, use_mean: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.use_mean = use_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * y.mean() if self.use_mean else torch.lgamma(y)


def test_a_result_without_batch_axis_is_named_in_the_warning() -> None:
    report = convlens.analyze(Statistic(use_mean=True), input_size=(2, 3, 8, 8))
    assert report.totals.unsupported
    assert report.warnings[-1].startswith("partial figures: no rule for mean (no batch axis)")
    assert report.warnings[-1].endswith("nor the activation bytes of results without a batch axis")


def test_a_batched_op_without_rule_keeps_its_activation_bytes() -> None:
    report = convlens.analyze(Statistic(use_mean=False), input_size=(2, 3, 8, 8))
    assert report.warnings[-1].startswith("partial figures: no rule for lgamma")
    assert "batch axis" not in report.warnings[-1]
    lgamma = [r for r in report.layers if r.kind == "opaque"]
    assert len(lgamma) == 1 and lgamma[0].activation_bytes == 2 * 4 * 6 * 6 * 4


class ConstantWeightLinear(torch.nn.Module):
    """A linear layer whose weight is a plain tensor, beside a trainable bias."""

    def __init__(self) -> None:
        super().__init__()
        self.constant = torch.rand(5, 12)
        self.bias = nn.Parameter(torch.rand(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.flatten(1), self.constant, self.bias)


def test_a_weight_that_is_no_parameter_says_what_its_saved_bytes_assume() -> None:
    report = convlens.analyze(ConstantWeightLinear(), input_size=(2, 3, 2, 2))
    (row,) = [r for r in report.layers if r.kind == "linear"]
    assert row.args["derived_weight"]
    assert any("a constant weight would not keep this layer's input" in w for w in row.warnings)
    plain = convlens.analyze(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), input_size=(2, 3, 2, 2))
    assert not any("not a parameter" in w for r in plain.layers for w in r.warnings)


class OtherDtypes(nn.Module):
    """Results in another dtype than the activations': a comparison's bool mask used by
    ``torch.where``, indices (``argmax``, ``.long()``) that an embedding reads."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x > 0
        y = torch.where(mask, x, x * 0.5)
        index = (y.abs() * 3).long().clamp(0, 9)[:, 0]
        return self.embed(index).permute(0, 3, 1, 2) + y[:, :1] + y.argmax(1, keepdim=True)


def test_results_keep_their_dtype_and_count_its_bytes() -> None:
    """The trace's tensors have PyTorch's dtypes (else ``torch.where`` and the embedding
    refuse them), and a row without a rule counts its result's own bytes per element."""
    x = torch.randn(2, 3, 8, 8)
    model = OtherDtypes()
    report = convlens.analyze(model, input=x)
    expected = {  # op → bytes of the real result of that operation
        "gt": (x > 0).nbytes,
        "long": (x.abs() * 3).long().nbytes,
        "argmax": x.argmax(1, keepdim=True).nbytes,
    }
    rows = {r.args["op"]: r for r in report.layers if r.kind == "opaque"}
    for op, nbytes in expected.items():
        assert rows[op].activation_bytes == nbytes, op
    assert rows["gt"].args["itemsize"] == 1 and rows["long"].args["itemsize"] == 8
    assert rows["where"].args["itemsize"] is None  # float32, as the activations
    assert rows["where"].activation_bytes == x.nbytes
    last = [r for r in report.layers if r.kind != "params_only"][-1]
    assert last.output_shape == tuple(model(x).shape[1:])


class OddResize(nn.Module):
    """A resize to a size that is no one scale of the input, which the upsample rule does
    not cover but PyTorch runs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.nn.functional.interpolate(x, size=(7, 9)))


def test_a_call_the_rule_does_not_cover_is_a_partial_row_not_a_refusal() -> None:
    x = torch.randn(2, 3, 16, 16)
    report = convlens.analyze(OddResize(), input=x)
    resize, conv = report.layers
    assert resize.kind == "opaque" and resize.args["op"] == "interpolate"
    assert "size 7x9 is not one scale of the input 16x16" in resize.args["refused"]
    assert any("its rule does not cover this call" in w for w in resize.warnings)
    assert report.totals.unsupported == ("interpolate",)
    assert conv.output_shape == tuple(OddResize()(x).shape[1:]) == (4, 7, 9)
    assert conv.macs == 2 * 4 * 7 * 9 * 3 * 3 * 3  # the layers after it are still counted


def test_a_call_pytorch_refuses_too_keeps_the_rules_words() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(5))
    with pytest.raises(ConvlensError, match=r"module '1' \(MaxPool2d\).*kernel height 5"):
        convlens.analyze(model, input_size=(1, 3, 6, 6))


def test_a_handler_that_fails_leaves_a_partial_row_naming_the_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault in one of convlens's handlers costs that row's figures, said in the row,
    not the analysis: PyTorch's meta kernel still gives the shape."""
    from convlens.torch import registry

    def broken(t: object, args: tuple, kwargs: dict) -> object:
        raise IndexError("tuple index out of range")

    monkeypatch.setitem(registry.HANDLERS, torch.sigmoid, broken)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 2, 1))
    report = convlens.analyze(model, input_size=(2, 3, 6, 6))
    kinds = [row.kind for row in report.layers]
    assert kinds == ["conv2d", "opaque", "conv2d"]
    refused = report.layers[1].args["refused"]
    assert refused == "convlens's sigmoid handler failed: IndexError: tuple index out of range"
    assert report.totals.params == sum(p.numel() for p in model.parameters())


def test_a_linear_with_a_vector_weight_is_a_partial_row() -> None:
    """F.linear with a 1-D weight is a dot product per row (PyTorch runs it): no linear
    layer, so no rule; its parameters are still counted."""

    class DotProduct(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(12))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x.flatten(1), self.w)

    report = convlens.analyze(DotProduct(), input_size=(2, 3, 2, 2))
    assert [row.kind for row in report.layers] == ["flatten", "opaque", "params_only"]
    assert report.layers[1].output_shape == ()
    assert report.totals.params == 12
