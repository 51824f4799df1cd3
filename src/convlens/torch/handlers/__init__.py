"""PyTorch functions → convlens rules, one module per family; importing this package
registers every handler (``registry.HANDLERS``)."""

from convlens.torch.handlers import (  # noqa: F401
    arithmetic,
    attention_matmul,
    conv_linear,
    norm_activation,
    pooling_resampling,
    shape_parts,
)
