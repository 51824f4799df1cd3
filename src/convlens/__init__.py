"""convlens: a workbench for convolutional neural networks.

The public API is imported lazily so that ``import convlens`` stays cheap and
never imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "analyze", "compare", "explain"]


def __getattr__(name: str) -> Any:
    if name in ("analyze", "explain", "compare"):
        from convlens import api

        return getattr(api, name)
    raise AttributeError(f"module 'convlens' has no attribute {name!r}")
