"""Every zoo entry with a ``description`` agrees exactly with the module it describes.

For each entry whose ``description`` names a file under
``src/convlens/zoo/descriptions/``, the analysed description at the entry's
default input must give exactly the module's parameters
(``sum(p.numel() for p in model.parameters())``, which must also be
``entry.exact_params``), buffers, final output shape and MACs
(``FlopCounterMode`` total // 2 of a batch-1 forward). The module is built and
run on the meta device in eval mode, so nothing is allocated or computed.
Beyond the totals, the tensors themselves must agree: the description built
with ``build_module`` has the same multiset of parameter and buffer shapes as the
zoo module, i.e. the same convolutions, bias choices, BatchNorms and classifier.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlens.api import analyze, load_network
from convlens.core.analyze import Report
from convlens.torch.build import build_module
from convlens.zoo import get_entry, list_models
from convlens.zoo.measure import build, flatten_output_shapes

DESCRIPTIONS = files("convlens.zoo") / "descriptions"
DESCRIBED = [name for name in list_models() if get_entry(name).description]

# Entries the language cannot express (yet), and what it lacks for each.
NOT_DESCRIBED = {
    "lenet5": "trainable subsampling (2x2 sum x a coefficient + a bias per map), C3's partial "
    "connection table, the scaled tanh 1.7159·tanh(2a/3) and the Euclidean RBF output layer",
    "yolov3": "more than one output (three detection maps)",
}

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Module:
    params: int
    buffers: int
    output_shapes: tuple[Shape, ...]
    macs: int
    param_shapes: Counter[Shape]
    buffer_shapes: Counter[Shape]


def tensor_shapes(module: nn.Module) -> tuple[Counter[Shape], Counter[Shape]]:
    return (
        Counter(tuple(p.shape) for p in module.parameters()),
        Counter(tuple(b.shape) for b in module.buffers()),
    )


@functools.cache
def zoo_module(name: str) -> Module:
    """The zoo module at its defaults, on meta, in eval mode: one batch-1 forward."""
    model = build(name)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        output = model(torch.empty((1, *get_entry(name).default_input), device="meta"))
    return Module(
        params=sum(p.numel() for p in model.parameters()),
        buffers=sum(b.numel() for b in model.buffers()),
        output_shapes=flatten_output_shapes(output),
        macs=counter.get_total_flops() // 2,
        param_shapes=tensor_shapes(model)[0],
        buffer_shapes=tensor_shapes(model)[1],
    )


def description_file(name: str) -> Traversable:
    filename = get_entry(name).description
    assert filename is not None
    return DESCRIPTIONS / filename


@functools.cache
def described(name: str) -> Report:
    """The description analysed as written (its own ``input`` line)."""
    return analyze(description_file(name).read_text(encoding="utf-8"))


def test_the_expressible_entries_have_descriptions() -> None:
    expected = {
        "colour_cnn", "colour_unet", "alexnet", "vgg11", "vgg16", "vgg19",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "se_resnet50",
        "densenet121", "densenet169", "densenet201", "mobilenet_v1", "mobilenet_v2",
        "googlenet", "darknet53", "unet", "unet_same",
        "deeplabv3_resnet50", "deeplabv3_resnet101", "yolov1",
    }  # fmt: skip
    assert expected <= set(DESCRIBED)
    for name in NOT_DESCRIBED:
        assert get_entry(name).description is None, f"{name} has a description now: "
        "remove it from NOT_DESCRIBED"


def test_every_description_file_belongs_to_an_entry() -> None:
    on_disk = {f.name for f in DESCRIPTIONS.iterdir() if f.name.endswith(".cnn")}
    assert on_disk == {get_entry(name).description for name in DESCRIBED}


@pytest.mark.parametrize("name", DESCRIBED)
def test_description_is_at_the_default_input(name: str) -> None:
    assert description_file(name).is_file()
    report = described(name)
    assert tuple(report.network.input_shape) == get_entry(name).default_input
    text = description_file(name).read_text(encoding="utf-8")
    assert text.startswith("# "), "a header comment citing the paper comes first"


@pytest.mark.parametrize("name", DESCRIBED)
def test_parameters_match_the_module(name: str) -> None:
    params = described(name).totals.params
    assert params == zoo_module(name).params
    assert params == get_entry(name).exact_params


@pytest.mark.parametrize("name", DESCRIBED)
def test_buffers_match_the_module(name: str) -> None:
    assert described(name).totals.buffers == zoo_module(name).buffers


@pytest.mark.parametrize("name", DESCRIBED)
def test_output_shape_matches_the_module(name: str) -> None:
    shape = tuple(described(name).layers[-1].output_shape)
    assert (shape,) == zoo_module(name).output_shapes == get_entry(name).output_shapes


@pytest.mark.parametrize("name", DESCRIBED)
def test_macs_match_the_flop_counter(name: str) -> None:
    assert described(name).totals.macs == zoo_module(name).macs


@pytest.mark.parametrize("name", DESCRIBED)
def test_same_tensors_as_the_module(name: str) -> None:
    """Layer for layer: the same weight, bias, BatchNorm and buffer shapes, as multisets."""
    with torch.device("meta"):
        module = build_module(described(name).network)
    params, buffers = tensor_shapes(module)
    assert params == zoo_module(name).param_shapes
    assert buffers == zoo_module(name).buffer_shapes


# -- engine bugs found while writing the descriptions (fixed) -------------------------------


def test_identifier_with_digit_x_digit_is_one_name() -> None:
    text = "input 3x8x8\nblock b(ch1x1):\n    conv2d ch1x1 k=1\nb 16\n"
    assert analyze(text).layers[-1].output_shape == (16, 8, 8)


def test_build_module_accepts_batchnorm_after_global_pool() -> None:
    with torch.device("meta"):
        module = build_module(load_network("input 4x8x8\nglobal_avgpool\nbatchnorm2d\n"))
    assert sum(p.numel() for p in module.parameters()) == 8


def test_build_module_builds_view() -> None:
    with torch.device("meta"):
        module = build_module(load_network("input 4x2x2\nflatten\nview (2, 2, 4)\n"))
        assert module(torch.empty(1, 4, 2, 2)).shape == (1, 2, 2, 4)


def test_fractional_upsample_matches_pytorch() -> None:
    text = "input 1x11x11\nupsample 15/11\n"
    report = analyze(text)
    with torch.device("meta"):
        out = build_module(load_network(text))(torch.empty(1, 1, 11, 11))
    assert tuple(out.shape[1:]) == tuple(report.layers[-1].output_shape)
