"""Random 1-D and 3-D layers for the oracle tests: each kind of a signal (C, L) or a
volume or clip (C, D, H, W), in descriptions PyTorch can build and run."""

from __future__ import annotations

from hypothesis import strategies as st

# Spatial sizes drawn per axis: long signals, small volumes (a 3-D forward is costly).
SIZES = {1: st.integers(1, 24), 3: st.integers(1, 7)}


def axes_text(draw, axes: int, low: int, high: int) -> tuple[str, tuple[int, ...]]:
    """One value for every axis (``3``) or one per axis (``(1,3,3)``)."""
    first = draw(st.integers(low, high))
    if axes == 1 or draw(st.booleans()):
        return str(first), (first,) * axes
    values = (first, *(draw(st.integers(low, high)) for _ in range(axes - 1)))
    return "(" + ",".join(map(str, values)) + ")", values


def input_line(draw, axes: int, channels: int) -> str:
    return "input " + "x".join(map(str, (channels, *(draw(SIZES[axes]) for _ in range(axes)))))


@st.composite
def conv_nd_layers(draw, axes: int):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k, _ = axes_text(draw, axes, 1, 4)
    s, stride = axes_text(draw, axes, 1, 3)
    d, _ = axes_text(draw, axes, 1, 2)
    # (asymmetric padding, (before, after) per axis, is built as F.pad + conv: two rows in
    # a trace, one described; tests/core/test_n_dimensional.py checks it on its own)
    if set(stride) == {1} and draw(st.integers(0, 4)) == 0:
        p = draw(st.sampled_from(["same", "valid"]))
    else:
        p, _ = axes_text(draw, axes, 0, 2)
    bias = str(draw(st.booleans())).lower()
    return (
        f"{input_line(draw, axes, c_in)}\n"
        f"conv{axes}d {c_out} k={k} s={s} p={p} d={d} g={groups} bias={bias}"
    )


@st.composite
def conv_transpose_nd_layers(draw, axes: int):
    groups = draw(st.sampled_from([1, 1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k, _ = axes_text(draw, axes, 1, 3)
    s, stride = axes_text(draw, axes, 1, 3)
    d, dilation = axes_text(draw, axes, 1, 2)
    p, _ = axes_text(draw, axes, 0, 2)
    op = ",".join(str(draw(st.integers(0, max(stride[i], dilation[i]) - 1))) for i in range(axes))
    bias = str(draw(st.booleans())).lower()
    return (
        f"{input_line(draw, axes, c_in)}\n"
        f"conv_transpose{axes}d {c_out} k={k} s={s} p={p} d={d} output_padding=({op}) "
        f"g={groups} bias={bias}"
    )


@st.composite
def pool_nd_layers(draw, axes: int, kind: str):
    k, _ = axes_text(draw, axes, 1, 3)
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    extra = f" d={draw(st.integers(1, 2))}" if kind == "maxpool" else ""
    if kind == "avgpool":
        extra = f" count_include_pad={str(draw(st.booleans())).lower()}"
    return (
        f"{input_line(draw, axes, 2)}\n{kind}{axes}d {k}"
        + (f" s={stride}" if stride is not None else "")
        + f" p={draw(st.integers(0, 1))} ceil_mode={str(draw(st.booleans())).lower()}{extra}"
    )


@st.composite
def other_nd_layers(draw, axes: int, kind: str):
    """adaptive_avgpool, batchnorm, upsample and global_avgpool of a signal or a volume."""
    c = draw(st.integers(1, 4))
    linear = "linear" if axes == 1 else "trilinear"
    lines = {
        "adaptive_avgpool": f"adaptive_avgpool{axes}d {axes_text(draw, axes, 1, 5)[0]}",
        "batchnorm": draw(
            st.sampled_from(
                [
                    f"batchnorm{axes}d",
                    f"batchnorm{axes}d affine=false",
                    f"batchnorm{axes}d training=false",
                ]
            )
        )
        if axes == 3
        else draw(st.sampled_from(["batchnorm1d", "batchnorm1d affine=false"])),
        "upsample": f"upsample{axes}d {draw(st.integers(1, 3))} "
        f"mode={draw(st.sampled_from(['nearest', linear]))}",
        "upsample_aligned": f"upsample{axes}d {draw(st.integers(1, 3))} mode={linear} "
        f"align_corners={str(draw(st.booleans())).lower()}",
        "upsample_size": f"upsample{axes}d size={draw(st.integers(1, 3)) * 4} "
        f"mode={draw(st.sampled_from(['nearest', linear]))}",
        "global_avgpool": "global_avgpool",
    }
    if kind == "upsample_size":  # a size that is one scale of every axis
        return f"input {c}" + "x4" * axes + "\n" + lines[kind]
    return f"{input_line(draw, axes, c)}\n{lines[kind]}"


def nd_layers_of(kind: str) -> st.SearchStrategy[str]:
    """Random descriptions with a layer of ``kind`` (a 1-D or 3-D kind)."""
    axes = 1 if kind.endswith("1d") else 3
    family = kind[:-2]
    if family == "conv":
        return conv_nd_layers(axes)
    if family == "conv_transpose":
        return conv_transpose_nd_layers(axes)
    if family in ("maxpool", "avgpool"):
        return pool_nd_layers(axes, family)
    if family == "upsample":
        return st.sampled_from(["upsample", "upsample_aligned", "upsample_size"]).flatmap(
            lambda form: other_nd_layers(axes, form)
        )
    return other_nd_layers(axes, family)


_FAMILIES = ("conv", "conv_transpose", "maxpool", "avgpool", "adaptive_avgpool", "upsample")
ND_KINDS = (*(f"{family}{axes}d" for family in _FAMILIES for axes in (1, 3)), "batchnorm3d")


@st.composite
def any_nd_layers(draw):
    """One random layer of any 1-D or 3-D kind, or global pooling of a signal or volume."""
    kind = draw(st.sampled_from([*ND_KINDS, "batchnorm1d", "global_avgpool"]))
    if kind == "global_avgpool":
        return draw(other_nd_layers(draw(st.sampled_from([1, 3])), "global_avgpool"))
    return draw(nd_layers_of(kind))
