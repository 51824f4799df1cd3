"""One function per ``convlens interpret`` command: compute, draw, and hand back the files
to write and the lines to print. The CLI parses and writes; scripts call these directly."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from convlens.errors import ArgumentError
from convlens.interpret import plotting, render
from convlens.interpret.faithfulness import (
    DEFAULT_DELETION,
    deletion_substrate,
    faithfulness,
    substrate_words,
)
from convlens.interpret.features import activations, kernels
from convlens.interpret.images import (
    Picture,
    TestBatch,
    batch_pictures,
    file_picture,
    read_test_batch,
)
from convlens.interpret.maps import METHODS, attribute, resolve_options, resolve_target
from convlens.interpret.maximize import MaximizeOptions, maximize
from convlens.interpret.methods import MethodOptions
from convlens.interpret.output import json_bytes, npy_bytes, npz_bytes, png_bytes
from convlens.interpret.progress import Progress
from convlens.interpret.sanity import cascading_randomisation
from convlens.interpret.sources import Source, convolutions, load_source


@dataclass
class Outcome:
    """What a command produced: files (name → bytes), lines to print, an optional table."""

    files: dict[str, bytes] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    table: render.Rows | None = None
    table_title: str = ""
    data: dict[str, Any] | None = None  # the numbers, for --format json


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"32"`` or ``"32x48"`` → (H, W)."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) < 1:
        raise ArgumentError(f"--size must be H or HxW with positive integers, got '{text}'.")
    return (values[0], values[-1])


def open_source(source: str, weights: str | None, size: str | None) -> Source:
    return load_source(source, weights, parse_size(size))


def named_by(source: Source, batch: TestBatch | None) -> Source:
    """Take CIFAR class names from the data when the model has no names and as many classes."""
    if source.class_names is None and batch is not None and len(batch.names) == source.num_classes:
        return replace(source, class_names=tuple(batch.names))
    return source


def choose_picture(
    source: Source, data: str | None, index: int | None, image: str | None
) -> tuple[Source, Picture]:
    """``--image FILE`` or ``--data DIR [--index I]`` (default index 0), never both."""
    if image is not None and (data is not None or index is not None):
        raise ArgumentError("give either --image FILE or --data DIR --index I, not both.")
    if image is not None:
        return source, file_picture(image, source.input_size)
    if data is None:
        raise ArgumentError(
            "no image: give --data DIR --index I (the I-th CIFAR-10 test image) "
            "or --image FILE.png."
        )
    batch = read_test_batch(data)
    return named_by(source, batch), batch_pictures(batch, [index or 0], source.input_size)[0]


def class_label(source: Source, number: int) -> str:
    names = source.class_names
    return f"{number} ({names[number]})" if names and number < len(names) else str(number)


def probability(p: float) -> str:
    """Three decimals, or two significant digits below 0.001 (never a bare 0.000)."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def describe(picture: Picture) -> str:
    true = (
        f" (true class: {picture.label_name or picture.label})" if picture.label is not None else ""
    )
    return f"{picture.origin}{true}"


def attribution_task(
    source: Source,
    picture: Picture,
    method: str,
    target: str | None = None,
    options: MethodOptions | None = None,
) -> Outcome:
    result = attribute(source, picture.pixels, method, target, options)
    layer = f", layer {result.layer}" if result.layer else ""
    summary = (
        f"{method} of {source.name} on {describe(picture)}: predicted "
        f"{class_label(source, result.predicted)} p={probability(result.predicted_probability)}; "
        f"target {class_label(source, result.target)} p={probability(result.target_probability)}"
        f"{layer}"
    )
    title = (
        f"{method} · {picture.origin} · target {class_label(source, result.target)} "
        f"(p={result.target_probability:.2f}){layer}"
    )
    figure = plotting.attribution_figure(picture.pixels, result, title)
    height, width = result.map.shape
    stats = f"map {height}×{width}: min {result.map.min():.4g}, max {result.map.max():.4g}"
    return Outcome(
        {f"{method}.png": png_bytes(figure), f"{method}.npy": npy_bytes(result.map)},
        [summary, stats],
    )


def activations_task(
    source: Source, picture: Picture, layers: list[str] | None, max_channels: int = 64
) -> Outcome:
    """Feature maps of the named layers (default: every convolution)."""
    names = layers or convolutions(source.model, source.input_size)
    if not names:
        raise ArgumentError("the model runs no nn.Conv2d; name layers with --layer.")
    maps = activations(source.model, picture.pixels, names)
    figure = plotting.activations_figure(maps, max_channels)
    lines = [f"activations of {source.name} on {describe(picture)}"]
    lines += [f"  {name}: {'×'.join(map(str, a.shape))}" for name, a in maps.items()]
    return Outcome(
        {"activations.png": png_bytes(figure), "activations.npz": npz_bytes(maps)}, lines
    )


def filters_task(source: Source, layer: str | None) -> Outcome:
    """Kernels of a convolution (default: the first one the forward runs)."""
    if layer is None:
        convs = convolutions(source.model, source.input_size)
        if not convs:
            raise ArgumentError("the model runs no nn.Conv2d; name the layer with --layer.")
        layer = convs[0]
    weights = kernels(source.model, layer)
    figure = plotting.filters_figure(weights, layer)
    shape = "×".join(map(str, weights.shape))
    return Outcome(
        {"filters.png": png_bytes(figure), "filters.npy": npy_bytes(weights)},
        [f"filters of {source.name}, layer {layer}: {shape} (out × in × kh × kw)"],
    )


def maximize_task(
    source: Source,
    layer: str | None,
    channel: int | None,
    target: str | None,
    options: MaximizeOptions,
    progress: Progress | None = None,
) -> Outcome:
    number = None if target is None else resolve_target(source, target, 0, option="--class")
    result = maximize(source.model, source.input_size, layer, channel, number, options, progress)
    unit = result.unit if number is None else f"class {class_label(source, number)}"
    figure = plotting.maximize_figure(result, f"{source.name}: {unit}, seed {options.seed}")
    return Outcome(
        {"maximize.png": png_bytes(figure), "maximize.npy": npy_bytes(result.image)},
        [
            f"maximised {unit} of {source.name} over {options.steps} steps: "
            f"{result.start:.4g} → {result.final:.4g}"
        ],
    )


def test_images(
    source: Source, data: str, count: int
) -> tuple[Source, torch.Tensor, list[Picture]]:
    """The first ``count`` test images of ``data``, resized to the model's input."""
    batch = read_test_batch(data)
    if count < 1:
        raise ArgumentError(f"--images must be at least 1, got {count}.")
    if count > len(batch.labels):
        raise ArgumentError(
            f"--images {count} is more than the {len(batch.labels):,} test images of {data}."
        )
    pictures = batch_pictures(batch, range(count), source.input_size)
    return named_by(source, batch), torch.stack([p.pixels for p in pictures]), pictures


def check_methods(methods: str | list[str]) -> list[str]:
    """A list of registered method names, or ``"all"`` / a comma-separated string of them."""
    if isinstance(methods, str):
        methods = list(METHODS) if methods == "all" else [m.strip() for m in methods.split(",")]
    methods = [m for m in methods if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ArgumentError(
            f"--methods: unknown method '{unknown[0] if unknown else ''}'; "
            f"choose from {', '.join(METHODS)}."
        )
    return methods


def sanity_task(
    source: Source,
    data: str,
    count: int,
    methods: str | list[str],
    options: MethodOptions,
    seed: int = 0,
    progress: Progress | None = None,
) -> Outcome:
    methods = check_methods(methods)
    source, x, pictures = test_images(source, data, count)
    options = resolve_options(source, options)
    result = cascading_randomisation(source.model, x, methods, options, seed, progress)
    title = (
        f"{source.name}: cascading randomisation, Spearman ρ of |map| over {count} test images "
        f"(Grad-CAM layer {options.layer})"
    )
    return Outcome(
        {
            "sanity.png": png_bytes(plotting.sanity_figure(result, title)),
            "sanity-maps.png": png_bytes(plotting.sanity_maps_figure(result, pictures[0].pixels)),
            "sanity.json": json_bytes(render.sanity_json(result)),
        },
        [],
        render.sanity_rows(result),
        title,
        render.sanity_json(result),
    )


def faithfulness_task(
    source: Source,
    data: str,
    count: int,
    methods: str | list[str],
    options: MethodOptions,
    steps: int = 64,
    blur_sigma: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    deletion: str = DEFAULT_DELETION,
) -> Outcome:
    methods = check_methods(methods)
    deletion_substrate(torch.zeros(1, 3, 1, 1), deletion)  # bad --deletion before any work
    if steps < 1:
        raise ArgumentError(f"--steps must be at least 1, got {steps}.")
    source, x, _ = test_images(source, data, count)
    options = resolve_options(source, options)
    result = faithfulness(
        source.model, x, methods, options, steps, blur_sigma, seed, progress, deletion
    )
    title = (
        f"{source.name}: deletion (to {substrate_words(deletion)}) / insertion over {count} test "
        f"images, {result.step} pixels a step (Grad-CAM layer {options.layer})"
    )
    summary = render.faithfulness_json(result)
    return Outcome(
        {
            "faithfulness.png": png_bytes(plotting.faithfulness_figure(result, title)),
            "faithfulness.json": json_bytes(summary),
        },
        [],
        render.faithfulness_rows(result),
        title,
        summary,
    )
