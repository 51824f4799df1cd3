"""The registry: decorator, lookup, argument validation, names."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import torch

from convlens.errors import ArgumentError, ConvlensError
from convlens.zoo import Citation, create_model, get_entry, list_models, register_model
from convlens.zoo import registry as registry_module

ISSUE_NAMES = {
    "alexnet", "vgg11", "vgg16", "vgg19", "googlenet",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet169", "densenet201", "mobilenet_v2",
    "deeplabv3_resnet50", "deeplabv3_resnet101",
    "lenet5", "mobilenet_v1", "se_resnet50", "unet", "unet_same",
    "colour_cnn", "colour_unet", "yolov1", "darknet53", "yolov3",
    "darknet19", "yolov2",
}  # fmt: skip
# He et al. 2016 §4.2 and ResNet-9 (the classification lab's issue)
ISSUE_NAMES |= {f"cifar_{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110)}
ISSUE_NAMES |= {"cifar_resnet9"}
ISSUE_NAMES |= {"unet_valid", "deeplabv3_cifar"}  # the segmentation lab's issue
# the small many-layered nets of the speed benchmark (issue 16)
ISSUE_NAMES |= {"mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"}

CITATION = Citation(authors="A. Author and B. Author", title="T", venue="V", year=2000)


@pytest.fixture
def scratch_name() -> Iterator[str]:
    name = "_test_scratch_model"
    yield name
    registry_module._REGISTRY.pop(name, None)


def test_every_issue_name_is_registered() -> None:
    assert set(list_models()) == ISSUE_NAMES


def test_list_models_pattern_and_natural_order() -> None:
    assert list_models("resnet*") == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert list_models("*unet*") == ["colour_unet", "unet", "unet_same", "unet_valid"]
    assert list_models("nothing*") == []


def test_duplicate_names_are_refused(scratch_name: str) -> None:
    def factory() -> torch.nn.Module:
        """Scratch."""
        return torch.nn.Identity()

    decorate = register_model(
        scratch_name, citation=CITATION, default_input=(1,), exact_params=0, output_shapes=((1,),)
    )
    decorate(factory)
    with pytest.raises(RuntimeError, match="already registered"):
        decorate(factory)
    with pytest.raises(RuntimeError, match="already registered"):
        register_model(
            "resnet50", citation=CITATION, default_input=(1,), exact_params=0, output_shapes=()
        )(factory)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ArgumentError, match="Did you mean 'densenet121'"):
        create_model("densnet121")
    with pytest.raises(ConvlensError, match="unknown model"):
        get_entry("zzzz")


def test_unknown_argument_is_refused_with_the_accepted_ones() -> None:
    with pytest.raises(ArgumentError) as err:
        create_model("colour_unet", num_filter=32)
    message = str(err.value)
    assert "no argument 'num_filter'" in message
    assert "Did you mean 'num_filters'" in message
    assert "kernel, num_filters, num_colours, in_channels" in message


def test_invalid_value_becomes_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match="width_mult must be positive"):
        create_model("mobilenet_v2", width_mult=0)


def test_arguments_come_from_the_factory_signature() -> None:
    entry = get_entry("colour_unet")
    assert [(a.name, a.default) for a in entry.arguments] == [
        ("kernel", 3), ("num_filters", 32), ("num_colours", 24), ("in_channels", 1),
    ]  # fmt: skip
    assert entry.argument_defaults()["num_colours"] == 24


def test_citation_short_forms() -> None:
    assert get_entry("resnet50").citation.short() == "He et al."
    assert get_entry("vgg16").citation.short() == "Simonyan & Zisserman"
    assert get_entry("yolov3").citation.short() == "Redmon & Farhadi"
    assert "2016" in str(get_entry("resnet50").citation)


def test_arguments_reach_the_module() -> None:
    with torch.device("meta"):
        model = create_model("resnet18", num_classes=10)
    assert model.fc.out_features == 10


def test_building_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a zoo model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    for name in list_models():
        with torch.device("meta"):
            create_model(name)


def test_coerce_arguments_from_text() -> None:
    from convlens.zoo import coerce_arguments

    typed = coerce_arguments(
        "deeplabv3_resnet50", {"num_classes": "5", "aux_loss": "true", "atrous_rates": "6,12,18"}
    )
    assert typed == {"num_classes": 5, "aux_loss": True, "atrous_rates": (6, 12, 18)}
    assert coerce_arguments("mobilenet_v2", {"width_mult": "0.5"}) == {"width_mult": 0.5}
    with pytest.raises(ArgumentError, match=r"takes an integer \(default 1000\), got 'ten'"):
        coerce_arguments("resnet50", {"num_classes": "ten"})
    with pytest.raises(ArgumentError, match="Did you mean 'growth_rate'"):
        coerce_arguments("densenet121", {"growth": "12"})
