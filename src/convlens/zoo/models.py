"""Imports every module that registers models (the registry loads this lazily)."""

from convlens.zoo import colour  # noqa: F401
