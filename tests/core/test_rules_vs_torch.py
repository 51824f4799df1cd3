"""Every layer kind against PyTorch itself, on hundreds of random configurations.

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
from tests.core.strategies_nd import any_nd_layers

sizes = st.integers(1, 12)


def pair_text(draw, low: int, high: int) -> tuple[str, tuple[int, int]]:
    a = draw(st.integers(low, high))
    if draw(st.booleans()):
        return str(a), (a, a)
    b = draw(st.integers(low, high))
    return f"({a},{b})", (a, b)


@st.composite
def conv2d_layers(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    k, _ = pair_text(draw, 1, 5)
    s, stride = pair_text(draw, 1, 3)
    d, _ = pair_text(draw, 1, 3)
    if stride == (1, 1) and draw(st.integers(0, 4)) == 0:
        p = draw(st.sampled_from(["same", "valid"]))
    else:
        p, _ = pair_text(draw, 0, 3)
    bias = draw(st.booleans())
    line = f"conv2d {c_out} k={k} s={s} p={p} d={d} g={groups} bias={str(bias).lower()}"
    return f"input {c_in}x{draw(sizes)}x{draw(sizes)}\n{line}"


@st.composite
def depthwise_layers(draw):
    k, _ = pair_text(draw, 1, 4)
    s, _ = pair_text(draw, 1, 2)
    m = draw(st.integers(1, 2))
    return (
        f"input {draw(st.integers(1, 4))}x{draw(sizes)}x{draw(sizes)}\n"
        f"depthwise {k} s={s} p=1 multiplier={m}"
    )


@st.composite
def conv_transpose_layers(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k, _kernel = pair_text(draw, 1, 4)
    s, stride = pair_text(draw, 1, 3)
    d, dilation = pair_text(draw, 1, 2)
    p, _ = pair_text(draw, 0, 2)
    op = tuple(draw(st.integers(0, max(stride[i], dilation[i]) - 1)) for i in range(2))
    bias = str(draw(st.booleans())).lower()
    return (
        f"input {c_in}x{draw(st.integers(1, 6))}x{draw(st.integers(1, 6))}\n"
        f"conv_transpose2d {c_out} k={k} s={s} p={p} d={d} "
        f"output_padding=({op[0]},{op[1]}) g={groups} bias={bias}"
    )


@st.composite
def pool_layers(draw):
    kind = draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
    k, _kernel = pair_text(draw, 1, 4)
    s = draw(st.one_of(st.none(), st.integers(1, 3)))
    p = draw(st.integers(0, 2))
    ceil = str(draw(st.booleans())).lower()
    extra = f" d={draw(st.integers(1, 2))}" if kind == "maxpool2d" else ""
    stride = f" s={s}" if s is not None else ""
    return f"input 2x{draw(sizes)}x{draw(sizes)}\n{kind} {k}{stride} p={p} ceil_mode={ceil}{extra}"


@st.composite
def misc_layers(draw):
    c, h, w = draw(st.integers(1, 6)), draw(sizes), draw(sizes)
    return f"input {c}x{h}x{w}\n{draw(st.sampled_from(misc_options(draw, c, h, w)))}"


def misc_options(draw, c: int, h: int, w: int) -> list[str]:
    """One random configuration of every kind that needs no particular input, as lines
    after ``input CxHxW``."""
    return [
        f"adaptive_avgpool2d ({draw(st.integers(1, 5))},{draw(st.integers(1, 5))})",
        "global_avgpool",
        "batchnorm2d",
        f"batchnorm2d affine={draw(st.booleans())}",
        "relu",
        "relu6",
        "leaky_relu 0.2",
        "elu",
        "sigmoid",
        "tanh",
        "gelu",
        "silu",
        "hardswish",
        "hardsigmoid",
        "softmax",
        "dropout 0.3",
        "identity",
        f"upsample {draw(st.integers(1, 3))}",
        f"upsample {draw(st.integers(1, 3))} mode=bilinear align_corners="
        f"{str(draw(st.booleans())).lower()}",
        f"linear {draw(st.integers(1, 7))} bias={str(draw(st.booleans())).lower()}",
        f"se {draw(st.integers(1, 2))}",
        f"crop ({draw(st.integers(1, h))},{draw(st.integers(1, w))})",
        f"relu as a\nconv2d {c} k=1\nadd a",
        f"relu as a\nconv2d {draw(st.integers(1, 3))} k=1\nconcat a",
        *layout_lines(draw),
    ]


def layout_lines(draw) -> list[str]:
    """The layout kinds the tracer added (pad, roll, stack, concat_tensor, batchnorm1d,
    frozen BatchNorm, channel-wise dropout), in random configurations."""
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    # (circular crops: PyTorch fails or reads past the tensor, depending on the tensor —
    # convlens refuses what is not a crop then a wrap; tests/core/test_pad_modes.py)
    low = 0 if mode == "circular" else -2
    pads = ",".join(str(draw(st.integers(low, 3))) for _ in range(2 * draw(st.integers(1, 3))))
    dims = draw(st.sampled_from(["1", "2", "3", "(2,3)", "(1,3)"]))
    shifts = "1" if "," not in dims else f"(1,{draw(st.integers(-3, 3))})"
    return [
        f"pad ({pads}) mode={mode}",
        f"pad {draw(st.integers(0, 2))}",
        f"roll {shifts} dims={dims}",
        f"stack dim={draw(st.integers(1, 4))}",
        f"concat_tensor before=({draw(st.integers(1, 3))}) dim={draw(st.integers(1, 3))}"
        f" weight_kind={draw(st.sampled_from(['parameter', 'buffer', 'constant']))}",
        f"concat_tensor after=({draw(st.integers(1, 2))},{draw(st.integers(1, 2))})",
        "flatten\nbatchnorm1d",
        "flatten\nbatchnorm1d affine=false",
        "batchnorm2d training=false",
        f"dropout 0.4 channelwise={str(draw(st.booleans())).lower()}",
    ]


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


@given(conv2d_layers())
def test_conv2d_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(depthwise_layers())
@settings(max_examples=60)
def test_depthwise_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(conv_transpose_layers())
def test_conv_transpose2d_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(pool_layers())
@example("input 2x1x1\nmaxpool2d 3 p=2 ceil_mode=false d=2")  # padding > kernel // 2
def test_pooling_matches_torch(text: str) -> None:
    check_or_refused(text)


@given(misc_layers())
def test_other_layers_match_torch(text: str) -> None:
    check_or_refused(text)


@given(any_nd_layers())
@settings(max_examples=150)
def test_signal_and_volume_layers_match_torch(text: str) -> None:
    """conv, transposed conv, pooling, BatchNorm and upsampling of (C, L) signals and
    (C, D, H, W) volumes: shapes, numel, FlopCounterMode and the trace's totals."""
    check_or_refused(text)


@st.composite
def tensor_layers(draw):
    """The kinds that reshape, normalise, reduce or multiply whole tensors: view,
    layer_norm, group_norm, narrow, reduce, scalar_op, tensor_op, mul, matmul (with a
    fixed weight and of two outputs) and attention, in random configurations."""
    groups = draw(st.integers(1, 3))
    c, h, w = groups * draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return f"input {c}x{h}x{w}\n{draw(st.sampled_from(tensor_options(draw, groups, c, h, w)))}"


def tensor_options(draw, groups: int, c: int, h: int, w: int) -> list[str]:
    """One random configuration of each kind of ``tensor_layers`` (``groups`` divides c)."""
    flag = lambda: str(draw(st.booleans())).lower()  # noqa: E731
    kind = lambda: draw(st.sampled_from(["parameter", "buffer", "constant"]))  # noqa: E731
    n = draw(st.integers(1, 4))
    dim = draw(st.integers(1, 3))
    size = (c, h, w)[dim - 1]
    start = draw(st.integers(0, size - 1))
    weight = draw(st.sampled_from([f"({c},1,1)", f"(1,{h},{w})", f"({w})", f"(1,{c},1,1)"]))
    reduce_dims = draw(st.sampled_from(["1", "(2,3)", "(1,3)", "-1"]))
    return [
        f"view ({c * h},{w})",
        f"view ({c},{h * w}) copies={flag()}",
        f"view ({c * h * w})",
        f"layer_norm ({w}) elementwise_affine={flag()} bias={flag()}",
        f"layer_norm ({c},{h},{w})",
        f"group_norm {groups} affine={flag()}",
        f"narrow {dim} {start} {draw(st.integers(1, size - start))}",
        f"narrow {dim} {start} 1 keepdim=false",
        f"reduce {draw(st.sampled_from(['sum', 'mean']))} {reduce_dims} keepdim={flag()}",
        "scalar_op",
        f"tensor_op {draw(st.sampled_from(['add', 'sub', 'mul', 'div']))} {weight}"
        f" weight_first={flag()} weight_kind={kind()}",
        "relu as a\nsigmoid\nmul a",
        f"matmul weight=({w},{n}) weight_kind={kind()}",
        f"matmul weight=({n},{h}) weight_first=true",
        # (x @ a vector is torch.mv and CPU flash attention a kernel FlopCounterMode
        # does not count: tests/torch checks those against hand counts)
        f"relu as a\nview ({c},{w},{h}) as b\nfrom a\nmatmul b",
        f"relu as k\nsigmoid as v\ntanh\nattention k v is_causal={flag()} flash=false",
        f"relu as k\nsigmoid as v\ntanh\nattention k v flash=false"
        f" attn_mask=({h},{h}) mask_dtype={draw(st.sampled_from(['bool', 'float']))}",
    ]


@given(tensor_layers())
@settings(max_examples=150)
def test_tensor_kinds_match_torch(text: str) -> None:
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
