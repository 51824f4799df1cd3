"""``frozen.quick`` builds the very record the dataclass's own ``__init__`` builds."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from convlens.core.frozen import quick
from convlens.core.records import LayerRecord, LayerSpec, Network
from convlens.core.steps import Step


def _record_values() -> dict[str, object]:
    step = Step("shape", "output height", "H_out", "{I}", {"I": 3}, 3)
    return {
        "index": 1,
        "name": "conv1",
        "kind": "conv2d",
        "line": None,
        "inputs": ("input",),
        "input_shapes": ((3, 8, 8),),
        "output_shape": (4, 6, 6),
        "params": 112,
        "trainable_params": 112,
        "frozen_params": 0,
        "buffers": 0,
        "macs": 3888,
        "bias_flops": 144,
        "other_flops": 0,
        "flops": 7920,
        "connections": 4032,
        "rf": (3, 3),
        "jump": (1, 1),
        "start": (1, 1),
        "rf_status": "ok",
        "activation_bytes": 576,
        "saved_bytes": 768,
        "warnings": (),
        "steps": (step,),
    }


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (LayerRecord, _record_values()),
        (
            LayerRecord,
            {**_record_values(), "origin": "Conv2d", "args": {"k": 3}, "rf_period": (1, 1)},
        ),
        (LayerSpec, {"name": "a", "kind": "relu", "args": {}, "inputs": ("input",)}),
        (
            Step,
            {"topic": "rf", "quantity": "q", "symbol": "RF", "template": "{a}", "values": {"a": 1}},
        ),
        (
            LayerSpec,
            {"name": "a", "kind": "add", "args": {}, "inputs": ("x", "y"), "inplace": True},
        ),
    ],
)
def test_quick_is_the_dataclass_init(cls: type, values: dict[str, object]) -> None:
    made, built = quick(cls, **values), cls(**values)
    assert made == built
    assert type(made) is cls
    assert dataclasses.astuple(made) == dataclasses.astuple(built)
    assert repr(made) == repr(built)
    assert pickle.loads(pickle.dumps(made)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "other"  # type: ignore[misc]


def test_quick_gives_each_record_its_own_default_factory_value() -> None:
    a, b = quick(LayerRecord, **_record_values()), quick(LayerRecord, **_record_values())
    assert a.args == {} and a.args is not b.args


def test_quick_refuses_what_init_refuses() -> None:
    with pytest.raises(TypeError, match="unexpected fields \\['nmae'\\]"):
        quick(LayerSpec, nmae="a", kind="relu", args={}, inputs=())
    with pytest.raises(TypeError, match="missing the fields \\['inputs'\\]"):
        quick(LayerSpec, name="a", kind="relu", args={})
    with pytest.raises(TypeError, match="frozen records"):
        quick(dataclasses.make_dataclass("Loose", ["a"]), a=1)
    assert quick(Network, input_shape=(3, 8, 8), layers=()) == Network((3, 8, 8), ())
