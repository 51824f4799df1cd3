"""Traced models with local response normalisation, instance normalisation and adaptive
max pooling: each gets a row of its own kind (no opaque row, nothing left uncounted) and
every total agrees with PyTorch (numel, FlopCounterMode, the output, autograd's saves)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from convlens.api import AnalysisReport
from tests.torch.pytorch_truth import check_against_pytorch


class AlexNetLike(nn.Module):
    """AlexNet's LRN after ReLU, an InstanceNorm2d block, an AdaptiveMaxPool2d head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(16, 24, 3, padding=1),
            nn.InstanceNorm2d(24, affine=True),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d((3, 3)),
        )
        self.head = nn.Linear(24 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def kinds(report: AnalysisReport) -> list[str]:
    """The rows' kinds, without the view by which ``OnSignal`` makes a signal."""
    return [row.kind for row in report.layers if row.kind != "view"]


class OnSignal(nn.Module):
    """``inner`` on (N, C, L) signals, given as (N, C, L, 1): an input of three axes is
    read as one (C, H, W) sample."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.squeeze(-1))


def checked(model: nn.Module, x: torch.Tensor, **options: object) -> AnalysisReport:
    """``check_against_pytorch``, a (N, C, L) signal given as (N, C, L, 1)."""
    if x.dim() == 3:
        return check_against_pytorch(OnSignal(model), x.unsqueeze(-1), **options)
    return check_against_pytorch(model, x, **options)


def test_an_alexnet_like_stack_is_exact() -> None:
    report = check_against_pytorch(AlexNetLike(), torch.rand(2, 3, 31, 29))
    assert kinds(report) == [
        "conv2d",
        "relu",
        "local_response_norm",
        "maxpool2d",
        "conv2d",
        "instance_norm",
        "relu",
        "adaptive_maxpool2d",
        "flatten",
        "linear",
    ]
    lrn = report.layers[2]
    c, h, w = lrn.output_shape
    assert lrn.flops == 2 * (5 + 5) * c * h * w  # (size + 5) per element, batch 2
    pool = report.layers[7]
    # 24 channels, bins of 3 rows and 3 columns each (a 7×7 map to 3×3: bins 0-2, 2-4, 4-6)
    assert pool.flops == 2 * 24 * (9 * 9 - 3 * 3)


class StaysInEval(nn.InstanceNorm2d):
    """An InstanceNorm2d kept in eval mode while the model trains (its running statistics)."""

    def train(self, mode: bool = True) -> StaysInEval:
        return super().train(False)


@pytest.mark.parametrize("module_type", [nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track_running_stats", [False, True])
def test_instance_norm_of_every_rank(
    module_type: type[nn.Module], affine: bool, track_running_stats: bool
) -> None:
    axes = {nn.InstanceNorm1d: 1, nn.InstanceNorm2d: 2, nn.InstanceNorm3d: 3}[module_type]
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[axes - 1]
    model = nn.Sequential(
        conv(2, 4, 1), module_type(4, affine=affine, track_running_stats=track_running_stats)
    )
    x = torch.rand(3, 2, *(5, 4, 3)[:axes])
    report = checked(model, x)
    assert kinds(report) == [f"conv{axes}d", "instance_norm"]
    # _NormBase registers num_batches_tracked for InstanceNorm too
    assert report.totals.buffers == (9 if track_running_stats else 0)


def test_instance_norm_kept_in_eval_uses_its_running_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(2, 4, 1), StaysInEval(4, track_running_stats=True))
    report = check_against_pytorch(model, torch.rand(2, 2, 6, 5))
    assert report.layers[1].args["training"] is False


def test_instance_norm_as_a_function() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.instance_norm(self.conv(x), eps=1e-3)

    report = check_against_pytorch(Functional(), torch.rand(2, 3, 7, 7))
    assert kinds(report) == ["conv2d", "instance_norm"]


@pytest.mark.parametrize("shape", [(2, 6, 9), (2, 6, 5, 4), (2, 6, 3, 4, 5)])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_local_response_norm_of_signals_maps_and_volumes(shape: tuple[int, ...], size: int) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(shape) - 3]

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv(6, 6, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.local_response_norm(self.conv(x), size, alpha=1e-3, k=2.0)

    report = checked(Functional(), torch.rand(*shape))
    assert kinds(report)[-1] == "local_response_norm"


@pytest.mark.parametrize("axes", [1, 2, 3])
@pytest.mark.parametrize("return_indices", [False, True])
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_adaptive_max_pooling_with_and_without_indices(
    axes: int, return_indices: bool, device: str
) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[axes - 1]
    pool = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[axes - 1]
    size = (3, None, 1)[:axes] if axes > 1 else 3

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv(2, 4, 1)
            self.pool = pool(size, return_indices=return_indices)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.pool(self.conv(x))
            if return_indices:
                values, indices = out
                assert indices.dtype == torch.int64
                assert indices.shape == values.shape
                return values
            return out

    x = torch.rand(2, 2, *(7, 5, 4)[:axes])
    options = {} if device == "meta" else {"device": device}
    report = checked(Head(), x, **options)
    assert kinds(report) == [f"conv{axes}d", f"adaptive_maxpool{axes}d"]


def test_adaptive_max_pooling_functions() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            a = F.adaptive_max_pool2d(y, 2)
            b, _ = F.adaptive_max_pool2d(y, (1, 3), return_indices=True)
            c, _ = F.adaptive_max_pool2d_with_indices(y, 1)
            return torch.cat([a.flatten(1), b.flatten(1), c.flatten(1)], 1)

    report = check_against_pytorch(Functional(), torch.rand(2, 3, 9, 8))
    assert kinds(report).count("adaptive_maxpool2d") == 3


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [(torch.float16, (2, 3, 6)), (torch.bfloat16, (2, 3, 6)), (torch.float64, (2, 3, 6, 5))],
)
def test_in_other_dtypes(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    """The statistics, repeated running statistics and weight autograd keeps are in the
    activations' dtype. (PyTorch's CPU LRN of a 4-D half-precision batch fails in its
    avg_pool3d, so half precision is checked on signals.)"""
    axes = len(shape) - 2
    conv = (nn.Conv1d, nn.Conv2d)[axes - 1]
    norm = (nn.InstanceNorm1d, nn.InstanceNorm2d)[axes - 1]
    pool = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)[axes - 1]
    model = nn.Sequential(
        conv(3, 4, 1),
        nn.LocalResponseNorm(3),
        norm(4, affine=True, track_running_stats=True),
        pool(2),
    ).to(dtype)
    report = checked(model, torch.rand(*shape, dtype=dtype))
    assert kinds(report)[1:] == ["local_response_norm", "instance_norm", f"adaptive_maxpool{axes}d"]
