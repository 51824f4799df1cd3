"""The tracer does each piece of work once: a handler's shape reads are not dispatched
back to the tracer, and a rule runs once per distinct (kind, arguments, input shapes) —
without changing a number."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens.core.numbers import symbol
from convlens.torch import tracer as tracer_module
from convlens.torch.tracer import Tracer, rule_key


def test_a_handler_reads_shapes_without_dispatching() -> None:
    """nn.Conv2d is one traced call (F.conv2d); its handler's x.dim() and x.shape (the
    channel check) and the module-output description are plain reads."""
    calls: list[str] = []
    on_call = Tracer.on_call

    def counting(self: Tracer, func: object, args: tuple, kwargs: dict) -> object:
        calls.append(getattr(func, "__name__", str(func)))
        return on_call(self, func, args, kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tracer, "on_call", counting)
        report = convlens.analyze(nn.Conv2d(3, 8, 3), input_size=(1, 3, 16, 16))
    assert calls == ["conv2d"]
    assert report.totals.params == 8 * 3 * 9 + 8


def test_a_rule_runs_once_for_repeated_layers() -> None:
    runs: list[str] = []
    run_rule = tracer_module.run_rule

    def counting(spec, network, shapes):  # type: ignore[no-untyped-def]
        runs.append(spec.kind)
        return run_rule(spec, network, shapes)

    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    model.append(nn.ReLU())
    expected = convlens.analyze(model, input_size=(2, 4, 8, 8))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracer_module, "run_rule", counting)
        report = convlens.analyze(model, input_size=(2, 4, 8, 8))
    assert runs == ["conv2d", "relu"]  # four rows, two distinct
    assert [r.kind for r in report.layers] == ["conv2d", "relu", "conv2d", "relu"]
    assert report.to_dict() == expected.to_dict()
    assert report.totals.params == 2 * (4 * 4 * 9 + 4)


def test_rule_keys_tell_types_apart() -> None:
    shapes = [(3, 8, 8)]
    key = rule_key("leaky_relu", {"negative_slope": 0.0}, shapes)
    assert key is not None
    assert key != rule_key("leaky_relu", {"negative_slope": -0.0}, shapes)
    assert rule_key("x", {"a": True}, shapes) != rule_key("x", {"a": 1}, shapes)
    assert rule_key("x", {"a": (1, 2)}, shapes) != rule_key("x", {"a": (True, 2)}, shapes)
    assert rule_key("x", {"a": 1}, shapes) != rule_key("x", {"b": 1}, shapes)
    assert rule_key("x", {"a": 1}, shapes) != rule_key("x", {"a": 1}, [(3, 8, 9)])
    # not plain values: the rule simply runs
    assert rule_key("x", {"a": [1, 2]}, shapes) is None
    assert rule_key("x", {"a": symbol("k")}, shapes) is None
    assert rule_key("x", {"a": torch.zeros(1)}, shapes) is None
    assert rule_key("crop", {"like": "a"}, shapes) is None
