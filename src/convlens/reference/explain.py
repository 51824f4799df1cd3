"""Worked steps: the numbers behind every output element of a small problem.

Steps only hold numbers (windows, products, sums, where things land); ``render.py``
turns them into text, Markdown or LaTeX. Each step adds up to the element it explains,
and the tests check that it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

from convlens.reference.conv import Conv2dCache
from convlens.reference.conv_transpose import ConvTranspose2dCache
from convlens.reference.pool import AvgPool2dCache, MaxPool2dCache, PoolGeometry

# Show the working element by element while an output plane has at most this many
# elements and the whole output at most EXPLAIN_TOTAL; beyond that, a summary.
EXPLAIN_PER_PLANE = 64
EXPLAIN_TOTAL = 512


def is_small(output_shape: tuple[int, ...]) -> bool:
    plane = int(np.prod(output_shape[-2:]))
    return plane <= EXPLAIN_PER_PLANE and int(np.prod(output_shape)) <= EXPLAIN_TOTAL


@dataclass(frozen=True)
class ChannelWork:
    """One input channel's share of a convolution output element."""

    channel: int
    rows: tuple[int, ...]  # input rows of the kernel taps (outside 0..H−1: padding)
    cols: tuple[int, ...]
    window: np.ndarray  # (K_h, K_w): the input values the taps meet (0 in the padding)
    weight: np.ndarray  # (K_h, K_w): the filter slice for this channel
    total: float  # Σ window ⊙ weight

    @property
    def products(self) -> np.ndarray:
        return self.window * self.weight


@dataclass(frozen=True)
class ConvStep:
    """y[n, o, row, col] = Σ over channels of Σ(window ⊙ filter) + bias."""

    batch: int
    out_channel: int
    row: int
    col: int
    channels: tuple[ChannelWork, ...]
    bias: float | None
    value: float


@dataclass(frozen=True)
class ScatterStep:
    """A value times a filter, added to a block of the target at ``rows`` × ``cols``.

    Used for the transposed convolution (input pixel → output block) and for the input
    gradient of a convolution (output gradient → input window). Entries whose row or
    column falls outside the target (cropped padding) are dropped.
    """

    batch: int
    source_channel: int
    target_channel: int
    row: int  # where the value comes from
    col: int
    value: float
    weight: np.ndarray  # (K_h, K_w)
    rows: tuple[int, ...]  # target rows of the filter's rows
    cols: tuple[int, ...]

    @property
    def copy(self) -> np.ndarray:
        return self.value * self.weight


@dataclass(frozen=True)
class PoolStep:
    """One pooling window: its values, and its maximum or its mean."""

    kind: str  # "max" or "avg"
    batch: int
    channel: int
    row: int
    col: int
    rows: tuple[int, ...]  # input rows of the window taps (outside 0..H−1: padding)
    cols: tuple[int, ...]
    window: np.ndarray  # (K_h, K_w); padding shown as −∞ (max) or 0 (avg)
    value: float
    arg: tuple[int, int] | None = None  # (row, col) in the input of the maximum
    total: float | None = None  # avg: the window sum
    divisor: int | None = None  # avg: the cells it is divided by


@dataclass(frozen=True)
class RouteStep:
    """Backward through pooling, upsampling or ReLU: where one output gradient goes.

    Each target gets ``amount`` = grad · its weight (1 for a max-pool arg-max or a ReLU that
    passes, 1/divisor for average pooling, the interpolation weight for upsampling).
    """

    batch: int
    channel: int
    row: int
    col: int
    grad: float
    targets: tuple[tuple[int, int, float], ...]  # (input row, input col, amount)
    weights: tuple[float, ...] = ()  # upsample: the weight behind each target's amount


@dataclass(frozen=True)
class InterpStep:
    """Upsampling: y[n, c, row, col] = Σ weight · x[n, c, i, j] over its source pixels.

    The weight of source (i, j) is R[row, i] · C[col, j] (row and column interpolation
    weights); nearest has one source of weight 1, bilinear up to four.
    """

    batch: int
    channel: int
    row: int
    col: int
    terms: tuple[tuple[int, int, float, float], ...]  # (input row, input col, weight, x)
    value: float


@dataclass(frozen=True)
class ReluStep:
    """y[n, c, row, col] = max(x, 0)."""

    batch: int
    channel: int
    row: int
    col: int
    x: float
    value: float


@dataclass(frozen=True)
class DotStep:
    """Linear: y[row, out_feature] = Σ_i x[row, i] · W[out_feature, i] (+ b[out_feature])."""

    row: int  # the sample (leading axes flattened)
    out_feature: int
    x: np.ndarray  # (in_features,)
    weight: np.ndarray  # (in_features,)
    bias: float | None
    value: float

    @property
    def products(self) -> np.ndarray:
        return self.x * self.weight


@dataclass(frozen=True)
class NormStep:
    """Batch norm, one channel: y = γ · (x − μ) / √(σ² + ε) + β = scale · x + shift.

    Training: μ and σ² (biased) are the channel's batch statistics over ``values``;
    inference: the running statistics. scale = γ / √(σ² + ε), shift = β − scale · μ.
    """

    channel: int
    values: np.ndarray  # the channel's inputs over (N, H, W), flattened
    training: bool
    mean: float
    var: float
    eps: float
    gamma: float
    beta: float
    outputs: np.ndarray  # the channel's outputs, in the order of ``values``

    @property
    def inv_std(self) -> float:
        return float(1.0 / np.sqrt(self.var + self.eps))

    @property
    def scale(self) -> float:
        return self.gamma * self.inv_std

    @property
    def shift(self) -> float:
        return self.beta - self.scale * self.mean


@dataclass(frozen=True)
class WeightGradTerm:
    """One output position's share of a weight gradient: grad · window."""

    row: int
    col: int
    grad: float
    window: np.ndarray


@dataclass(frozen=True)
class WeightGradStep:
    """∂L/∂w[o, c] = Σ over output positions of ∂L/∂y[o, row, col] · window(row, col)."""

    batch: int
    out_channel: int
    in_channel: int
    terms: tuple[WeightGradTerm, ...]
    total: np.ndarray  # (K_h, K_w)


Step = (
    ConvStep
    | ScatterStep
    | PoolStep
    | RouteStep
    | WeightGradStep
    | InterpStep
    | ReluStep
    | DotStep
    | NormStep
)


@dataclass(frozen=True)
class Worked:
    """The result of an operator and, for a small problem, its working."""

    operator: str
    output: np.ndarray
    steps: tuple[Step, ...]
    complete: bool  # True when ``steps`` explain every output element
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    per_channel: tuple[np.ndarray, ...] = ()
    channel_names: tuple[str, ...] = ()
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # filled for backward
    grad_output: np.ndarray | None = None
    backward_steps: tuple[Step, ...] = ()  # where each output gradient goes (small problems)
    input_ndim: int = 4  # the caller's layout: 2 for (H, W), 3 for (C, H, W)
    updated: dict[str, np.ndarray] = field(default_factory=dict)  # batch norm: running stats

    @property
    def result(self) -> np.ndarray:
        """The output in the caller's layout (``output`` is (N, C, H, W), except for linear,
        whose output keeps the input's leading axes: (…, out_features))."""
        if self.input_ndim == 4 or self.output.ndim != 4:
            return self.output
        out = self.output[0]
        return out[0] if self.input_ndim == 2 and out.shape[0] == 1 else out

    def __str__(self) -> str:
        from convlens.reference.render import render

        return render(self)


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


# ---------------------------------------------------------------- the channel-wise operators


def global_avg_pool_steps(x: np.ndarray, out: np.ndarray) -> tuple[PoolStep, ...]:
    """y[n, c] = Σ x[n, c] / (H·W): one window covering the whole plane."""
    _, _, h, w = x.shape
    return tuple(
        PoolStep(
            "avg",
            b,
            ch,
            0,
            0,
            tuple(range(h)),
            tuple(range(w)),
            x[b, ch].copy(),
            float(out[b, ch, 0, 0]),
            total=float(x[b, ch].sum()),
            divisor=h * w,
        )
        for b, ch in np.ndindex(*x.shape[:2])
    )


def global_avg_pool_backward_steps(
    grad: np.ndarray, input_shape: tuple[int, ...]
) -> tuple[RouteStep, ...]:
    """Each ∂L/∂y[n, c] is shared equally, ÷ (H·W), over every cell of the plane."""
    _, _, h, w = input_shape
    steps = []
    for b, ch in np.ndindex(*grad.shape[:2]):
        g = float(grad[b, ch, 0, 0])
        targets = tuple((i, j, g / (h * w)) for i in range(h) for j in range(w))
        steps.append(RouteStep(b, ch, 0, 0, g, targets))
    return tuple(steps)


def upsample_steps(
    x: np.ndarray, out: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[InterpStep, ...]:
    """Each output pixel as Σ R[row, i] · C[col, j] · x[i, j] over the sources it mixes."""
    steps = []
    for b, ch, r, c in np.ndindex(*out.shape):
        terms = tuple(
            (int(i), int(j), float(rows[r, i] * cols[c, j]), float(x[b, ch, i, j]))
            for i in np.flatnonzero(rows[r])
            for j in np.flatnonzero(cols[c])
        )
        steps.append(InterpStep(b, ch, r, c, terms, float(out[b, ch, r, c])))
    return tuple(steps)


def upsample_backward_steps(
    grad: np.ndarray, steps: tuple[InterpStep, ...]
) -> tuple[RouteStep, ...]:
    """∂L/∂y[row, col] goes to each source pixel, times that source's weight."""
    routes = []
    for step in steps:
        g = float(grad[step.batch, step.channel, step.row, step.col])
        routes.append(
            RouteStep(
                step.batch,
                step.channel,
                step.row,
                step.col,
                g,
                tuple((i, j, g * weight) for i, j, weight, _ in step.terms),
                tuple(weight for _, _, weight, _ in step.terms),
            )
        )
    return tuple(routes)


def relu_steps(x: np.ndarray, out: np.ndarray) -> tuple[ReluStep, ...]:
    return tuple(
        ReluStep(b, ch, r, c, float(x[b, ch, r, c]), float(out[b, ch, r, c]))
        for b, ch, r, c in np.ndindex(*out.shape)
    )


def relu_backward_steps(grad: np.ndarray, mask: np.ndarray) -> tuple[RouteStep, ...]:
    """∂L/∂y passes whole to ∂L/∂x where x > 0, and nowhere else (0 at x = 0)."""
    steps = []
    for b, ch, r, c in np.ndindex(*grad.shape):
        g = float(grad[b, ch, r, c])
        targets = ((r, c, g),) if mask[b, ch, r, c] else ()
        steps.append(RouteStep(b, ch, r, c, g, targets))
    return tuple(steps)


def linear_steps(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, out: np.ndarray
) -> tuple[DotStep, ...]:
    """Every output as a dot product of an input row with a weight row (+ bias)."""
    rows, flat_out = x.reshape(-1, x.shape[-1]), out.reshape(-1, out.shape[-1])
    return tuple(
        DotStep(
            n,
            o,
            rows[n],
            weight[o],
            None if bias is None else float(bias[o]),
            float(flat_out[n, o]),
        )
        for n, o in np.ndindex(*flat_out.shape)
    )


def batch_norm_steps(
    x: np.ndarray,
    out: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    training: bool,
    eps: float,
) -> tuple[NormStep, ...]:
    """One step per channel: its statistics, scale and shift, and its values."""
    return tuple(
        NormStep(
            channel=ch,
            values=x[:, ch].ravel().copy(),
            training=training,
            mean=float(mean[ch]),
            var=float(var[ch]),
            eps=float(eps),
            gamma=1.0 if gamma is None else float(gamma[ch]),
            beta=0.0 if beta is None else float(beta[ch]),
            outputs=out[:, ch].ravel().copy(),
        )
        for ch in range(x.shape[1])
    )
