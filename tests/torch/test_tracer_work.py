"""The tracer does each piece of work once: a handler's shape reads are not dispatched
back to the tracer, a rule runs once per distinct (kind, arguments, input shapes) in a
process, and a receptive field once per distinct (rule result, input fields)
(``core/memo.py``) — without changing a number."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens.core import analyze as analyze_module
from convlens.core.memo import RF_RESULTS, RULE_RESULTS, Memo, rule_key
from convlens.core.numbers import symbol
from convlens.torch.tracer import Tracer


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


def _counting_rules(patch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of the rules that really run from now on (the tracer and the analyser
    both reach them through ``analyze.remembered_rule``)."""
    runs: list[str] = []
    run_rule = analyze_module.run_rule

    def counting(spec, network, shapes):  # type: ignore[no-untyped-def]
        runs.append(spec.kind)
        return run_rule(spec, network, shapes)

    patch.setattr(analyze_module, "run_rule", counting)
    return runs


def test_a_rule_runs_once_for_repeated_layers() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    model.append(nn.ReLU())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RULE_RESULTS, "_results", {})  # nothing remembered yet
        runs = _counting_rules(patch)
        report = convlens.analyze(model, input_size=(2, 4, 8, 8))
        assert runs == ["conv2d", "relu"]  # four rows, two distinct
        again = convlens.analyze(model, input_size=(2, 4, 8, 8))
        assert runs == ["conv2d", "relu"]  # remembered across analyses
        RULE_RESULTS.clear()
        fresh = convlens.analyze(model, input_size=(2, 4, 8, 8))
        assert runs == ["conv2d", "relu"] * 2
    assert [r.kind for r in report.layers] == ["conv2d", "relu", "conv2d", "relu"]
    assert report.to_dict() == again.to_dict() == fresh.to_dict()
    assert report.totals.params == 2 * (4 * 4 * 9 + 4)


def test_descriptions_share_the_memo_but_symbols_always_run() -> None:
    text = "input 3x32x32\nconv2d 8 k=3 p=1\nrelu\nconv2d 8 k=k p=1"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RULE_RESULTS, "_results", {})
        runs = _counting_rules(patch)
        first = convlens.analyze(text)
        second = convlens.analyze(text)
    # the symbolic conv2d (k) has no key: it runs every time; the others once
    assert runs == ["conv2d", "relu", "conv2d", "conv2d"]
    assert first.to_dict() == second.to_dict()
    assert str(first.totals.params) == str(second.totals.params)


def test_the_memo_is_bounded_and_forgets_the_oldest_first() -> None:
    memo: Memo[object] = Memo(capacity=2)
    cost_a, cost_b, cost_c = (object() for _ in range(3))
    memo.put(("a",), cost_a)
    memo.put(("b",), cost_b)
    memo.put(("a",), cost_a)  # already there: nothing evicted
    assert len(memo) == 2
    memo.put(("c",), cost_c)
    assert len(memo) == 2
    assert memo.get(("a",)) is None
    assert memo.get(("b",)) is cost_b and memo.get(("c",)) is cost_c


def test_rule_keys_tell_types_apart() -> None:
    shapes = [(3, 8, 8)]
    key = rule_key("leaky_relu", {"negative_slope": 0.0}, shapes)
    assert key is not None
    assert key != rule_key("leaky_relu", {"negative_slope": -0.0}, shapes)
    assert rule_key("x", {"a": True}, shapes) != rule_key("x", {"a": 1}, shapes)
    assert rule_key("x", {"a": (1, 2)}, shapes) != rule_key("x", {"a": (True, 2)}, shapes)
    assert rule_key("x", {"a": 1}, shapes) != rule_key("x", {"b": 1}, shapes)
    assert rule_key("x", {"a": 1}, shapes) != rule_key("x", {"a": 1}, [(3, 8, 9)])
    assert rule_key("x", {"a": 0.5}, shapes) != rule_key("x", {"a": "0.5"}, shapes)
    assert rule_key("x", {"a": 0.5}, shapes) != rule_key("x", {"a": 0.5000001}, shapes)
    assert rule_key("x", {"a": 0.5, "b": (1, 2)}, shapes) != rule_key(
        "x", {"a": 0.5, "b": (True, 2)}, shapes
    )
    assert rule_key("bn", {"eps": 1e-5, "affine": True}, shapes) == rule_key(
        "bn", {"eps": 0.00001, "affine": True}, shapes
    )
    # not plain values: the rule simply runs
    assert rule_key("x", {"a": [1, 2]}, shapes) is None
    assert rule_key("x", {"a": symbol("k")}, shapes) is None
    assert rule_key("x", {"a": torch.zeros(1)}, shapes) is None
    assert rule_key("crop", {"like": "a"}, shapes) is None
    assert rule_key("x", {"a": 1}, [(3, symbol("H"), 8)]) is None
    assert rule_key("x", {"a": 1}, [None]) is None  # an input with no known shape


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v3_small", "unet"])
def test_the_module_walk_is_named_modules(name: str) -> None:
    """The trace walks the modules itself (without named_modules' recursive generators):
    same names, same order, duplicates included."""
    from convlens.torch.trace import _named_modules
    from convlens.zoo import create_model

    model = create_model(name)
    shared = nn.ReLU()
    model.add_module("extra", nn.Sequential(shared, nn.Sequential(shared), nn.Identity()))
    assert _named_modules(model) == list(model.named_modules(remove_duplicate=False))


def test_the_module_walk_names_compiled_submodules_as_their_source() -> None:
    from convlens.torch.trace import _named_modules

    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model = nn.Sequential(torch.compile(inner), nn.Flatten())
    names = [name for name, _ in _named_modules(model)]
    assert names == ["", "0", "0", "0.0", "0.1", "1"]


def test_remembered_rules_change_no_number_across_models() -> None:
    """Models that share layers, analysed one after another with the memo warm (each
    reusing the others' rule results), report exactly what they report from scratch."""
    from convlens.zoo import create_model

    names = ["mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet34"]
    models = {name: create_model(name) for name in names}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RULE_RESULTS, "_results", {})
        patch.setattr(RF_RESULTS, "_results", {})
        fresh = {}
        for name, model in models.items():
            RULE_RESULTS.clear()
            RF_RESULTS.clear()
            fresh[name] = convlens.analyze(model, input_size=(2, 3, 64, 64)).to_dict()
        RULE_RESULTS.clear()
        RF_RESULTS.clear()
        for name, model in reversed(models.items()):  # each meets the others' layers
            assert convlens.analyze(model, input_size=(2, 3, 64, 64)).to_dict() == fresh[name]
        for name, model in models.items():  # and itself again, everything remembered
            assert convlens.analyze(model, input_size=(2, 3, 64, 64)).to_dict() == fresh[name]
        assert len(RULE_RESULTS) > 0 and len(RF_RESULTS) > 0


def test_a_receptive_field_is_computed_once_per_distinct_input() -> None:
    """The second analysis of the same layers composes no span and writes no step; one at
    another input size, or a description with a symbol (its rule result is new each
    time), computes its fields again — and each is what it is from scratch."""
    composed: list[str] = []
    node_rf = analyze_module.node_rf

    def counting(inputs, *maps):  # type: ignore[no-untyped-def]
        composed.append("rf")
        return node_rf(inputs, *maps)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    text = "input 3x32x32\nconv2d 8 k=3\nconv2d 8 k=k s=2"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analyze_module, "node_rf", counting)
        first = convlens.analyze(model, input_size=(1, 3, 32, 32))
        assert len(composed) == 4
        assert convlens.analyze(model, input_size=(1, 3, 32, 32)).to_dict() == first.to_dict()
        assert len(composed) == 4  # all four remembered
        bigger = convlens.analyze(model, input_size=(1, 3, 40, 40))
        assert len(composed) == 8
        described = [convlens.analyze(text) for _ in range(2)]
        assert len(composed) == 8 + 2 + 1  # the symbolic layer (k) is new each time
        RF_RESULTS.clear()
        RULE_RESULTS.clear()
        assert convlens.analyze(model, input_size=(1, 3, 40, 40)).to_dict() == bigger.to_dict()
        assert str(convlens.analyze(text).to_dict()) == str(described[1].to_dict())
    assert [r.rf for r in first.layers] == [(3, 3), (3, 3), (4, 4), (8, 8)]
    assert [r.rf for r in bigger.layers] == [(3, 3), (3, 3), (4, 4), (8, 8)]


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet18", "unet_same", "densenet121"])
def test_module_outputs_are_the_real_forwards(name: str) -> None:
    """Every module's output as the report describes it (``--depth``) is what a real
    forward of the module returns, per sample."""
    from convlens.torch.trace import trace
    from convlens.zoo import create_model

    model = create_model(name).eval()
    real: dict[str, str] = {}
    names = {id(m): n for n, m in model.named_modules()}

    def note(module: nn.Module, _: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            real[names[id(module)]] = "×".join(str(d) for d in output.shape[1:])

    handles = [m.register_forward_hook(note) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
    described = dict(trace(model, (2, 3, 64, 64)).network.module_outputs)
    assert len(real) > 50
    assert {n: described[n] for n in real} == real
