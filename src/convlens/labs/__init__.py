"""Training experiments, one file per lab (``colourize``: colourization on CIFAR-10;
``classify``: image classification on CIFAR-10; ``detect``: a tiny YOLO on synthetic
shapes), on the shared ``runtime``; ``memory`` measures one real training step against
``analyze``'s prediction.

Labs import torch and matplotlib; the analysis core never imports this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_run(folder: str | Path) -> tuple[Any, Any]:
    """``(model, config)`` of a finished or stopped classify run: the trained ``nn.Module``
    in eval mode on the CPU, taking N×3×H×W float32 images in [0, 1] (normalisation is
    part of the module), and the run's ``ClassifyConfig`` dataclass."""
    from convlens.labs.classify import load_run as load

    return load(folder)


__all__ = ["load_run"]
