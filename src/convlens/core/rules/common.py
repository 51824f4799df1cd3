"""Helpers shared by rule modules: shape checks and the sliding-window geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from convlens.core.numbers import (
    Dim,
    floordiv,
    is_numeric,
    known_positive,
    normalize,
    product,
)
from convlens.core.registry import AxisMap, RuleError, Shape
from convlens.core.steps import Step, step

# Names and symbols of the spatial axes of a (C, *spatial) map, by their number: a signal
# (C, L), an image (C, H, W), a volume or video clip (C, D, H, W).
AXIS_NAMES: dict[int, tuple[str, ...]] = {
    1: ("length",),
    2: ("height", "width"),
    3: ("depth", "height", "width"),
}
AXIS_SYMBOLS: dict[int, tuple[str, ...]] = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
# What one step along each axis is called in warnings ("3 of every 4 input rows").
_AXIS_UNITS = {"length": "positions", "depth": "slices", "height": "rows", "width": "columns"}


def axis_names(spatial_axes: int) -> tuple[str, ...]:
    """``("height", "width")`` for an image; ``axis 1``, ``axis 2`` … beyond three axes."""
    return AXIS_NAMES.get(spatial_axes) or tuple(f"axis {i + 1}" for i in range(spatial_axes))


def layout(spatial_axes: int) -> str:
    """``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)``."""
    return "(C, " + ", ".join(AXIS_SYMBOLS[spatial_axes]) + ")"


def spatial(kind: str, shape: Shape) -> tuple[Dim, Dim, Dim]:
    """(C, H, W) or a clear error naming what was received."""
    channels, sizes = spatial_nd(kind, shape, 2)
    return channels, sizes[0], sizes[1]


def spatial_nd(kind: str, shape: Shape, spatial_axes: int) -> tuple[Dim, tuple[Dim, ...]]:
    """(C, (sizes along each spatial axis)), or a clear error naming what was received and,
    for a map of another rank, the kind that fits it (conv2d on a signal: use conv1d)."""
    if len(shape) != spatial_axes + 1:
        hint = " (did a flatten or linear come too early?)" if len(shape) == 1 else ""
        fits = len(shape) - 1
        other = _same_family(kind, spatial_axes, fits)
        if other:
            hint = f" (a {fits}-D input {layout(fits)}: use {other})"
        raise RuleError(
            f"{kind} expects a {layout(spatial_axes)} input, got {fmt_shape(shape)}{hint}"
        )
    return shape[0], tuple(shape[1:])


def _same_family(kind: str, spatial_axes: int, fits: int) -> str:
    """The kind of ``kind``'s family for ``fits`` spatial axes (conv2d → conv1d; upsample,
    the 2-D one, → upsample3d), or "" if there is none."""
    from convlens.core.registry import all_rules

    if fits not in AXIS_NAMES or fits == spatial_axes:
        return ""
    base = kind.removesuffix(f"{spatial_axes}d") if kind != "upsample" else kind
    if base == kind and kind != "upsample":
        return ""
    other = base if (base == "upsample" and fits == 2) else f"{base}{fits}d"
    return other if other in all_rules() else ""


def map_rf(
    shape: Shape,
    whole_on_map: bool,
    whole_otherwise: bool,
    maps: tuple[AxisMap, ...] | None = None,
) -> dict[str, Any]:
    """The receptive-field fields of a ``Cost`` for a layer that reads a (C, *spatial) map
    of the network's rank (a signal, an image, a volume) one way — ``maps`` per spatial
    axis (None: its own positions), or the whole input with ``whole_on_map`` — and any
    other tensor (tokens (L, C) in an image network, a stack (K, C, H, W)) another: the
    whole input with ``whole_otherwise``, else its own positions (``Cost.rf_axes``)."""
    if len(shape) in (2, 3, 4):
        return {
            "rf": maps,
            "rf_global": whole_on_map,
            "rf_axes": len(shape) - 1,
            "rf_otherwise_global": whole_otherwise,
        }
    return {"rf_global": whole_otherwise}


def fmt_shape(shape: Sequence[Any]) -> str:
    from convlens.core.numbers import fmt

    return "(" + ", ".join(fmt(d, grouping=False) for d in shape) + ")"


def elements(shape: Shape) -> Dim:
    return product(shape)


@dataclass(frozen=True)
class Window:
    """One axis of a sliding window (convolution or pooling)."""

    size: Dim  # input size I
    kernel: Dim  # K
    stride: Dim  # S
    pad_lo: Dim  # padding before (top/left)
    pad_hi: Dim  # padding after (bottom/right)
    dilation: Dim  # D
    ceil_mode: bool = False


@dataclass(frozen=True)
class StrideGap:
    """Input positions a strided window never reads along one axis."""

    axis: int
    stride: Dim
    extent: Dim  # the dilated kernel, D·(K − 1) + 1
    skipped: Dim  # of every `stride` positions, this many fall between windows
    tail: Dim  # positions after the last window


def stride_warnings(gaps: Sequence[StrideGap], spatial_axes: int = 2) -> tuple[str, ...]:
    """One sentence per axis, or one for all when every axis loses the same positions."""
    names = AXIS_NAMES[spatial_axes]
    if (
        spatial_axes > 1
        and len(gaps) == spatial_axes
        and all(replace(g, axis=0) == replace(gaps[0], axis=0) for g in gaps)
    ):
        along = ", ".join(names[:-1]) + " and " + names[-1]
        units = [_AXIS_UNITS[n] for n in names]
        if spatial_axes == 2:
            return (_gap_sentence(gaps[0], along, " and ".join(units)),)
        return (_gap_sentence(gaps[0], along, "positions"),)
    return tuple(_gap_sentence(g, names[g.axis], _AXIS_UNITS[names[g.axis]]) for g in gaps)


def _gap_sentence(g: StrideGap, along: str, units: str) -> str:
    if g.skipped and g.tail:
        return (
            f"stride {g.stride} is larger than the kernel extent {g.extent} along the {along}: "
            f"{g.skipped} of every {g.stride} input {units} are skipped, and the last "
            f"{g.tail} are never read"
        )
    if g.skipped:
        return (
            f"stride {g.stride} is larger than the kernel extent {g.extent} along the {along}: "
            f"{g.skipped} of every {g.stride} input {units} are skipped"
        )
    return (
        f"stride {g.stride} does not divide evenly along the {along}: the last {g.tail} "
        f"input {units} are never read"
    )


def window_output(
    kind: str, axis: int, w: Window, spatial_axes: int = 2
) -> tuple[Dim, list[Step], list[StrideGap], AxisMap]:
    """O = ⌊(I + P_lo + P_hi − D·(K − 1) − 1)/S⌋ + 1 (⌈⌉ with ceil_mode), with checks."""
    name, sym = AXIS_NAMES[spatial_axes][axis], AXIS_SYMBOLS[spatial_axes][axis]
    extent = normalize(w.dilation * (w.kernel - 1) + 1)  # K_eff
    padded = normalize(w.size + w.pad_lo + w.pad_hi)
    # With ceil_mode a window may hang over the end, so only an empty output is an error.
    if not w.ceil_mode and known_positive(padded - extent + 1) is False:
        raise RuleError(
            f"kernel {name} {_kernel_text(w)} is larger than the padded input {name} "
            f"{padded} (input {w.size} + padding {w.pad_lo + w.pad_hi})"
        )
    symmetric = w.pad_lo == w.pad_hi
    pad_text = "2·{P}" if symmetric else "{P_lo} + {P_hi}"
    pads: dict[str, Any] = {"P": w.pad_lo} if symmetric else {"P_lo": w.pad_lo, "P_hi": w.pad_hi}
    values: dict[str, Any] = {"I": w.size, **pads, "D": w.dilation, "K": w.kernel, "S": w.stride}
    if w.ceil_mode:
        out = normalize(-floordiv(-(padded - extent), w.stride) + 1)
        template = "⌈({I} + " + pad_text + " − {D}·({K} − 1) − 1)/{S}⌉ + 1"
    else:
        out = normalize(floordiv(padded - extent, w.stride) + 1)
        template = "⌊({I} + " + pad_text + " − {D}·({K} − 1) − 1)/{S}⌋ + 1"
    steps = [step("shape", f"output {name}", f"{sym}_out", template, values, out)]
    if w.ceil_mode and is_numeric(out) and (out - 1) * w.stride >= w.size + w.pad_lo:
        # PyTorch drops a last window that would start in the right padding.
        out -= 1
        steps.append(
            step(
                "shape",
                f"output {name}",
                f"{sym}_out",
                "{O} − 1",
                {"O": out + 1},
                out,
                note="the last window would start in the padding, so it is dropped",
            )
        )
    if known_positive(out) is False:
        raise RuleError(f"output {name} would be {out}: the window does not fit the input")
    gaps = []
    if is_numeric(padded) and is_numeric(extent) and is_numeric(w.stride) and is_numeric(out):
        unread = padded - ((out - 1) * w.stride + extent)
        real_unread = unread - w.pad_hi if is_numeric(w.pad_hi) else 0
        skipped = max(w.stride - extent, 0)
        tail = real_unread if not w.ceil_mode and real_unread > 0 else 0
        if skipped or tail:
            gaps.append(StrideGap(axis, w.stride, extent, skipped, tail))
    axis_map = AxisMap(
        lo=lambda o: o * w.stride - w.pad_lo,
        hi=lambda o: o * w.stride - w.pad_lo + extent - 1,
        jump=w.stride,
        taps=lambda o: [o * w.stride - w.pad_lo + j * w.dilation for j in range(w.kernel)],
    )
    return out, steps, gaps, axis_map


def _kernel_text(w: Window) -> str:
    if w.dilation == 1:
        return str(w.kernel)
    return f"{w.kernel} (dilated to {normalize(w.dilation * (w.kernel - 1) + 1)})"


def same_padding(kernel: Dim, dilation: Dim) -> tuple[Dim, Dim]:
    """PyTorch's padding='same': total D·(K−1), the extra pixel (if odd) at the end."""
    total = normalize(dilation * (kernel - 1))
    lo = floordiv(total, 2)
    return lo, normalize(total - lo)


def check_groups(kind: str, channels: Dim, out_channels: Dim, groups: Dim) -> tuple[str, ...]:
    """Refuse groups that cannot divide the channels; return, as warnings, the divisions a
    symbolic size is assumed to allow (``groups=4`` on C channels assumes 4 divides C)."""
    from convlens.core.numbers import known_divides

    assumed = []
    for what, count in (("input channels", channels), ("output channels", out_channels)):
        divides = known_divides(groups, count)
        if divides is False:
            raise RuleError(f"groups={groups} must divide the {what} ({count})")
        if divides is None:
            assumed.append(f"assumes groups={groups} divides the {what} ({count})")
    return tuple(assumed)
