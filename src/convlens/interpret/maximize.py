"""Feature visualisation: the input that maximises a unit, by regularised gradient ascent.

Plain ascent on pixels finds high-frequency patterns no photo contains; the regularisers
(Yosinski et al. 2015, Mahendran & Vedaldi 2015, Olah et al. 2017) keep the image natural:
random jitter (the pattern must survive small shifts), an L2 penalty (no saturated pixels),
total variation (smooth regions) and a periodic Gaussian blur (no pixel-level noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret.images import gaussian_blur
from convlens.interpret.methods import captured_output
from convlens.interpret.progress import Progress, silent
from convlens.interpret.sources import find_layer


@dataclass(frozen=True)
class MaximizeOptions:
    steps: int = 256
    lr: float = 0.05  # Adam step on pixels in [0, 1]
    jitter: int = 2  # roll the image by up to ± this many pixels each step
    l2: float = 0.0  # weight of mean((x − 0.5)²)
    tv: float = 0.0  # weight of the mean squared difference of neighbouring pixels
    blur_every: int = 4  # blur the image every this many steps (0: never)
    blur_sigma: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class Visualisation:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    objective: np.ndarray  # (steps,) the unit's value at each step (on the jittered image)
    start: float  # the unit's value on the starting image (no jitter)
    final: float  # the unit's value on the result (no jitter)
    unit: str  # "layer features.3 channel 5" or "class 7"


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertical and horizontal neighbours, (N, C, H, W) → scalar."""
    return ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + (
        (x[..., :, 1:] - x[..., :, :-1]) ** 2
    ).mean()


def _objective(
    model: nn.Module,
    layer: nn.Module | None,
    channel: int | None,
    target: int | None,
    name: str = "--layer",
) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    if target is not None:
        return (lambda x: model(x)[0, target]), f"class {target}"
    assert layer is not None and channel is not None

    def unit(x: torch.Tensor) -> torch.Tensor:
        with captured_output(layer, name) as box:
            model(x)
        if not 0 <= channel < box.output.shape[1]:
            raise ArgumentError(
                f"--channel {channel} is out of range: the layer has {box.output.shape[1]} "
                f"channels (0..{box.output.shape[1] - 1})."
            )
        return box.output[0, channel].mean()

    return unit, f"channel {channel}"


def maximize(
    model: nn.Module,
    size: tuple[int, int],
    layer: str | None = None,
    channel: int | None = None,
    target: int | None = None,
    options: MaximizeOptions | None = None,
    progress: Progress | None = None,
) -> Visualisation:
    """Ascend the mean activation of ``layer``'s ``channel``, or the score of class ``target``."""
    options = options or MaximizeOptions()
    progress = progress or silent
    if (channel is None) == (target is None):
        raise ArgumentError("give exactly one of --channel K (with --layer) and --class C.")
    if channel is not None and layer is None:
        raise ArgumentError("--channel needs --layer: the layer whose channel to maximise.")
    module = find_layer(model, layer) if channel is not None and layer is not None else None
    objective, unit = _objective(model, module, channel, target, f"--layer {layer}")
    if layer is not None and channel is not None:
        unit = f"layer {layer} {unit}"

    generator = torch.Generator().manual_seed(options.seed)
    start = (0.5 + 0.02 * torch.randn(1, 3, *size, generator=generator)).clamp(0, 1)
    x = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=options.lr)
    values = []
    for step in range(options.steps):
        shift = torch.randint(-options.jitter, options.jitter + 1, (2,), generator=generator)
        jittered = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
        value = objective(jittered)
        loss = -value + options.l2 * ((x - 0.5) ** 2).mean() + options.tv * total_variation(x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            if options.blur_every and (step + 1) % options.blur_every == 0:
                x.copy_(gaussian_blur(x, options.blur_sigma))
            x.clamp_(0.0, 1.0)
        values.append(float(value.detach()))
        progress(step + 1, options.steps, unit)
    with torch.no_grad():
        before, after = float(objective(start)), float(objective(x))
    image = x.detach()[0].permute(1, 2, 0).numpy().astype(np.float32)
    return Visualisation(image, np.asarray(values, dtype=np.float32), before, after, unit)
