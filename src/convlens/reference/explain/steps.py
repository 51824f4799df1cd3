"""The records of worked steps: what one output element (or one gradient) is made of.

Steps only hold numbers; ``reference/render.py`` turns them into text, Markdown or LaTeX.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
