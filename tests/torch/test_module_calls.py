"""Stock modules' direct calls (``registry.MODULE_CALLS``): the trace makes the one call a
stock module's forward would make, so each entry must say exactly what PyTorch's own
forward hands to ``__torch_function__`` — and tracing with them must change nothing."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar
from unittest import mock

import pytest
import torch
from torch import nn

import convlens
from convlens.torch.registry import MODULE_CALLS
from convlens.torch.shape_tensor import ShapeTensor
from convlens.torch.trace import trace
from convlens.torch.tracer import PASSTHROUGH
from convlens.zoo import create_model


class _Recording(torch.Tensor):
    """A meta tensor that notes every operation on it (metadata reads answer as they are)
    and hands back its input."""

    calls: ClassVar[list[tuple[Any, tuple, dict]]] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in PASSTHROUGH:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        cls.calls.append((func, tuple(args), dict(kwargs or {})))
        return args[0]


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type; tensors must be the very same object."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return a is b
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


# (module, input shape); each registered type has at least one case.
CASES: list[tuple[nn.Module, tuple[int, ...]]] = [
    (nn.ReLU(), (2, 3, 5, 5)),
    (nn.ReLU(inplace=True), (2, 3, 5, 5)),
    (nn.ReLU6(), (2, 3, 5, 5)),
    (nn.ReLU6(inplace=True), (2, 3)),
    (nn.Hardtanh(-2.0, 3.0), (2, 3, 5, 5)),
    (nn.Hardswish(), (2, 3, 5, 5)),
    (nn.Hardswish(inplace=True), (2, 3, 5, 5)),
    (nn.Hardsigmoid(), (2, 3, 5, 5)),
    (nn.SiLU(inplace=True), (2, 3, 5, 5)),
    (nn.LeakyReLU(0.2, inplace=True), (2, 3, 5, 5)),
    (nn.Sigmoid(), (2, 3, 5, 5)),
    (nn.Tanh(), (2, 3)),
    (nn.GELU(), (2, 3, 5, 5)),
    (nn.GELU(approximate="tanh"), (2, 3)),
    (nn.Dropout(0.3), (2, 3, 5, 5)),
    (nn.Dropout(0.5, inplace=True).eval(), (2, 8)),
    (nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    (nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=1, dilation=2, groups=3), (2, 3, 9, 9)),
    (nn.Conv2d(4, 4, 3, padding="same", bias=False), (1, 4, 6, 6)),
    (nn.Conv3d(2, 4, 3, padding=1), (1, 2, 4, 5, 5)),
    (nn.Linear(6, 3), (2, 6)),
    (nn.Linear(6, 3, bias=False), (2, 4, 6)),
    (nn.MaxPool2d(3, 2, 1), (2, 3, 9, 9)),
    (nn.MaxPool2d(2, ceil_mode=True), (2, 3, 9, 9)),
    (nn.AvgPool2d(3, 2, 1, count_include_pad=False, divisor_override=4), (2, 3, 9, 9)),
    (nn.AvgPool2d(2, ceil_mode=True), (2, 3, 9, 9)),
    (nn.AdaptiveAvgPool2d(1), (2, 3, 9, 9)),
    (nn.AdaptiveAvgPool2d((2, None)), (2, 3, 9, 9)),
    (nn.BatchNorm2d(3).eval(), (2, 3, 5, 5)),
    (nn.BatchNorm2d(3, affine=False, momentum=None).eval(), (2, 3, 5, 5)),
    (nn.BatchNorm2d(3, track_running_stats=False).eval(), (2, 3, 5, 5)),
    (nn.BatchNorm2d(3), (2, 3, 5, 5)),  # training: counts the batch
    (nn.BatchNorm2d(3, momentum=None), (2, 3, 5, 5)),  # a cumulative average
    (nn.BatchNorm2d(3, track_running_stats=False), (2, 3, 5, 5)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (1, 4, 5, 5)),
    (nn.ConvTranspose2d(4, 4, (2, 3), groups=2, dilation=2, bias=False), (1, 4, 5, 5)),
    (nn.Upsample(scale_factor=2), (1, 3, 4, 4)),
    (nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True), (1, 3, 4, 4)),
    (nn.Softmax(dim=1), (2, 3, 5, 5)),
    (nn.LogSoftmax(dim=1), (2, 3, 5, 5)),
    (nn.Mish(), (2, 3, 5, 5)),
    (nn.Mish(inplace=True), (2, 3)),
    (nn.SELU(inplace=True), (2, 3, 5, 5)),
    (nn.CELU(0.5), (2, 3, 5, 5)),
    (nn.Softplus(2.0, 5.0), (2, 3, 5, 5)),
    (nn.PReLU(), (2, 3, 5, 5)),
    (nn.PReLU(3), (2, 3, 5, 5)),
    (nn.LayerNorm(5), (2, 3, 5)),
    (nn.LayerNorm((3, 5), elementwise_affine=False), (2, 3, 5)),
    (nn.LayerNorm(5, bias=False), (2, 5)),
    (nn.Flatten(), (2, 3, 5, 5)),
    (nn.Flatten(2, 3), (2, 3, 5, 5)),
    (nn.AdaptiveMaxPool1d(3), (2, 3, 9)),
    (nn.AdaptiveMaxPool2d((2, None)), (2, 3, 9, 9)),
    (nn.AdaptiveMaxPool2d(1, return_indices=True), (2, 3, 9, 9)),
    (nn.AdaptiveMaxPool3d((1, 2, 3), return_indices=True), (1, 2, 4, 5, 5)),
    (nn.InstanceNorm1d(3), (2, 3, 5)),
    (nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 5, 5)),
    (nn.InstanceNorm2d(3, track_running_stats=True, momentum=None).eval(), (2, 3, 5, 5)),
    (nn.InstanceNorm3d(2, affine=True), (1, 2, 4, 5, 5)),
    (nn.LocalResponseNorm(3), (2, 6, 5, 5)),
    (nn.LocalResponseNorm(2, alpha=1e-3, beta=0.5, k=2.0), (2, 6, 5)),
    (nn.PixelShuffle(2), (2, 8, 3, 5)),
    (nn.PixelUnshuffle(3), (2, 2, 6, 9)),
    (nn.ChannelShuffle(2), (2, 6, 5, 5)),
    (nn.ChannelShuffle(3), (2, 6, 7)),
]

# Modules whose forward does more than the one call: no direct call, the forward runs.
NOT_DIRECT: list[tuple[nn.Module, tuple[int, ...]]] = [
    (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), (1, 4, 6, 6)),  # pads first
    (nn.MaxPool2d(2, return_indices=True), (2, 3, 8, 8)),  # max_pool2d_with_indices
    (nn.BatchNorm2d(3).eval(), (2, 3, 5)),  # a wrong rank: its own error to raise
    (nn.InstanceNorm2d(3), (3, 5, 5)),  # unbatched: its forward adds the batch
    (nn.InstanceNorm2d(4), (2, 3, 5, 5)),  # other channels: its forward warns
]


def test_every_registered_module_type_has_cases() -> None:
    assert set(MODULE_CALLS) == {type(module) for module, _ in CASES}


@pytest.mark.parametrize(("module", "shape"), CASES, ids=lambda v: repr(v)[:40])
def test_a_direct_call_is_what_the_stock_forward_passes(
    module: nn.Module, shape: tuple[int, ...]
) -> None:
    x = torch.empty(shape, device="meta").as_subclass(_Recording)
    buffers = [(b, b.clone()) for b in module.buffers()]
    with torch._C.DisableTorchFunctionSubclass():
        direct = MODULE_CALLS[type(module)](module, x)
    changed = [id(b) for b, before in buffers if not torch.equal(b, before)]
    for b, before in buffers:  # what the entry did (a batch counted), undone
        b.copy_(before)
    _Recording.calls = []
    module(x)
    assert changed == [id(b) for b, before in buffers if not torch.equal(b, before)]
    assert direct is not None
    assert len(_Recording.calls) == 1
    func, args, kwargs = _Recording.calls[0]
    assert direct[0] is func
    assert _same(direct[1], args), (direct[1], args)
    assert direct[2].keys() == kwargs.keys()
    assert all(_same(direct[2][k], kwargs[k]) for k in kwargs), (direct[2], kwargs)


@pytest.mark.parametrize(("module", "shape"), NOT_DIRECT, ids=lambda v: repr(v)[:40])
def test_a_forward_that_does_more_runs_as_written(
    module: nn.Module, shape: tuple[int, ...]
) -> None:
    x = torch.empty(shape, device="meta").as_subclass(_Recording)
    with torch._C.DisableTorchFunctionSubclass():
        assert MODULE_CALLS[type(module)](module, x) is None


def _everything(model: nn.Module, size: tuple[int, ...]) -> tuple:
    traced = trace(model, size)
    costs = {name: dataclasses.astuple(cost) for name, cost in traced.costs.items()}
    report = convlens.analyze(model, input_size=size)
    return traced.network, costs, report.layers, report.totals


@pytest.mark.parametrize(
    "name", ["mobilenet_v3_small", "resnet18", "densenet121", "lenet5", "unet_same", "yolov3"]
)
@pytest.mark.parametrize("training", [False, True])
def test_direct_calls_change_no_record(name: str, training: bool) -> None:
    model = create_model(name).train(training)
    size = (2, 1, 32, 32) if name == "lenet5" else (2, 3, 64, 64)
    runs: list[str] = []
    stock = nn.Conv2d.forward

    def counting(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        runs.append("forward")
        return stock(self, x)

    with mock.patch.object(nn.Conv2d, "forward", counting):
        fast = _everything(model, size)
        assert runs == []  # every nn.Conv2d was called directly
        with mock.patch.dict(MODULE_CALLS, clear=True):
            slow = _everything(model, size)
        assert runs  # and here through its forward
    assert fast == slow


def test_the_model_is_given_back_as_it_was() -> None:
    """The trace's wrappers go; a module's own forward (an instance attribute) and its
    hooks stay and still run."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    seen: list[tuple[int, ...]] = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    plain = model[2].forward

    def own_forward(x: torch.Tensor) -> torch.Tensor:
        return plain(x) * 2

    model[2].forward = own_forward
    report = convlens.analyze(model, input_size=(1, 3, 8, 8))
    assert seen == [(1, 4, 6, 6)]  # the user's hook ran on the conv's output
    assert [row.kind for row in report.layers] == ["conv2d", "relu", "conv2d", "scalar_op"]
    assert model[2].__dict__["forward"] is own_forward
    assert all("forward" not in m.__dict__ for m in (model, model[0], model[1]))
    assert isinstance(model(torch.ones(1, 3, 8, 8)), torch.Tensor)


def test_a_module_outside_the_tree_still_runs_traced() -> None:
    """A module held in a plain list is not the model's (PyTorch does not register it):
    its operations are traced as the enclosing module's, its weights are not counted."""

    class Hidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.loose = [nn.Conv2d(4, 4, 3)]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.loose[0](self.a(x))

    report = convlens.analyze(Hidden(), input_size=(1, 3, 8, 8))
    assert [(row.kind, row.output_shape) for row in report.layers] == [
        ("conv2d", (4, 6, 6)),
        ("conv2d", (4, 4, 4)),
    ]
    assert report.totals.params == sum(p.numel() for p in Hidden().parameters())
    assert ShapeTensor.tracer is None
