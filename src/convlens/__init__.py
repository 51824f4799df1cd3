"""convlens: a workbench for convolutional neural networks.

Importing the package loads the analysis core (the rule registry, the description
language's front door, the analyser) so that the first analysis pays no import cost;
it never imports torch — only analysing a PyTorch model, the zoo and the labs do.
"""

from __future__ import annotations

__version__ = "0.1.0"

from convlens.api import analyze, compare, explain
from convlens.core.registry import all_rules as _load_rules

_load_rules()

__all__ = ["__version__", "analyze", "compare", "explain"]
