"""Sources (module:factory, zoo, run folder), weights files and layer names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from convlens.errors import ArgumentError, DataError
from convlens.interpret.sources import (
    find_layer,
    last_convolution,
    load_source,
    load_weights,
)
from tests.interpret.conftest import TINY_SOURCE
from tests.interpret.models import tiny_cnn


def test_module_factory_source() -> None:
    source = load_source(TINY_SOURCE)
    assert source.num_classes == 4
    assert source.input_size == (32, 32)
    assert not source.model.training
    assert source.class_names is None


def test_size_overrides_the_input_size() -> None:
    assert load_source(TINY_SOURCE, size=(12, 20)).input_size == (12, 20)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_file_replaces_the_factory_weights(tmp_path: Path, suffix: str) -> None:
    trained = tiny_cnn(seed=7)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save(trained.state_dict(), path)
    else:
        save_file(trained.state_dict(), str(path))
    source = load_source(TINY_SOURCE, weights=path)  # the factory's default seed is 0
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(source.model(x), trained(x), rtol=0, atol=0)


def test_weights_of_another_shape_name_the_first_key_and_both_shapes(tmp_path: Path) -> None:
    state = tiny_cnn().state_dict()
    state["features.2.weight"] = torch.zeros(5, 6, 3, 3)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(ArgumentError) as err:
        load_weights(tiny_cnn(), path)
    message = str(err.value)
    assert "'features.2.weight'" in message
    assert "5×6×3×3 in the file" in message and "8×6×3×3 in the model" in message


def test_missing_and_extra_keys_are_named(tmp_path: Path) -> None:
    state = tiny_cnn().state_dict()
    del state["head.bias"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ArgumentError, match=r"'head\.bias' \(4 in the model\) is missing"):
        load_weights(tiny_cnn(), tmp_path / "missing.pt")
    state = {**tiny_cnn().state_dict(), "extra.weight": torch.zeros(2, 2)}
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ArgumentError, match=r"key 'extra\.weight' \(2×2\)"):
        load_weights(tiny_cnn(), tmp_path / "extra.safetensors")


def test_unreadable_weights_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    torch.save({"a": 1}, tmp_path / "notensors.pt")
    for name, pattern in (
        ("junk.pt", "not a readable weights file"),
        ("junk.safetensors", "not a readable weights file"),
        ("notensors.pt", "not a state dict"),
        ("absent.pt", "does not exist"),
    ):
        with pytest.raises(DataError, match=pattern):
            load_weights(tiny_cnn(), tmp_path / name)


def test_unknown_layer_lists_the_closest_names() -> None:
    with pytest.raises(ArgumentError) as err:
        find_layer(tiny_cnn(), "features.5")
    message = str(err.value)
    assert "no layer 'features.5'" in message
    closest = message.split("closest names: ")[1].split(" (of")[0].split(", ")
    assert len(closest) == 5 and closest[0].startswith("features.")


class Reordered(nn.Module):
    """Registers its convolutions in the opposite order to the one forward runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Conv2d(4, 4, 3, padding=1)
        self.early = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.late(self.early(x)).mean(dim=(2, 3)))


def test_last_convolution_is_the_last_one_run() -> None:
    assert last_convolution(tiny_cnn(), (8, 8)) == "features.2"
    assert last_convolution(Reordered(), (8, 8)) == "late"


def test_not_a_classifier_and_a_wrong_input() -> None:
    with pytest.raises(ArgumentError, match="not a classifier: it returned 1×2×32×32"):
        load_source("tests.interpret.models:not_a_classifier")
    with pytest.raises(ArgumentError, match="not a classifier: it returned 1×3×32×32"):
        load_source("torch.nn:Identity")  # a Module class is its own factory
    with pytest.raises(ArgumentError, match="does not accept a 1×3×32×32 image"):
        load_source("zoo:lenet5")  # reads one grey channel
    with pytest.raises(ArgumentError, match="neither a classify run folder"):
        load_source("no-such-folder")


def test_zoo_source_uses_the_entry_input_and_size() -> None:
    source = load_source("zoo:resnet18", size=(32, 32))
    assert source.num_classes == 1000
    assert last_convolution(source.model, (32, 32)) == "layer4.1.conv2"


def test_run_folder_without_a_classify_lab_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import convlens.labs

    monkeypatch.delattr(convlens.labs, "load_run")
    with pytest.raises(ArgumentError, match="no classify lab"):
        load_source(str(tmp_path))
