"""A small CIFAR-10 CNN to develop and check ``convlens interpret`` on, until the classify
lab's runs exist.

    python benchmarks/interpret_dev_model.py --data ../shared/data/cifar10-10k \
        --out /tmp/interpret-dev/cifar_cnn.pt

trains it (10 epochs of 10,000 images; minutes on 2 idle CPU cores) and writes its state dict. Then
``interpret_dev_model:cifar_cnn`` with ``--weights`` that file is a ``module:factory`` source
(with ``benchmarks/`` on ``PYTHONPATH``). Like the classify lab's models it takes N×3×32×32
floats in [0, 1] and normalises inside.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Per-channel mean and std of the CIFAR-10 training set (the usual constants).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CifarCNN(nn.Module):
    """Five 3×3 conv–BN–ReLU blocks in three stages (32 → 16 → 8 px), global average, linear.

    One narrow block at full resolution keeps training cheap on a CPU; the last convolution
    (``features.14``) sees 8×8 positions: Grad-CAM's resolution.
    """

    def __init__(self, width: int = 16, classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))
        w = width
        self.features = nn.Sequential(
            *block(3, w), nn.MaxPool2d(2),  # (N, w, 16, 16)
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),  # (N, 2w, 8, 8)
            *block(2 * w, 4 * w), *block(4 * w, 4 * w),  # (N, 4w, 8, 8)
        )  # fmt: skip
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 32, 32) in [0, 1]
        x = (x - self.mean) / self.std
        return self.head(self.features(x).mean(dim=(2, 3)))  # (N, classes)


def cifar_cnn() -> CifarCNN:
    """The factory ``convlens interpret`` calls (weights come from ``--weights``)."""
    return CifarCNN()


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random 32×32 crop of the 4-pixel zero-padded image."""
    n = len(images)
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(3), images)
    padded = F.pad(images, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(32))[:, None, :, None]  # (N, 1, 32, 1)
    cols = (dx[:, None] + torch.arange(32))[:, None, None, :]  # (N, 1, 1, 32)
    return padded[
        torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols
    ]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from convlens.labs.cifar import load_cifar10

    train, test, _ = load_cifar10(args.data)
    to_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    x_train, y_train = to_tensor(train.images), torch.from_numpy(train.labels)
    x_test, y_test = to_tensor(test.images), torch.from_numpy(test.labels)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = cifar_cnn()
    batch = 128
    steps = args.epochs * math.ceil(len(x_train) / batch)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=0.1, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        losses = []
        for i in range(0, len(order), batch):
            index = order[i : i + batch]
            loss = F.cross_entropy(model(augment(x_train[index], generator)), y_train[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.3f}, "
            f"test accuracy {accuracy(model, x_test, y_test):.3f}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
