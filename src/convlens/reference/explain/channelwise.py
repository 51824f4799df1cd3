"""Worked steps of the operators that act per channel or per element: global average
pooling, upsampling, ReLU, linear and batch norm, forward and backward."""

from __future__ import annotations

import numpy as np

from convlens.reference.explain.steps import (
    DotStep,
    InterpStep,
    NormStep,
    PoolStep,
    ReluStep,
    RouteStep,
)


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
