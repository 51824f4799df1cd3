"""Random 1-D and 3-D layers for the oracle tests: each kind of a signal (C, L) or a
volume or clip (C, D, H, W), in descriptions PyTorch can build and run.

Each ``*_examples`` function is a plain function of a few random choices (``pick``:
``integer``, ``boolean``, ``choice``), answered by Hypothesis here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")


class Choices(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def boolean(self) -> bool: ...

    def choice(self, options: Sequence[T]) -> T: ...


class DrawnChoices:
    """``Choices`` answered by Hypothesis (so a failure shrinks to a small one)."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]):
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))


def flag(pick: Choices) -> str:
    return "true" if pick.boolean() else "false"


def axes_text(pick: Choices, axes: int, low: int, high: int) -> tuple[str, tuple[int, ...]]:
    """One value for every axis (``3``) or one per axis (``(1,3,3)``), as written and as
    a tuple."""
    first = pick.integer(low, high)
    if axes == 1 or pick.boolean():
        return str(first), (first,) * axes
    values = (first, *(pick.integer(low, high) for _ in range(axes - 1)))
    return "(" + ",".join(map(str, values)) + ")", values


def signal_or_volume(pick: Choices, axes: int, channels: int) -> str:
    """``input C x …``: long signals (1 … 24), small volumes (1 … 7 per axis: a 3-D
    forward is costly)."""
    high = 24 if axes == 1 else 7
    sizes = (channels, *(pick.integer(1, high) for _ in range(axes)))
    return "input " + "x".join(map(str, sizes))


def conv_examples(pick: Choices, axes: int) -> str:
    groups = pick.choice([1, 1, 2, 3])
    c_in, c_out = groups * pick.integer(1, 3), groups * pick.integer(1, 3)
    k, _ = axes_text(pick, axes, 1, 4)
    s, stride = axes_text(pick, axes, 1, 3)
    d, _ = axes_text(pick, axes, 1, 2)
    # (asymmetric padding, (before, after) per axis, is built as F.pad + conv: two rows in
    # a trace, one described; tests/core/test_n_dimensional.py checks it on its own)
    if set(stride) == {1} and pick.integer(0, 4) == 0:
        p = pick.choice(["same", "valid"])
    else:
        p, _ = axes_text(pick, axes, 0, 2)
    return (
        f"{signal_or_volume(pick, axes, c_in)}\n"
        f"conv{axes}d {c_out} k={k} s={s} p={p} d={d} g={groups} bias={flag(pick)}"
    )


def conv_transpose_examples(pick: Choices, axes: int) -> str:
    groups = pick.choice([1, 1, 2])
    c_in, c_out = groups * pick.integer(1, 3), groups * pick.integer(1, 3)
    k, _ = axes_text(pick, axes, 1, 3)
    s, stride = axes_text(pick, axes, 1, 3)
    d, dilation = axes_text(pick, axes, 1, 2)
    p, _ = axes_text(pick, axes, 0, 2)
    op = ",".join(str(pick.integer(0, max(stride[i], dilation[i]) - 1)) for i in range(axes))
    return (
        f"{signal_or_volume(pick, axes, c_in)}\n"
        f"conv_transpose{axes}d {c_out} k={k} s={s} p={p} d={d} output_padding=({op}) "
        f"g={groups} bias={flag(pick)}"
    )


def pool_examples(pick: Choices, axes: int, family: str) -> str:
    """``maxpool`` or ``avgpool`` of a signal or a volume."""
    k, _ = axes_text(pick, axes, 1, 3)
    stride = f" s={pick.integer(1, 3)}" if pick.boolean() else ""
    extra = (
        f" d={pick.integer(1, 2)}" if family == "maxpool" else f" count_include_pad={flag(pick)}"
    )
    return (
        f"{signal_or_volume(pick, axes, 2)}\n{family}{axes}d {k}{stride} "
        f"p={pick.integer(0, 1)} ceil_mode={flag(pick)}{extra}"
    )


def adaptive_examples(pick: Choices, axes: int) -> str:
    size, _ = axes_text(pick, axes, 1, 5)
    return f"{signal_or_volume(pick, axes, pick.integer(1, 4))}\nadaptive_avgpool{axes}d {size}"


def batchnorm_examples(pick: Choices, axes: int) -> str:
    options = [f"batchnorm{axes}d", f"batchnorm{axes}d affine=false"]
    if axes == 3:
        options.append("batchnorm3d training=false")
    return f"{signal_or_volume(pick, axes, pick.integer(1, 4))}\n{pick.choice(options)}"


def upsample_examples(pick: Choices, axes: int) -> str:
    linear = "linear" if axes == 1 else "trilinear"
    channels = pick.integer(1, 4)
    form = pick.integer(0, 2)
    if form == 0:
        line = f"upsample{axes}d {pick.integer(1, 3)} mode={pick.choice(['nearest', linear])}"
    elif form == 1:
        line = f"upsample{axes}d {pick.integer(1, 3)} mode={linear} align_corners={flag(pick)}"
    else:  # a size that is one scale of every axis
        size = pick.integer(1, 3) * 4
        mode = pick.choice(["nearest", linear])
        return f"input {channels}" + "x4" * axes + f"\nupsample{axes}d size={size} mode={mode}"
    return f"{signal_or_volume(pick, axes, channels)}\n{line}"


def channel_dropout_examples(pick: Choices) -> str:
    """nn.Dropout1d of a signal, nn.Dropout3d of a volume: whole channels zeroed."""
    shape = signal_or_volume(pick, pick.choice([1, 3]), pick.integer(1, 4))
    return f"{shape}\ndropout 0.4 channelwise=true"


def global_pool_examples(pick: Choices) -> str:
    """Global average pooling of a signal or a volume."""
    return f"{signal_or_volume(pick, pick.choice([1, 3]), pick.integer(1, 4))}\nglobal_avgpool"


EXAMPLES: dict[str, Callable[[Choices], str]] = {
    **{
        f"{family}{axes}d": (lambda pick, f=fn, a=axes: f(pick, a))
        for axes in (1, 3)
        for family, fn in (
            ("conv", conv_examples),
            ("conv_transpose", conv_transpose_examples),
            ("adaptive_avgpool", adaptive_examples),
            ("upsample", upsample_examples),
        )
    },
    **{
        f"{family}{axes}d": (lambda pick, f=family, a=axes: pool_examples(pick, a, f))
        for axes in (1, 3)
        for family in ("maxpool", "avgpool")
    },
    "batchnorm3d": lambda pick: batchnorm_examples(pick, 3),
}
ND_KINDS = tuple(EXAMPLES)
# Kinds older than the 1-D and 3-D ones that also take a signal or a volume.
ALSO_ND: dict[str, Callable[[Choices], str]] = {
    "batchnorm1d": lambda pick: batchnorm_examples(pick, 1),
    "global_avgpool": global_pool_examples,
    "dropout": channel_dropout_examples,
}


@st.composite
def nd_layers_of(draw: Callable[[st.SearchStrategy[Any]], Any], kind: str) -> str:
    """A random description with a layer of ``kind`` (a 1-D or 3-D kind)."""
    return {**EXAMPLES, **ALSO_ND}[kind](DrawnChoices(draw))


@st.composite
def any_nd_layers(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    """One random layer of any 1-D or 3-D kind, or BatchNorm or global pooling of a signal
    or a volume."""
    kind = draw(st.sampled_from([*ND_KINDS, *ALSO_ND]))
    return draw(nd_layers_of(kind))
