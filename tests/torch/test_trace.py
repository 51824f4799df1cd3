"""Shape-only tracing of nn.Modules against PyTorch: every zoo model, and the hard cases."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import convlens
from convlens.zoo import create_model, get_entry, list_models
from tests.core.oracle import impulse_extents
from tests.torch.saved import saved_bytes


def meta_truth(model: nn.Module, shape: tuple) -> tuple[int, int, int, tuple]:
    """(params, buffers, MACs, output shape) as PyTorch measures them on the meta device."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model.eval()(torch.empty(1, *shape, device="meta"))
    outs = (
        list(out.values())
        if isinstance(out, dict)
        else list(out)
        if isinstance(out, tuple | list)
        else [out]
    )
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    shapes = tuple(tuple(o.shape[1:]) for o in outs)
    return params, buffers, counter.get_total_flops() // 2, shapes


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_matches_pytorch(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    shape = tuple(get_entry(name).default_input)
    report = convlens.analyze(model, input_size=(1, *shape))
    params, buffers, macs, out_shape = meta_truth(model, shape)
    assert report.totals.params == params
    assert report.totals.buffers == buffers
    assert report.totals.macs == macs
    produced = {tuple(r.output_shape) for r in report.layers}
    assert all(shape in produced for shape in out_shape)  # every returned map


SAVED_CASES = {
    "lenet5": (1, 32, 32),
    "colour_cnn": (1, 32, 32),
    "colour_unet": (1, 32, 32),
    "alexnet": (3, 64, 64),
    "vgg11": (3, 32, 32),
    "resnet18": (3, 32, 32),
    "resnet50": (3, 32, 32),
    "densenet121": (3, 32, 32),
    "googlenet": (3, 64, 64),
    "se_resnet50": (3, 32, 32),
    "unet_same": (3, 32, 32),
    "darknet53": (3, 32, 32),
    "yolov3": (3, 64, 64),
    "mobilenet_v1": (3, 64, 64),
    "mobilenet_v2": (3, 64, 64),
    "unet": (1, 188, 188),
    "vgg16": (3, 32, 32),
    "deeplabv3_resnet50": (3, 64, 64),
    "densenet169": (3, 32, 32),
    "resnet101": (3, 32, 32),
    "yolov1": (3, 448, 448),
    "resnet34": (3, 32, 32),
    "resnet152": (3, 32, 32),
    "vgg19": (3, 32, 32),
    "densenet201": (3, 32, 32),
    "deeplabv3_resnet101": (3, 32, 32),
    **{f"cifar_{kind}{depth}": (3, 32, 32) for kind in ("resnet", "plain") for depth in (20, 32)},
    **{f"cifar_{kind}{depth}": (3, 8, 8) for kind in ("resnet", "plain") for depth in (44, 56)},
    **{f"cifar_{kind}110": (3, 8, 8) for kind in ("resnet", "plain")},
    "cifar_resnet9": (3, 32, 32),
    "unet_valid": (1, 188, 188),
    "deeplabv3_cifar": (1, 64, 64),
    "darknet19": (3, 32, 32),
    "yolov2": (3, 64, 64),
    "mobilenet_v3_small": (3, 64, 64),
    "mobilenet_v3_large": (3, 64, 64),
    "efficientnet_b0": (3, 64, 64),  # drop-path's per-sample masks in training
}


def test_every_zoo_model_is_checked_against_autograd() -> None:
    assert set(SAVED_CASES) == set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_no_zoo_model_is_partial(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    report = convlens.analyze(model, input_size=(2, *get_entry(name).default_input))
    assert report.totals.unsupported == ()
    assert not any("partial" in w for w in report.warnings)


@pytest.mark.parametrize("name", sorted(SAVED_CASES))
def test_saved_activations_equal_autograd(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.rand(2, *SAVED_CASES[name])
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.saved_activation_bytes == saved_bytes(model, x)


def test_partly_frozen_model_saves_what_autograd_saves() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).train()
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.requires_grad_(True)  # fine-tuning the last layer only
    x = torch.rand(2, 3, 32, 32)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.saved_activation_bytes == saved_bytes(model, x) == 2 * 512 * 4
    assert report.totals.trainable_params == 512 * 10 + 10


def test_model_is_left_untouched() -> None:
    model = create_model("resnet18").train()
    before = copy.deepcopy(model.state_dict())
    convlens.analyze(model, input_size=(1, 3, 64, 64))
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).device.type == "cpu"


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.unused = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))  # one module, called twice


def test_shared_module_counted_once_and_unused_module_listed() -> None:
    model = Shared()
    report = convlens.analyze(model, input_size=(1, 4, 8, 8))
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.macs == 2 * (4 * 8 * 8 * 4 * 9)  # both calls cost
    not_run = [r for r in report.layers if r.kind == "params_only"]
    assert [r.name for r in not_run] == ["unused"] and not_run[0].params == 10 * 10 + 10


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = F.relu(F.conv2d(x, self.w, padding=1))
        z = F.interpolate(F.max_pool2d(y, 2), scale_factor=2) + y
        return {"out": torch.cat([z, y], dim=1)}


def test_functional_model_returning_a_dict() -> None:
    report = convlens.analyze(Functional(), input_size=(2, 3, 16, 16))
    kinds = [r.kind for r in report.layers]
    assert kinds == ["conv2d", "relu", "maxpool2d", "upsample", "add", "concat"]
    assert report.totals.params == 8 * 3 * 9
    assert report.layers[-1].output_shape == (16, 16, 16)
    assert report.totals.macs == 2 * 8 * 16 * 16 * 27


def test_transposed_and_depthwise_transposed_convolutions() -> None:
    for groups in (1, 4):
        model = nn.Sequential(
            nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1, groups=groups)
        )
        report = convlens.analyze(model, input_size=(1, 4, 5, 5))
        params, _, macs, shape = meta_truth(model, (4, 5, 5))
        assert (report.totals.params, report.totals.macs) == (params, macs)
        assert (report.layers[-1].output_shape,) == shape == ((8, 10, 10),)


def test_input_without_batch_dimension_and_tensor_input() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    a = convlens.analyze(model, input_size=(3, 8, 8))
    b = convlens.analyze(model, input=torch.zeros(1, 3, 8, 8))
    assert a.totals.macs == b.totals.macs == 4 * 6 * 6 * 27


def test_operations_without_a_rule_make_the_report_partial() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1)

    report = convlens.analyze(Odd(), input_size=(1, 3, 4, 4))
    assert report.totals.unsupported == ("cumsum",)
    assert any("partial" in w for w in report.warnings)


def test_cli_analyses_a_zoo_model_and_a_factory(tmp_path) -> None:
    from typer.testing import CliRunner

    from convlens.cli.main import app

    result = CliRunner().invoke(
        app, ["analyze", "zoo:resnet18?num_classes=10", "--input", "3x64x64", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["totals"]["params"] == 11_181_642
    bad = CliRunner().invoke(app, ["analyze", "no_such_module:factory", "--input", "3x8x8"])
    assert bad.exit_code == 2 and "cannot import module 'no_such_module'" in bad.output
    assert "Traceback" not in bad.output


def test_cli_model_arguments_and_explain_of_a_zoo_layer() -> None:
    from typer.testing import CliRunner

    from convlens.cli.main import app

    runner = CliRunner()
    a = runner.invoke(
        app,
        ["analyze", "zoo:resnet18", "--arg", "num_classes=10", "--input", "3x64x64", "-f", "json"],
    )
    b = runner.invoke(
        app, ["analyze", "zoo:resnet18?num_classes=10", "--input", "3x64x64", "-f", "json"]
    )
    assert a.exit_code == b.exit_code == 0 and a.output == b.output
    explained = runner.invoke(
        app, ["explain", "zoo:resnet18", "--layer", "conv1", "--what", "shape"]
    )
    assert explained.exit_code == 0
    assert "⌊(224 + 2·3 − 1·(7 − 1) − 1)/2⌋ + 1 = 112" in explained.output
    bad = runner.invoke(app, ["analyze", "zoo:resnet18", "--arg", "num_clases=10"])
    assert bad.exit_code == 2 and "num_classes" in bad.output


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v2", "colour_unet", "googlenet", "unet_same", "lenet5"]
)
def test_real_forward_gives_the_same_report(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    entry = get_entry(name)
    shape = (
        (1, *entry.default_input)
        if name in ("colour_unet", "lenet5")
        else (1, entry.default_input[0], 64, 64)
    )
    traced = convlens.analyze(model, input_size=shape)
    real = convlens.analyze(model, input_size=shape, device="cpu")
    assert traced.to_dict()["totals"] == real.to_dict()["totals"]
    assert [r.output_shape for r in traced.layers] == [r.output_shape for r in real.layers]


# Peak inference memory depends on how a module schedules its tensors, not only on the
# layers: torchvision's DenseNet concatenates all earlier features anew in every layer
# (the description joins them incrementally, the same arithmetic), and a traced SE block
# holds its pooled vector and gate as separate tensors (the `se` kind is one layer).
PEAK_DIFFERS = {"densenet121", "densenet169", "densenet201", "se_resnet50"}
DESCRIBED = [n for n in list_models() if get_entry(n).description]


@pytest.mark.parametrize("name", DESCRIBED)
def test_description_and_module_give_identical_reports(name: str) -> None:
    """The same rules serve both front-ends: a zoo description and its module agree."""
    from importlib.resources import files

    entry = get_entry(name)
    text = (files("convlens.zoo") / "descriptions" / entry.description).read_text()
    described = convlens.analyze(text)
    with torch.device("meta"):
        traced = convlens.analyze(create_model(name), input_size=(1, *entry.default_input))
    fields = [
        "params",
        "trainable_params",
        "frozen_params",
        "buffers",
        "macs",
        "flops",
        "param_bytes",
        "buffer_bytes",
        "grad_bytes",
        "optimizer_bytes",
        "saved_activation_bytes",
        "rf",
        "jump",
        "start",
        "rf_status",
    ]
    if name not in PEAK_DIFFERS:
        fields += ["peak_activation_bytes", "training_bytes"]
    for field in fields:
        assert getattr(described.totals, field) == getattr(traced.totals, field), field


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("colour_cnn", {"num_filters": 2, "num_colours": 2}, (1, 96, 96)),
        ("colour_unet", {"num_filters": 2, "num_colours": 2}, (1, 96, 96)),
        ("unet_same", {"base_channels": 2, "depth": 2, "in_channels": 1}, (1, 96, 96)),
    ],
)
def test_receptive_fields_through_skips_equal_the_gradient_method(name, kwargs, shape) -> None:
    model = create_model(name, **kwargs)
    report = convlens.analyze(model, input_size=(1, *shape))
    last = [r for r in report.layers if r.rf_status == "ok"][-1]
    for axis in (0, 1):
        rows = impulse_extents(model, shape, axis)
        inner = [(o, lo, hi) for o, lo, hi in rows if lo >= 8 and hi <= shape[1 + axis] - 9]
        assert len(inner) > last.rf_period[axis]
        assert max(hi - lo + 1 for _, lo, hi in inner) == last.rf[axis]


@pytest.mark.parametrize("kwargs", [{}, {"connection_table": False}, {"rbf_output": False}])
def test_lenet5_is_exact_in_every_variant(kwargs: dict) -> None:
    """Trainable subsampling (x·w + b per map), C3's kernel scattered from its parameters
    (a computed weight that backward keeps) and the Euclidean RBF output ((x − w)², summed)
    have rules: nothing partial, and every figure equals PyTorch's."""
    torch.manual_seed(0)
    model = create_model("lenet5", **kwargs).train()
    x = torch.rand(3, 1, 32, 32)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert report.totals.unsupported == ()
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.buffers == sum(b.numel() for b in model.buffers())
    assert report.totals.saved_activation_bytes == saved_bytes(model, x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model.eval()(x)
    assert report.totals.macs == counter.get_total_flops() // 2
    assert tuple(out.shape[1:]) in {tuple(r.output_shape) for r in report.layers}


def test_lenet5_subsampling_and_rbf_rows_as_arithmetic() -> None:
    report = convlens.analyze(create_model("lenet5"), input_size=(2, 1, 32, 32))
    rows = [r for r in report.layers if r.name.startswith(("s2", "output", "c3"))]
    assert [(r.name, r.kind) for r in rows] == [
        ("s2", "avgpool2d"),
        ("s2.scalar_op", "scalar_op"),
        ("s2.tensor_op", "tensor_op"),
        ("s2.tensor_op_1", "tensor_op"),
        ("c3", "conv2d"),
        ("output", "view"),
        ("output.tensor_op", "tensor_op"),
        ("output.mul", "mul"),
        ("output.reduce", "reduce"),
        ("c3 (parameters)", "params_only"),
    ]
    layers = {r.name: r for r in report.layers}
    # S2: the 2×2 sum times a coefficient per map keeps that sum (for the coefficient's
    # gradient); adding the bias keeps nothing. 6 + 6 parameters, one FLOP per element.
    assert (layers["s2.tensor_op"].params, layers["s2.tensor_op_1"].params) == (6, 6)
    assert layers["s2.tensor_op"].saved_bytes == 2 * 6 * 14 * 14 * 4
    assert layers["s2.tensor_op_1"].saved_bytes == 0
    assert layers["s2.tensor_op"].other_flops == 2 * 6 * 14 * 14
    # C3: the input and the dense (16, 6, 5, 5) kernel scattered from 60·25 weights
    assert layers["c3"].saved_bytes == 2 * 6 * 14 * 14 * 4 + 16 * 6 * 5 * 5 * 4
    assert layers["c3 (parameters)"].params == 60 * 25 + 16
    # RBF: x − w with the (10, 84) prototypes (a buffer), squared, summed over 84
    assert layers["output.tensor_op"].buffers == 10 * 84
    assert layers["output.tensor_op"].output_shape == (10, 84)
    assert layers["output.reduce"].output_shape == (10,)
    assert layers["output.reduce"].other_flops == 2 * 10 * (84 - 1)
    assert layers["output.reduce"].saved_bytes == 0


def test_lenet5_standard_layers_match_the_paper() -> None:
    """LeCun et al. 1998: trainable parameters and connections of C1, C5 and F6."""
    report = convlens.analyze(create_model("lenet5"), input_size=(1, 1, 32, 32))
    layers = {r.name: r for r in report.layers}
    assert (layers["c1"].params, layers["c1"].connections) == (156, 28 * 28 * 6 * (25 + 1))
    assert layers["c5"].params == layers["c5"].connections == 120 * (16 * 25 + 1) == 48_120
    assert layers["f6"].params == layers["f6"].connections == 84 * (120 + 1) == 10_164


def test_analysis_restores_the_garbage_collector() -> None:
    import gc

    assert gc.isenabled()
    convlens.analyze(nn.Sequential(nn.Conv2d(1, 1, 3)), input_size=(1, 1, 8, 8))
    assert gc.isenabled()
    gc.disable()
    try:
        convlens.analyze(nn.Sequential(nn.Conv2d(1, 1, 3)), input_size=(1, 1, 8, 8))
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


class TwoInputs(nn.Module):
    """An image and a mask, joined after a branch each; a non-tensor keyword too."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 4, 3, padding=1)
        self.mask = nn.Conv2d(1, 4, 1)
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.head(torch.relu(self.image(x) + self.mask(mask) * scale))


def test_several_inputs_positional_and_by_name() -> None:
    model = TwoInputs()
    x, mask = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    by_position = convlens.analyze(model, input=[x, mask])
    by_name = convlens.analyze(model, input={"x": x, "mask": mask, "scale": 0.5})
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, mask)
    for report in (by_position, by_name):
        assert report.totals.params == sum(p.numel() for p in model.parameters())
        assert report.totals.macs == counter.get_total_flops() // 2
        assert report.layers[-1].output_shape == (2, 16, 16)
        # the field is measured on the first input: the image branch and the head
        assert report.totals.rf == (3 + 2, 3 + 2)
    assert by_position.totals.saved_activation_bytes == saved_bytes(model, x, mask)


def test_zoo_models_for_counting_skip_initialisation_and_restore_it() -> None:
    from torch.nn import init

    from convlens.api import uninitialised_weights

    before = init.kaiming_uniform_
    with uninitialised_weights():
        assert init.kaiming_uniform_ is not before
        model = create_model("resnet18")
    assert init.kaiming_uniform_ is before
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("name", list_models())
def test_layer_names_are_unique(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    report = convlens.analyze(model, input_size=(1, *get_entry(name).default_input))
    names = [r.name for r in report.layers]
    assert len(names) == len(set(names))


def test_a_wrong_input_channel_count_is_an_error_naming_the_module() -> None:
    from typer.testing import CliRunner

    from convlens.cli.main import app
    from convlens.errors import ConvlensError

    with pytest.raises(
        ConvlensError,
        match=r"module 'conv1' \(Conv2d\) expects 3 input "
        r"channels but its input has shape \(1, 1, 64, 64\)",
    ):
        convlens.analyze(create_model("resnet18"), input_size=(1, 1, 64, 64))
    with pytest.raises(ConvlensError, match="expects 10 input features"):
        convlens.analyze(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), input_size=(1, 3, 2, 2))
    result = CliRunner().invoke(app, ["analyze", "zoo:resnet18", "--input", "1x64x64"])
    assert result.exit_code == 2 and "expects 3 input channels" in result.output
    assert "Traceback" not in result.output


class AttentionBlock(nn.Module):
    """GroupNorm, LayerNorm, a qkv projection, attention and a matrix product."""

    def __init__(self) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4)
        self.proj = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.ln(self.gn(x).flatten(2).transpose(1, 2))  # (N, L=16, C=8)
        q, k, v = (f(t).unsqueeze(1) for f in (self.q, self.k, self.v))  # one head
        a = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # (N, 16, 4)
        return self.proj(a) + torch.matmul(t, t.transpose(1, 2)).mean(-1, keepdim=True)


def test_normalisation_matmul_and_attention_match_pytorch() -> None:
    torch.manual_seed(0)
    model = AttentionBlock().train()
    x = torch.rand(2, 8, 4, 4)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    kinds = [r.kind for r in report.layers]
    for kind in ("group_norm", "layer_norm", "attention", "matmul"):
        assert kind in kinds
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert report.totals.macs == counter.get_total_flops() // 2
    row = next(r for r in report.layers if r.kind == "attention")
    assert row.macs == 2 * 1 * 16 * 16 * (8 + 4)  # N·H·L·S·(E + Ev): QKᵀ, then weights · V
    assert report.totals.saved_activation_bytes == saved_bytes(model, x)


class EqualHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # strided: each nn.Linear keeps its own contiguous copy of t, as the trace counts
        t = x.flatten(2).transpose(1, 2)
        q, k, v = (f(t).unsqueeze(1) for f in (self.q, self.k, self.v))
        return F.scaled_dot_product_attention(q, k, v)


def test_attention_saved_bytes_follow_the_cpu_flash_kernel() -> None:
    # Equal head sizes, no dropout, 4-D: PyTorch's CPU dispatcher picks its flash kernel,
    # which keeps q, k, v, the output and a log-sum-exp; the row says which kernel it
    # counted, and the figure is exact.
    torch.manual_seed(0)
    model = EqualHeads().train()
    x = torch.rand(2, 8, 4, 4)
    report = convlens.analyze(model, input_size=tuple(x.shape))
    assert any("CPU flash attention kernel" in w for w in report.warnings)
    row = next(r for r in report.layers if r.kind == "attention")
    assert row.macs == 2 * 1 * 16 * 16 * (8 + 8)
    assert report.totals.saved_activation_bytes == saved_bytes(model, x)
