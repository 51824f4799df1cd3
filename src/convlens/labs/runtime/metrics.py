"""Evaluation shared by the classifying labs (a class per image, or per pixel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convlens.labs.runtime.distributed import SINGLE, Dist, all_reduce_sum


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    inputs: torch.Tensor,  # (M, C, H, W)
    targets: torch.Tensor,  # (M,) or (M, H, W) class indices
    dist: Dist = SINGLE,
    chunk: int = 500,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) per target (an image, or a pixel) in eval mode.

    Under torchrun each process evaluates every W-th image (rank::W) and the sums are
    all-reduced, so every rank gets the same numbers over the whole set.
    """
    model.eval()
    mine = torch.arange(dist.rank, len(inputs), dist.world_size, device=inputs.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, len(mine), chunk):
        index = mine[start : start + chunk]
        logits = model(inputs[index])  # (b, K) or (b, K, H, W)
        loss_sum += F.cross_entropy(logits, targets[index], reduction="sum").double()
        correct += (logits.argmax(1) == targets[index]).sum().double()
    count = targets.numel()
    total_loss, total_correct = all_reduce_sum(
        [float(loss_sum), float(correct)], dist, inputs.device
    )
    return total_loss / count, total_correct / count


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """The most likely class: (n, K) logits → (n,); per pixel (n, K, H, W) → (n, H, W)."""
    model.eval()
    return torch.cat([model(inputs[i : i + chunk]).argmax(1) for i in range(0, len(inputs), chunk)])


@torch.no_grad()
def per_image_accuracy(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 500
) -> torch.Tensor:
    """(M,) float64: the fraction of each image's targets predicted right (0 or 1 for a
    class per image)."""
    right = predict(model, inputs, chunk) == targets
    return right.reshape(len(targets), -1).double().mean(1)
