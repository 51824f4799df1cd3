"""One registry of attribution methods, each turned into one H×W map per image.

A method registers how its attribution becomes a map at the model's input resolution:
gradient magnitudes take the maximum over colour channels (Simonyan et al. 2014),
Integrated Gradients sums them (so the map keeps completeness), Occlusion is one value per
pixel already, Grad-CAM(++) is upsampled bilinearly from its layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.errors import ArgumentError
from convlens.interpret import methods as m
from convlens.interpret.sources import Source, find_layer, last_convolution

MapFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, m.MethodOptions], torch.Tensor]


@dataclass(frozen=True)
class Method:
    name: str
    compute: MapFn  # (model, x (N,C,H,W), target (N,), options) → (N, H, W)
    signed: bool  # maps can be negative (evidence against the class)
    uses_layer: bool
    citation: str


METHODS: dict[str, Method] = {}


def register(
    name: str, signed: bool = False, uses_layer: bool = False, citation: str = ""
) -> Callable[[MapFn], MapFn]:
    """Add a method to ``METHODS``; a name registered twice is a programming error."""

    def decorate(fn: MapFn) -> MapFn:
        if name in METHODS:
            raise ValueError(f"attribution method '{name}' is registered twice")
        METHODS[name] = Method(name, fn, signed, uses_layer, citation)
        return fn

    return decorate


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ArgumentError(f"unknown method '{name}'; known: {', '.join(METHODS)}.")
    return METHODS[name]


def _layer(model: nn.Module, options: m.MethodOptions) -> nn.Module:
    if options.layer is None:
        raise ArgumentError("Grad-CAM needs a layer (resolve_options fills in the default).")
    return find_layer(model, options.layer)


@register("saliency", citation="Simonyan et al. 2014")
def _saliency(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, o: m.MethodOptions
) -> torch.Tensor:
    return m.in_batches(lambda a, b: m.saliency(model, a, b), x, t, o.batch_size).amax(dim=1)


@register("smoothgrad", citation="Smilkov et al. 2017")
def _smoothgrad(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, o: m.MethodOptions
) -> torch.Tensor:
    return m.smoothgrad(model, x, t, o.samples, o.sigma, o.seed, o.batch_size).amax(dim=1)


@register("integrated-gradients", signed=True, citation="Sundararajan et al. 2017")
def _integrated(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, o: m.MethodOptions
) -> torch.Tensor:
    return m.integrated_gradients(model, x, t, o.baseline, o.steps, o.batch_size).sum(dim=1)


@register("occlusion", signed=True, citation="Zeiler & Fergus 2014")
def _occlusion(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, o: m.MethodOptions
) -> torch.Tensor:
    return m.occlusion(model, x, t, o.window, o.stride, o.baseline, o.batch_size)


def _class_activation_map(cam: Callable[..., torch.Tensor]) -> MapFn:
    """A Grad-CAM-like method at ``options.layer``, upsampled to the input."""

    def compute(
        model: nn.Module, x: torch.Tensor, t: torch.Tensor, o: m.MethodOptions
    ) -> torch.Tensor:
        layer, name = _layer(model, o), f"--layer {o.layer}"
        maps = m.in_batches(lambda a, b: cam(model, a, b, layer, name), x, t, o.batch_size)
        return m.upsample(maps, (int(x.shape[-2]), int(x.shape[-1])))

    return compute


register("gradcam", uses_layer=True, citation="Selvaraju et al. 2017")(
    _class_activation_map(m.gradcam)
)
register("gradcam++", uses_layer=True, citation="Chattopadhay et al. 2018")(
    _class_activation_map(m.gradcam_plus_plus)
)


def resolve_options(source: Source, options: m.MethodOptions) -> m.MethodOptions:
    """Fill in the default Grad-CAM layer (the last convolution) and check a given one."""
    if options.layer is None:
        return replace(options, layer=last_convolution(source.model, source.input_size))
    find_layer(source.model, options.layer)
    return options


def compute_maps(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, options: m.MethodOptions
) -> torch.Tensor:
    """(N, H, W) maps of one method for N images and their targets."""
    return get_method(method).compute(model, x, target, options).detach()


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, K) class probabilities (softmax of the scores)."""
    with torch.no_grad():
        return torch.cat(
            [F.softmax(model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
        )


@dataclass(frozen=True)
class Attribution:
    """One method's map for one image, with what it explains."""

    method: str
    map: np.ndarray  # (H, W) float32 at the model's input resolution
    target: int
    target_probability: float
    predicted: int
    predicted_probability: float
    layer: str | None  # Grad-CAM(++) only


def resolve_target(
    source: Source, target: int | str | None, predicted: int, option: str = "--target"
) -> int:
    """The class to explain: a number, a class name, or (None) the predicted class."""
    if target is None:
        return predicted
    if isinstance(target, str) and not target.isdigit():
        names = list(source.class_names or [])
        if target.lower() not in names:
            known = ", ".join(f"{i}={n}" for i, n in enumerate(names)) or "none (numbers only)"
            raise ArgumentError(f"{option}: unknown class '{target}'; class names: {known}.")
        return names.index(target.lower())
    number = int(target)
    if not 0 <= number < source.num_classes:
        raise ArgumentError(
            f"{option} {number} is out of range: the model has {source.num_classes} classes "
            f"(0..{source.num_classes - 1})."
        )
    return number


def attribute(
    source: Source,
    pixels: torch.Tensor,
    method: str,
    target: int | str | None = None,
    options: m.MethodOptions | None = None,
) -> Attribution:
    """The map of ``method`` for one image (3, H, W) and a target (default: predicted)."""
    info = get_method(method)
    options = options or m.MethodOptions()
    if info.uses_layer:
        options = resolve_options(source, options)
    x = pixels[None]
    probabilities = predict(source.model, x)[0]
    predicted = int(probabilities.argmax())
    chosen = resolve_target(source, target, predicted)
    maps = compute_maps(source.model, x, torch.tensor([chosen]), method, options)
    return Attribution(
        method,
        maps[0].numpy().astype(np.float32),
        chosen,
        float(probabilities[chosen]),
        predicted,
        float(probabilities[predicted]),
        options.layer if info.uses_layer else None,
    )


def image_maps(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    options: m.MethodOptions,
    first_index: int = 0,
) -> np.ndarray:
    """(N, H, W) maps computed one image at a time (memory bounded by one image's work),
    image i's SmoothGrad noise seeded with ``options.seed + first_index + i``."""
    return np.stack(
        [
            compute_maps(
                model,
                x[i : i + 1],
                targets[i : i + 1],
                method,
                replace(options, seed=options.seed + first_index + i),
            )[0].numpy()
            for i in range(len(x))
        ]
    )
