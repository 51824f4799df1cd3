"""Importing this package registers every layer rule (one module per family)."""

from convlens.core.rules import (  # noqa: F401
    activation,
    conv,
    elementwise,
    excitation,
    linalg,
    merge,
    norm,
    pad,
    pool,
    reshape,
    shuffle,
    untraced,
)
