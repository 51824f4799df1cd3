"""smp's FPN merge (stack, then a sum over the new axis), F.pad with its receptive field,
a model that ends after a batch-less step, inputs nested in dicts and lists, and models
wrapped by torch.compile or TorchScript — each against PyTorch.

Sources mimicked: segmentation_models.pytorch ``decoders/fpn/decoder.py`` (``Conv3x3GNReLU``,
``FPNBlock``, ``SegmentationBlock``, ``MergeBlock.forward``: ``torch.stack(x).sum(dim=0)``);
timm ``layers/padding.py`` (``get_same_padding``, ``pad_same``) and ``layers/conv2d_same.py``
(``conv2d_same``: ``pad_same`` then a convolution without padding).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import convlens
from convlens.core.receptive_field import RFStatus
from convlens.errors import ArgumentError
from tests.core.oracle import impulse_extents
from tests.torch.pytorch_truth import check_against_pytorch, flop_counter_macs
from tests.torch.saved import saved_bytes

# -- segmentation_models_pytorch/decoders/fpn/decoder.py ----------------------------------


class Conv3x3GNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (3, 3), stride=1, padding=1, bias=False),
            nn.GroupNorm(32, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return x


class FPNBlock(nn.Module):
    def __init__(self, pyramid_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, pyramid_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        skip = self.skip_conv(skip)
        return x + skip


class SegmentationBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_upsamples: int = 0) -> None:
        super().__init__()
        blocks = [Conv3x3GNReLU(in_channels, out_channels, upsample=bool(n_upsamples))]
        for _ in range(1, n_upsamples):
            blocks.append(Conv3x3GNReLU(out_channels, out_channels, upsample=True))
        self.block = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class MergeBlock(nn.Module):
    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(x).sum(dim=0)  # policy "add"


class TinyFPN(nn.Module):
    """A four-level encoder of strided convolutions, smp's FPN decoder, and its head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, 2, 1) for c_in, c_out in ((3, 8), (8, 16), (16, 24), (24, 32))
        )
        self.p5 = nn.Conv2d(32, 32, kernel_size=1)
        self.p4, self.p3, self.p2 = FPNBlock(32, 24), FPNBlock(32, 16), FPNBlock(32, 8)
        self.seg_blocks = nn.ModuleList(SegmentationBlock(32, 32, n) for n in (3, 2, 1, 0))
        self.merge = MergeBlock()
        self.dropout = nn.Dropout2d(p=0.2, inplace=True)
        self.head = nn.Conv2d(32, 2, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for conv in self.encoder:
            x = torch.relu(conv(x))
            features.append(x)
        c2, c3, c4, c5 = features
        p5 = self.p5(c5)
        p4 = self.p4(p5, c4)
        p3 = self.p3(p4, c3)
        p2 = self.p2(p3, c2)
        pyramid = [block(p) for block, p in zip(self.seg_blocks, (p5, p4, p3, p2), strict=True)]
        x = self.dropout(self.merge(pyramid))
        return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=True)


def test_fpn_stack_then_sum_is_exact_and_keeps_the_receptive_field() -> None:
    model = TinyFPN()
    x = torch.rand(2, 3, 32, 32)
    report = check_against_pytorch(model, x)
    stack = next(r for r in report.layers if r.kind == "stack")
    assert stack.output_shape == (4, 32, 16, 16)  # the new axis in front of each sample
    merged = report.layers[report.layers.index(stack) + 1]
    assert (merged.kind, merged.output_shape) == ("reduce", (32, 16, 16))
    # align_corners upsampling leaves each level with its own jump: said, not guessed
    assert merged.rf_status is RFStatus.UNAVAILABLE
    assert merged.rf_reason == "branches with different jumps are joined"
    assert report.layers[-1].output_shape == (2, 32, 32)
    drop = next(r for r in report.layers if r.kind == "dropout")
    assert drop.args["channelwise"] and drop.saved_bytes == 2 * 32 * 4  # N×C×1×1 mask


class StackSum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a(x), self.b(x)]).sum(dim=0)


def test_a_sum_over_stacked_branches_joins_their_receptive_fields() -> None:
    model = StackSum()
    report = check_against_pytorch(model, torch.rand(2, 1, 32, 32))
    assert report.totals.rf == _field_from_gradients(model, (1, 32, 32)) == (5, 5)


# -- F.pad and timm's TensorFlow "same" padding ---------------------------------------------


def get_same_padding(x: int, kernel_size: int, stride: int, dilation: int) -> int:
    return max((math.ceil(x / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - x, 0)


def pad_same(x: torch.Tensor, kernel_size, stride, dilation=(1, 1), value: float = 0):
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)
    return x


class Conv2dSame(nn.Conv2d):
    """timm's Conv2dSame: TensorFlow "same" padding, asymmetric where the kernel needs it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


class TfSameNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = Conv2dSame(1, 4, 3, stride=2)
        self.conv2 = Conv2dSame(4, 4, 4, stride=1)
        self.conv3 = Conv2dSame(4, 1, 3, stride=2, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


def _field_from_gradients(model: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int]:
    """The widest extent of the input an interior output depends on, per axis."""
    fields = []
    for axis in (0, 1):
        rows = impulse_extents(model, shape, axis)
        size = shape[1 + axis]
        interior = [(o, lo, hi) for o, lo, hi in rows if lo >= 8 and hi <= size - 9]
        fields.append(max(hi - lo + 1 for _, lo, hi in interior))
    return fields[0], fields[1]


def test_tf_same_padding_is_exact_and_carries_the_receptive_field() -> None:
    model = TfSameNet()
    x = torch.rand(2, 1, 64, 64)
    report = check_against_pytorch(model, x)
    pads = [r for r in report.layers if r.kind == "pad"]
    assert [r.args["pad"] for r in pads] == [(0, 1, 0, 1), (1, 2, 1, 2), (1, 2, 1, 2)]
    assert report.totals.rf_status == "ok"  # not "whole input" any more
    assert report.totals.rf == _field_from_gradients(model, (1, 64, 64))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_padding_modes_save_what_autograd_keeps(mode: str) -> None:
    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv2(F.pad(torch.relu(self.conv1(x)), (1, 2, 2, 1), mode=mode))

    model = Padded()
    x = torch.rand(2, 2, 24, 24)
    report = check_against_pytorch(model, x)
    assert report.totals.rf == _field_from_gradients(model, (2, 24, 24)) == (3, 3)
    pad = next(r for r in report.layers if r.kind == "pad")
    assert pad.saved_bytes == 0  # reflect/replicate keep the ReLU output, already kept


# -- the last row ---------------------------------------------------------------------------


class EndsBatchless(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.how == "mean":
            return y.mean()  # a loss-like scalar
        return torch.cat([y, y])  # the batch doubled along axis 0


@pytest.mark.parametrize("how", ["mean", "cat"])
def test_a_model_ending_after_a_batchless_step_shows_its_real_output(how: str) -> None:
    model = EndsBatchless(how)
    x = torch.rand(2, 3, 6, 6)
    report = convlens.analyze(model, input=x)
    with torch.no_grad():
        out = model(x)
    last = report.layers[-1]
    assert last.output_shape == tuple(out.shape)  # the whole output, not (0,)
    assert last.activation_bytes == 0 and last.unsupported.endswith("(no batch axis)")
    assert report.totals.macs == flop_counter_macs(model, x)[0]  # the conv still counts


# -- inputs nested in dicts, lists and tuples -----------------------------------------------


class BatchDict(nn.Module):
    """``forward(batch)`` with ``batch["image"]`` and a nested mask list, as data loaders
    that yield dicts are used."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 4, 3, padding=1)
        self.mask = nn.Conv2d(1, 4, 1)

    def forward(self, batch: dict) -> torch.Tensor:
        masks = batch["extra"]["masks"]
        y = self.image(batch["image"]) + self.mask(masks[0]) + self.mask(masks[1])
        return y * batch["scale"]


def test_inputs_nested_in_dicts_and_lists() -> None:
    model = BatchDict()
    batch = {
        "image": torch.rand(2, 3, 8, 8),
        "extra": {"masks": [torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)]},
        "scale": 0.5,
    }
    report = convlens.analyze(model, input=batch)
    sizes = convlens.analyze(
        model,
        input={"image": (2, 3, 8, 8), "extra": {"masks": [(2, 1, 8, 8), (2, 1, 8, 8)]}, "scale": 2},
    )
    with torch.no_grad():
        macs, out = flop_counter_macs(model, batch)
    for r in (report, sizes):
        assert r.totals.macs == macs and r.totals.params == sum(
            p.numel() for p in model.parameters()
        )
        assert r.layers[-1].output_shape == tuple(out.shape[1:])
        assert [name for name, _ in r.network.extra_inputs] == [
            "input.extra.masks.0",
            "input.extra.masks.1",
        ]
    assert report.totals.rf == (3, 3)  # measured on the first tensor, the image
    model.train()
    assert report.totals.saved_activation_bytes == saved_bytes(model, batch)


def test_keyword_dicts_still_name_forwards_arguments() -> None:
    class TwoArgs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * mask

    report = convlens.analyze(TwoArgs(), input={"x": (1, 3, 4, 4), "mask": (1, 2, 4, 4)})
    assert [n for n, _ in report.network.extra_inputs] == ["mask"]


def test_bad_nested_inputs_are_one_clear_line() -> None:
    with pytest.raises(ArgumentError, match="the input holds no tensor and no size"):
        convlens.analyze(BatchDict(), input={"scale": 0.5, "extra": {}})
    with pytest.raises(ArgumentError, match=r"must be \(N, C, H, W\); got \(2, 3\)"):
        convlens.analyze(BatchDict(), input={"image": (2, 3)})


# -- torch.compile and TorchScript ----------------------------------------------------------


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


def test_compiled_models_are_analysed_as_the_eager_module_behind_them() -> None:
    eager = Small()
    x = torch.rand(2, 3, 8, 8)
    expected = convlens.analyze(eager, input=x)
    whole = convlens.analyze(torch.compile(eager), input=x)
    inner = Small()
    inner.load_state_dict(eager.state_dict())
    inner.block = torch.compile(inner.block)
    part = convlens.analyze(inner, input=x)
    for report in (whole, part):
        assert [r.name for r in report.layers] == [r.name for r in expected.layers]
        assert report.totals == expected.totals
    assert whole.network.name == "Small"


def test_torchscript_is_refused_in_one_sentence(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from convlens.cli.main import app

    scripted = torch.jit.script(Small())
    with pytest.raises(ArgumentError, match=r"^the model is a TorchScript module") as err:
        convlens.analyze(scripted, input_size=(1, 3, 8, 8))
    assert "\n" not in str(err.value) and "nn.Module it was made from" in str(err.value)
    inner = Small()
    inner.block = torch.jit.script(inner.block)
    with pytest.raises(ArgumentError, match=r"^submodule 'block' is a TorchScript module"):
        convlens.analyze(inner, input_size=(1, 3, 8, 8))
    (tmp_path / "scripted_net.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def build():\n"
        "    return torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(app, ["analyze", "scripted_net:build", "--input", "3x8x8"])
    assert result.exit_code == 2
    assert "TorchScript module" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one message, wrapped at most


def test_a_real_forward_gives_the_same_reports() -> None:
    # --device cpu runs every operation and holds each rule's shape to PyTorch's result
    from tests.torch.test_transformer_patterns import TinyLeViTMlp, TinySwin, TinyViT

    cases = [
        (TinyViT(fused=True), (2, 3, 16, 16)),
        (TinyViT(fused=False, drop_path_rate=0.2), (2, 3, 16, 16)),
        (TinySwin(), (2, 3, 24, 24)),
        (TinyLeViTMlp(), (2, 3, 16, 16)),
        (TinyFPN(), (2, 3, 32, 32)),
        (TfSameNet(), (2, 1, 32, 32)),
    ]
    for model, shape in cases:
        traced = convlens.analyze(model, input_size=shape)
        real = convlens.analyze(model, input_size=shape, device="cpu")
        assert real.totals == traced.totals, type(model).__name__


def test_buffers_a_training_forward_changes_are_put_back() -> None:
    class Running(nn.Module):
        """A BatchNorm (its counter moves in training) and a buffer the forward updates."""

        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.register_buffer("steps", torch.zeros(()))
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.steps.add_(1)
            return self.conv(self.bn(x))

    model = Running().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for device in ("meta", "cpu"):
        convlens.analyze(model, input_size=(2, 3, 4, 4), device=device)
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), device
    assert model.training and model.bn.training
