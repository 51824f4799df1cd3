"""Every layer kind against PyTorch itself, on hundreds of random configurations (each
kind's from its lowering, ``src/convlens/torch/lowering/<family>.py``).

For each kind: the analysed shape equals a real forward, parameters and buffers
equal ``numel``, MACs equal ``FlopCounterMode`` / 2, and convlens refuses exactly
the configurations PyTorch refuses. And the module built from each description, traced,
gives the description's totals (the tracer's handlers and the rules agree).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import convlens
from convlens.core.analyze import Report
from convlens.core.records import Network
from convlens.errors import SpecError
from convlens.torch.build import build_module
from tests.core.oracle import BATCH, measure, network, traced_input
from tests.core.strategies import KINDS, layers_of


def check_against_torch(text: str) -> None:
    net = network(text)
    try:
        truth = measure(net)
    except (RuntimeError, ValueError):  # PyTorch refuses: so must convlens, at the layer's line
        with pytest.raises(SpecError) as refusal:
            convlens.analyze(text, batch=BATCH)
        assert refusal.value.position is not None, f"{text}: {refusal.value}"
        assert refusal.value.position.line >= 2, f"{text}: {refusal.value}"
        return
    report = convlens.analyze(text, batch=BATCH)
    assert tuple(report.layers[-1].output_shape) == truth["shape"], text
    analysed = {layer.name: tuple(layer.output_shape) for layer in report.layers}
    for name, shape in truth["layer_shapes"].items():
        assert analysed[name] == shape, f"layer {name} of\n{text}"
    assert report.totals.params == truth["params"], text
    assert report.totals.buffers == truth["buffers"], text
    assert report.totals.macs == truth["macs"], text
    check_trace_agrees(text, net, report)


TRACED_TOTALS = (
    "params",
    "buffers",
    "macs",
    "flops",
    "rf",
    "jump",
    "start",
    "activation_bytes",
    "peak_activation_bytes",
    "saved_activation_bytes",
    "training_bytes",
)


def check_trace_agrees(text: str, net: Network, described: Report) -> None:
    """The two front-ends share one rule per kind: the PyTorch module built from a
    description, traced, must give the description's own totals."""
    # in training mode, as the description is analysed: a frozen BatchNorm stays in eval
    module = build_module(net).train()
    traced = convlens.analyze(module, input_size=traced_input(net), batch=BATCH)
    fields = TRACED_TOTALS
    # Outputs summed per row differ where the rows do: a copying view is built as reshape +
    # clone (two rows), nn.Identity returns its input (no row in a trace), and a
    # squeeze-and-excitation block is one row described, five traced
    if "copies=true" in text or "\nidentity" in text or "\nse " in text:
        fields = tuple(f for f in fields if f not in ("activation_bytes", "peak_activation_bytes"))
    if not traced.layers:  # only identities: nothing for a receptive field to pass through
        fields = tuple(f for f in fields if f not in ("rf", "jump", "start"))
    for field in fields:
        want, got = getattr(described.totals, field), getattr(traced.totals, field)
        assert got == want, f"{field}: traced {got}, described {want}\n{text}"


def check_or_refused(text: str) -> None:
    """Configurations convlens refuses (e.g. padding larger than half a pooling window)
    must be refused by PyTorch too — or give an empty tensor, which convlens calls an
    error on purpose — and the others must agree with it."""
    net = network(text)
    try:
        convlens.analyze(text)
    except SpecError:
        try:
            truth = measure(net)
        except (RuntimeError, ValueError):
            return
        assert 0 in truth["shape"], f"convlens refused what PyTorch accepts: {text}"
        return
    check_against_torch(text)


@given(layers_of("conv2d"))
def test_conv2d_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(layers_of("depthwise"))
@settings(max_examples=60)
def test_depthwise_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(layers_of("conv_transpose2d"))
def test_conv_transpose2d_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(layers_of("maxpool2d", "avgpool2d"))
@example("input 2x1x1\nmaxpool2d 3 p=2 ceil_mode=false d=2")  # padding > kernel // 2
def test_pooling_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(layers_of())
@settings(max_examples=350)
def test_random_kinds_match_torch(text: str) -> None:
    """A few hundred more configurations over every kind (beside the 20 of each kind in
    test_every_kind.py), drawn from the kinds' lowerings."""
    check_or_refused(text)


# The 1-D and 3-D kinds, and the older kinds whose examples also draw signals and volumes.
SIGNAL_AND_VOLUME_KINDS = [
    *(kind for kind in KINDS if kind.endswith(("1d", "3d"))),
    "global_avgpool",
    "dropout",
]


@given(layers_of(*SIGNAL_AND_VOLUME_KINDS))
@settings(max_examples=150)
def test_signal_and_volume_layers_match_torch(text: str) -> None:
    """conv, transposed conv, pooling, BatchNorm and upsampling of (C, L) signals and
    (C, D, H, W) volumes: shapes, numel, FlopCounterMode and the trace's totals."""
    check_or_refused(text)


@st.composite
def chains(draw):
    """Short random networks mixing every family, with residual and concat joins."""
    c = draw(st.integers(1, 4))
    lines = [f"input {c}x{draw(st.integers(8, 20))}x{draw(st.integers(8, 20))}"]
    for i in range(draw(st.integers(1, 5))):
        choice = draw(st.integers(0, 6))
        if choice == 0:
            lines.append(f"conv2d {draw(st.integers(1, 5))} k=3 p=1 s={draw(st.integers(1, 2))}")
        elif choice == 1:
            lines += [
                f"conv2d 4 k=3 p=1 as a{i}",
                "relu",
                "from a" + str(i),
                f"conv2d 4 k=1 as b{i}",
                f"add a{i}",
            ]
        elif choice == 2:
            lines += [f"conv2d 2 k=1 as c{i}", "conv2d 3 k=3 p=1", f"concat c{i}"]
        elif choice == 3:
            lines.append(draw(st.sampled_from(["batchnorm2d", "relu", "sigmoid", "tanh"])))
        elif choice == 4:
            lines.append(f"upsample 2 mode={draw(st.sampled_from(['nearest', 'bilinear']))}")
        elif choice == 5:
            lines.append("maxpool2d 2 ceil_mode=true")
        else:
            lines.append("conv_transpose2d 3 k=2 s=2")
    return "\n".join(lines)


@given(chains())
@settings(max_examples=80)
def test_random_graphs_match_torch(text: str) -> None:
    check_against_torch(text)


def test_torch_is_not_imported_by_the_core() -> None:
    import subprocess
    import sys

    code = (
        "import sys, convlens; r = convlens.analyze('input 3x32x32\\nconv2d 8 k=3\\nrelu');"
        "r.to_json(); r.to_markdown();"
        "assert 'torch' not in sys.modules, 'the analysis core imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
