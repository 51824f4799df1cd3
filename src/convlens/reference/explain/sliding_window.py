"""Worked steps of the sliding-window operators (convolution, transposed convolution,
max and average pooling), forward and backward, from their forward caches."""

from __future__ import annotations

from typing import cast

import numpy as np

from convlens.reference.conv import Conv2dCache
from convlens.reference.conv_transpose import ConvTranspose2dCache
from convlens.reference.explain.steps import (
    ChannelWork,
    ConvStep,
    PoolStep,
    RouteStep,
    ScatterStep,
    WeightGradStep,
    WeightGradTerm,
)
from convlens.reference.pool import AvgPool2dCache, MaxPool2dCache, PoolGeometry


def _taps(origin: int, count: int, dilation: int) -> tuple[int, ...]:
    return tuple(origin + t * dilation for t in range(count))


def conv2d_steps(
    out: np.ndarray, cache: Conv2dCache, bias: np.ndarray | None
) -> tuple[ConvStep, ...]:
    """Every output element's windows, products and sums, from the forward cache."""
    n, o, ho, wo = cache.output_shape
    _, c_g, kh, kw = cache.weight.shape
    (sh, sw), (dh, dw), (top, _, left, _) = cache.stride, cache.dilation, cache.padding
    steps = []
    for b, oc, r, c in np.ndindex(n, o, ho, wo):
        group = oc // (o // cache.groups)
        rows_p = _taps(r * sh, kh, dh)  # rows in the padded input
        cols_p = _taps(c * sw, kw, dw)
        channels = []
        for local in range(c_g):
            ch = group * c_g + local
            window = cache.x_padded[b, ch][np.ix_(rows_p, cols_p)]
            weight = cache.weight[oc, local]
            channels.append(
                ChannelWork(
                    channel=ch,
                    rows=tuple(x - top for x in rows_p),
                    cols=tuple(x - left for x in cols_p),
                    window=window,
                    weight=weight,
                    total=float((window * weight).sum()),
                )
            )
        steps.append(
            ConvStep(
                b,
                oc,
                r,
                c,
                tuple(channels),
                None if bias is None else float(bias[oc]),
                float(out[b, oc, r, c]),
            )
        )
    return tuple(steps)


def conv_transpose2d_steps(cache: ConvTranspose2dCache) -> tuple[ScatterStep, ...]:
    """Every input pixel's scaled filter copy, and the output rows/cols it lands on."""
    n, c, h, w = cache.x.shape
    _, o_g, kh, kw = cache.weight.shape
    (sh, sw), (dh, dw), (ph, pw) = cache.stride, cache.dilation, cache.padding
    steps = []
    for b, ch, r, col in np.ndindex(n, c, h, w):
        group = ch // (c // cache.groups)
        for local in range(o_g):
            steps.append(
                ScatterStep(
                    batch=b,
                    source_channel=ch,
                    target_channel=group * o_g + local,
                    row=r,
                    col=col,
                    value=float(cache.x[b, ch, r, col]),
                    weight=cache.weight[ch, local],
                    rows=_taps(r * sh - ph, kh, dh),
                    cols=_taps(col * sw - pw, kw, dw),
                )
            )
    return tuple(steps)


def _weight_grad(terms: list[WeightGradTerm]) -> np.ndarray:
    """Σ ∂L/∂y · window over the terms: an array, since a key gets its list with its first
    term (``sum`` would give 0 for none)."""
    return cast(np.ndarray, sum(t.grad * t.window for t in terms))


def conv2d_backward_steps(
    grad: np.ndarray, cache: Conv2dCache
) -> tuple[tuple[ScatterStep, ...], tuple[WeightGradStep, ...]]:
    """Input gradient: each ∂L/∂y element scatters ∂L/∂y · w onto its window.
    Weight gradient: Σ over output positions of ∂L/∂y · window."""
    forward = conv2d_steps(np.zeros(cache.output_shape), cache, None)
    scatter: list[ScatterStep] = []
    weight_terms: dict[tuple[int, int, int], list[WeightGradTerm]] = {}
    for step in forward:
        g = float(grad[step.batch, step.out_channel, step.row, step.col])
        for work in step.channels:
            scatter.append(
                ScatterStep(
                    batch=step.batch,
                    source_channel=step.out_channel,
                    target_channel=work.channel,
                    row=step.row,
                    col=step.col,
                    value=g,
                    weight=work.weight,
                    rows=work.rows,
                    cols=work.cols,
                )
            )
            key = (step.batch, step.out_channel, work.channel)
            weight_terms.setdefault(key, []).append(
                WeightGradTerm(step.row, step.col, g, work.window)
            )
    weight_steps = tuple(
        WeightGradStep(b, oc, ch, tuple(terms), _weight_grad(terms))
        for (b, oc, ch), terms in weight_terms.items()
    )
    return tuple(scatter), weight_steps


def _pool_window(
    x: np.ndarray, b: int, ch: int, rows: tuple[int, ...], cols: tuple[int, ...], fill: float
) -> np.ndarray:
    h, w = x.shape[2:]
    window = np.full((len(rows), len(cols)), fill)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if 0 <= r < h and 0 <= c < w:
                window[i, j] = x[b, ch, r, c]
    return window


def _pool_taps(geo: PoolGeometry, r: int, c: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo.kernel_size, geo.stride, geo.padding, geo.dilation
    return _taps(r * sh - ph, kh, dh), _taps(c * sw - pw, kw, dw)


def max_pool2d_steps(x: np.ndarray, out: np.ndarray, cache: MaxPool2dCache) -> tuple[PoolStep, ...]:
    geo, w = cache.geometry, x.shape[3]
    steps = []
    for b, ch, r, c in np.ndindex(*geo.output_shape):
        rows, cols = _pool_taps(geo, r, c)
        index = int(cache.indices[b, ch, r, c])
        steps.append(
            PoolStep(
                "max",
                b,
                ch,
                r,
                c,
                rows,
                cols,
                _pool_window(x, b, ch, rows, cols, -np.inf),
                float(out[b, ch, r, c]),
                arg=(index // w, index % w) if index >= 0 else None,
            )
        )
    return tuple(steps)


def avg_pool2d_steps(x: np.ndarray, out: np.ndarray, cache: AvgPool2dCache) -> tuple[PoolStep, ...]:
    geo = cache.geometry
    steps = []
    for b, ch, r, c in np.ndindex(*geo.output_shape):
        rows, cols = _pool_taps(geo, r, c)
        window = _pool_window(x, b, ch, rows, cols, 0.0)
        steps.append(
            PoolStep(
                "avg",
                b,
                ch,
                r,
                c,
                rows,
                cols,
                window,
                float(out[b, ch, r, c]),
                total=float(window.sum()),
                divisor=int(cache.divisor[r, c]),
            )
        )
    return tuple(steps)


def max_pool2d_backward_steps(grad: np.ndarray, cache: MaxPool2dCache) -> tuple[RouteStep, ...]:
    """Each output gradient goes whole to its window's arg-max."""
    w = cache.geometry.input_shape[3]
    steps = []
    for b, ch, r, c in np.ndindex(*cache.geometry.output_shape):
        index, g = int(cache.indices[b, ch, r, c]), float(grad[b, ch, r, c])
        targets = ((index // w, index % w, g),) if index >= 0 else ()
        steps.append(RouteStep(b, ch, r, c, g, targets))
    return tuple(steps)


def avg_pool2d_backward_steps(grad: np.ndarray, cache: AvgPool2dCache) -> tuple[RouteStep, ...]:
    """Each output gradient is split equally, ÷ divisor, over its window's input cells."""
    geo = cache.geometry
    _, _, h, w = geo.input_shape
    steps = []
    for b, ch, r, c in np.ndindex(*geo.output_shape):
        rows, cols = _pool_taps(geo, r, c)
        g = float(grad[b, ch, r, c])
        share = g / float(cache.divisor[r, c])
        targets = tuple((i, j, share) for i in rows for j in cols if 0 <= i < h and 0 <= j < w)
        steps.append(RouteStep(b, ch, r, c, g, targets))
    return tuple(steps)


def conv_transpose2d_backward_steps(
    grad: np.ndarray, cache: ConvTranspose2dCache
) -> tuple[tuple[ConvStep, ...], tuple[WeightGradStep, ...]]:
    """Input gradient: each input pixel collects ∂L/∂y over the block its filter copy landed
    on, ⊙ the filter (a ConvStep whose "channels" are the output channels).
    Weight gradient: Σ over input pixels of x · (that ∂L/∂y block)."""
    n, c, h, w = cache.x.shape
    _, o_g, kh, kw = cache.weight.shape
    (sh, sw), (dh, dw), (ph, pw) = cache.stride, cache.dilation, cache.padding
    input_steps: list[ConvStep] = []
    weight_terms: dict[tuple[int, int, int], list[WeightGradTerm]] = {}
    for b, ch, r, col in np.ndindex(n, c, h, w):
        group = ch // (c // cache.groups)
        rows, cols = _taps(r * sh - ph, kh, dh), _taps(col * sw - pw, kw, dw)
        works = []
        for local in range(o_g):
            oc = group * o_g + local
            block = _pool_window(grad, b, oc, rows, cols, 0.0)  # cropped cells: no gradient
            weight = cache.weight[ch, local]
            works.append(ChannelWork(oc, rows, cols, block, weight, float((block * weight).sum())))
            weight_terms.setdefault((b, oc, ch), []).append(
                WeightGradTerm(r, col, float(cache.x[b, ch, r, col]), block)
            )
        value = sum(work.total for work in works)
        input_steps.append(ConvStep(b, ch, r, col, tuple(works), None, value))
    weight_steps = tuple(
        WeightGradStep(b, oc, ch, tuple(terms), _weight_grad(terms))
        for (b, oc, ch), terms in weight_terms.items()
    )
    return tuple(input_steps), weight_steps
