"""Every registered layer kind, one by one: it has a module builder, a Hypothesis
strategy, a tracer handler, and it agrees with PyTorch.

A kind added to ``core/rules`` without its PyTorch lowering (the module a description
builds, the handler that recognises it in a traced model) or without random
configurations here fails ``test_every_kind_is_covered``; each kind's own test then checks
random configurations against a real forward (every layer's shape, ``numel``,
``FlopCounterMode``), against autograd's saved tensors, and against the trace of the built
module (the same totals, with a row of the kind).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.core.registry import all_rules
from convlens.errors import ConvlensError
from convlens.torch.build import FACTORIES, build_module
from tests.core.oracle import BATCH, network, saved_activation_bytes, traced_input
from tests.core.strategies_nd import ND_KINDS, nd_layers_of
from tests.core.test_rules_vs_torch import (
    check_or_refused,
    conv2d_layers,
    conv_transpose_layers,
    depthwise_layers,
    misc_options,
    pool_layers,
    sizes,
    tensor_options,
)

# Rows only the tracer writes: an operation without a rule, a module's unused parameters.
TRACE_ONLY = {"opaque", "params_only"}
# Kinds the built module spells with other operations, as PyTorch users write them:
# the tracer records those (and the totals must still agree).
TRACED_AS = {
    "adaptive_avgpool2d": {"adaptive_avgpool2d", "global_avgpool"},  # to 1×1 it is global
    "adaptive_avgpool1d": {"adaptive_avgpool1d", "global_avgpool"},
    "adaptive_avgpool3d": {"adaptive_avgpool3d", "global_avgpool"},
    "depthwise": {"conv2d"},
    "se": {"global_avgpool", "conv2d", "relu", "sigmoid", "mul"},
    "crop": {"crop", "narrow"},
    "reduce": {"reduce", "global_avgpool"},  # the mean over H and W is global pooling
    "view": {"view", "flatten"},  # a view to one axis is a flatten
    "add": {"tensor_op", "add"},
}
# Kinds the tracer drops because PyTorch hands back the same tensor (nn.Identity) or an
# inference no-op: checked by the totals alone.
NO_ROW = {"identity"}
BUILT_ELSEWHERE = {"crop"}  # DescribedNetwork builds it from the input size (offsets)

KINDS = sorted(set(all_rules()) - TRACE_ONLY)


def kinds_in(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines()[1:] if line.split()[0] != "from"}


@st.composite
def layers_of(draw, kind: str) -> str:
    """A random description whose layers include ``kind``."""
    own = {
        "conv2d": conv2d_layers(),
        "depthwise": depthwise_layers(),
        "conv_transpose2d": conv_transpose_layers(),
        "maxpool2d": pool_layers().filter(lambda t: "maxpool2d" in t),
        "avgpool2d": pool_layers().filter(lambda t: "avgpool2d" in t),
    }
    if kind in own:
        return draw(own[kind])
    if kind in ND_KINDS:
        return draw(nd_layers_of(kind))
    groups = draw(st.integers(1, 3))
    c, h, w = groups * draw(st.integers(1, 3)), draw(sizes), draw(sizes)
    options = [
        line
        for line in [*misc_options(draw, c, h, w), *tensor_options(draw, groups, c, h, w)]
        if kind in kinds_in(f"input\n{line}")
    ]
    return f"input {c}x{h}x{w}\n{draw(st.sampled_from(options))}"


OWN_STRATEGY = {"conv2d", "depthwise", "conv_transpose2d", "maxpool2d", "avgpool2d", *ND_KINDS}


@settings(max_examples=1)
@given(data=st.data())
def test_every_kind_is_covered(data: st.DataObject) -> None:
    missing_builder = [k for k in KINDS if k not in FACTORIES and k not in BUILT_ELSEWHERE]
    assert not missing_builder, f"kinds without a module builder: {missing_builder}"
    lines = [*misc_options(data.draw, 6, 6, 6), *tensor_options(data.draw, 2, 6, 6, 6)]
    drawn = OWN_STRATEGY.union(*(kinds_in(f"input\n{line}") for line in lines))
    missing = sorted(set(KINDS) - drawn)
    assert not missing, f"kinds without random configurations: {missing}"


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20)
@given(data=st.data())
def test_kind_against_pytorch(kind: str, data: st.DataObject) -> None:
    text = data.draw(layers_of(kind), label="description")
    check_or_refused(text)  # shapes of every layer, numel, FlopCounterMode, the trace's totals
    try:
        report = convlens.analyze(text, batch=BATCH)
    except ConvlensError:
        return  # refused, as PyTorch refuses it (checked above)
    net = network(text)
    assert report.totals.saved_activation_bytes == saved_activation_bytes(net, batch=BATCH), text
    traced = convlens.analyze(build_module(net).train(), input_size=traced_input(net), batch=BATCH)
    if kind not in NO_ROW:
        recorded = {row.kind for row in traced.layers}
        assert recorded & TRACED_AS.get(kind, {kind}), f"no {kind} row in the trace of\n{text}"
