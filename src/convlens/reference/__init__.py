"""NumPy reference operators with their gradients, and worked examples.

Each operator comes as a pair in micrograd's pattern — ``*_forward`` returns the result
and what the backward needs, ``*_backward(grad_output, cache)`` returns the gradients —
and the conv/pool operators also as a friendly call that takes textbook shapes and, with
``explain=True``, returns the result with its working::

    >>> from convlens import reference
    >>> worked = reference.conv2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 0], [0, 1]], explain=True)
    >>> worked.output[0, 0].tolist()
    [[6.0, 8.0], [12.0, 14.0]]

This package imports only NumPy.
"""

from __future__ import annotations

from convlens.reference.api import (
    avg_pool2d,
    conv2d,
    conv_transpose2d,
    max_pool2d,
    run,
)
from convlens.reference.conv import Conv2dCache, Conv2dGrads, conv2d_backward, conv2d_forward
from convlens.reference.conv_transpose import (
    ConvTranspose2dCache,
    ConvTranspose2dGrads,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from convlens.reference.explain import Worked
from convlens.reference.misc import (
    batch_norm_backward,
    batch_norm_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    upsample_backward,
    upsample_forward,
)
from convlens.reference.operators import OPERATORS, Operator
from convlens.reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from convlens.reference.render import render

__all__ = [
    "OPERATORS",
    "Conv2dCache",
    "Conv2dGrads",
    "ConvTranspose2dCache",
    "ConvTranspose2dGrads",
    "Operator",
    "Worked",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "global_avg_pool_backward",
    "global_avg_pool_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "render",
    "run",
    "upsample_backward",
    "upsample_forward",
]
