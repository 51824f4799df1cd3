"""Each layer kind in PyTorch, one module per rule family: ``lowering/<family>.py`` lowers
the kinds whose rules are in ``core/rules/<family>.py``. Importing this package registers
every lowering and every tracer handler (``convlens.torch.registry``)."""

from convlens.torch.lowering import (  # noqa: F401
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
)
