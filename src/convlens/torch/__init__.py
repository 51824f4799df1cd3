"""The PyTorch side of convlens: building modules from descriptions (and, later, tracing)."""
