"""Every registered layer kind, one by one: it has a lowering (tracer handlers, a module
builder, random configurations) in the same family as its rule, and it agrees with
PyTorch.

A kind added to ``core/rules`` without its lowering in ``torch/lowering`` fails
``test_every_kind_has_a_lowering``; each kind's own test then checks random
configurations from its lowering against a real forward (every layer's shape, ``numel``,
``FlopCounterMode``), against autograd's saved tensors, and against the trace of the built
module (the same totals, with a row of the kind).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.core.registry import all_rules, get_rule
from convlens.errors import ConvlensError
from convlens.torch.build import build_module
from convlens.torch.registry import HANDLERS, all_lowerings, get_lowering
from tests.core.oracle import BATCH, network, saved_activation_bytes, traced_input
from tests.core.strategies import KINDS, TRACE_ONLY, kinds_in, layers_of
from tests.core.test_rules_vs_torch import check_or_refused

SRC = Path(__file__).resolve().parents[2] / "src"


def family(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


def test_every_kind_has_a_lowering() -> None:
    lowerings = all_lowerings()
    missing = sorted(set(KINDS) - set(lowerings))
    assert not missing, f"kinds with a rule and no lowering in torch/lowering: {missing}"
    unruled = sorted(set(lowerings) - set(KINDS))
    assert not unruled, f"lowerings of kinds that have no rule in core/rules: {unruled}"
    assert set(all_rules()) >= TRACE_ONLY
    handlers = set(HANDLERS.values())
    claimed = set()
    for kind, lowering in lowerings.items():
        assert lowering.kind == kind
        for handler in lowering.traced_by:
            assert handler in handlers, f"{kind}: {handler.__qualname__} handles no function"
        claimed |= set(lowering.traced_by)
        unknown = lowering.traced_as - set(lowerings)
        assert not unknown, f"{kind} is traced as kinds with no lowering: {unknown}"
        # the rule and the lowering live in files of the same family name
        rule_family = family(get_rule(kind).fn.__module__)
        assert get_rule(kind).fn.__module__ == f"convlens.core.rules.{rule_family}"
        assert lowering.build.__module__ == f"convlens.torch.lowering.{rule_family}", kind
        assert (SRC / "convlens" / "torch" / "lowering" / f"{rule_family}.py").is_file()
    orphans = sorted(h.__qualname__ for h in handlers - claimed)
    assert not orphans, f"tracer handlers that no lowering names: {orphans}"


def test_a_kind_without_a_lowering_is_named() -> None:
    with pytest.raises(KeyError, match="no PyTorch lowering for layer kind 'opaque'"):
        get_lowering("opaque")


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20)
@given(data=st.data())
def test_kind_against_pytorch(kind: str, data: st.DataObject) -> None:
    text = data.draw(layers_of(kind), label="description")
    assert kind in kinds_in(text), f"the examples of {kind} drew no {kind} layer:\n{text}"
    check_or_refused(text)  # shapes of every layer, numel, FlopCounterMode, the trace's totals
    try:
        report = convlens.analyze(text, batch=BATCH)
    except ConvlensError:
        return  # refused, as PyTorch refuses it (checked above)
    net = network(text)
    assert report.totals.saved_activation_bytes == saved_activation_bytes(net, batch=BATCH), text
    traced = convlens.analyze(build_module(net).train(), input_size=traced_input(net), batch=BATCH)
    expected = get_lowering(kind).traced_as
    if expected:  # (none for nn.Identity, which hands back its input)
        recorded = {row.kind for row in traced.layers}
        assert recorded & expected, f"no row of {sorted(expected)} in the trace of\n{text}"
