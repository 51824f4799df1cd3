"""Worked steps: the numbers behind every output element of a small problem.

Steps only hold numbers (windows, products, sums, where things land); ``render.py``
turns them into text, Markdown or LaTeX. Each step adds up to the element it explains,
and the tests check that it does. ``steps`` holds the records (and ``Worked``, an
operator's result with its working); ``sliding_window`` builds them for convolution,
transposed convolution and pooling; ``channelwise`` for the per-channel and per-element
operators.
"""

from convlens.reference.explain.channelwise import (
    batch_norm_steps,
    global_avg_pool_backward_steps,
    global_avg_pool_steps,
    linear_steps,
    relu_backward_steps,
    relu_steps,
    upsample_backward_steps,
    upsample_steps,
)
from convlens.reference.explain.sliding_window import (
    avg_pool2d_backward_steps,
    avg_pool2d_steps,
    conv2d_backward_steps,
    conv2d_steps,
    conv_transpose2d_backward_steps,
    conv_transpose2d_steps,
    max_pool2d_backward_steps,
    max_pool2d_steps,
)
from convlens.reference.explain.steps import (
    EXPLAIN_PER_PLANE,
    EXPLAIN_TOTAL,
    ChannelWork,
    ConvStep,
    DotStep,
    InterpStep,
    NormStep,
    PoolStep,
    ReluStep,
    RouteStep,
    ScatterStep,
    Step,
    WeightGradStep,
    WeightGradTerm,
    Worked,
    is_small,
)

__all__ = [
    "EXPLAIN_PER_PLANE",
    "EXPLAIN_TOTAL",
    "ChannelWork",
    "ConvStep",
    "DotStep",
    "InterpStep",
    "NormStep",
    "PoolStep",
    "ReluStep",
    "RouteStep",
    "ScatterStep",
    "Step",
    "WeightGradStep",
    "WeightGradTerm",
    "Worked",
    "avg_pool2d_backward_steps",
    "avg_pool2d_steps",
    "batch_norm_steps",
    "conv2d_backward_steps",
    "conv2d_steps",
    "conv_transpose2d_backward_steps",
    "conv_transpose2d_steps",
    "global_avg_pool_backward_steps",
    "global_avg_pool_steps",
    "is_small",
    "linear_steps",
    "max_pool2d_backward_steps",
    "max_pool2d_steps",
    "relu_backward_steps",
    "relu_steps",
    "upsample_backward_steps",
    "upsample_steps",
]
