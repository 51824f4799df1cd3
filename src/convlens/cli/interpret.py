"""``convlens interpret …``: parse the options, delegate to ``convlens.interpret.tasks``,
write the files it returns and print its lines."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from convlens.cli.console import handle_errors, print_text, stderr, stdout

Src = Annotated[
    str,
    typer.Argument(
        help="a classify run folder, zoo:NAME[?arg=value] or package.module:factory",
        show_default=False,
    ),
]
Weights = Annotated[
    str | None,
    typer.Option(help="Weights for SRC: a .pt state dict or a .safetensors file."),
]
Size = Annotated[
    str | None,
    typer.Option(
        help="Model input size H or HxW; images of another size are resized to it. "
        "(default: a zoo model's input, else 32x32)"
    ),
]
Data = Annotated[
    str | None,
    typer.Option(help="CIFAR-10 python-layout folder; the image is from its test batch."),
]
Index = Annotated[int | None, typer.Option(help="Which test image of --data. (default: 0)")]
Image = Annotated[str | None, typer.Option(help="A PNG or JPEG file instead of --data.")]
Out = Annotated[str, typer.Option(help="Folder for the picture and the array.")]
Target = Annotated[
    str | None,
    typer.Option(help="Class to explain, number or name. (default: the predicted class)"),
]
Layer = Annotated[
    str | None,
    typer.Option(help="Layer name (module path). (default: the last convolution)"),
]
Seed = Annotated[int, typer.Option(help="Seed of every random draw.")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")]
Format = Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")]
Methods = Annotated[
    str,
    typer.Option(
        help="Comma-separated methods to test, or all (saliency, smoothgrad, "
        "integrated-gradients, occlusion, gradcam, gradcam++)."
    ),
]
Samples = Annotated[int, typer.Option(min=1, help="SmoothGrad: noisy copies averaged.")]
Sigma = Annotated[float, typer.Option(min=0.0, help="SmoothGrad: noise std (inputs in [0, 1]).")]
IgSteps = Annotated[int, typer.Option(min=1, help="Integrated Gradients: quadrature nodes.")]
Window = Annotated[
    int | None, typer.Option(min=1, help="Occlusion: patch side. (default: H/8, at least 2)")
]
Stride = Annotated[int | None, typer.Option(min=1, help="Occlusion: step. (default: window/2)")]
Baseline = Annotated[float, typer.Option(help="Value of an absent pixel (0 = black).")]


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A ``progress(done, total, label)`` callback drawing one Rich bar on stderr, started at
    its first report (bad input found before the work begins prints only its error)."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    task = None

    def report(done: int, total: int, label: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total, description=label)

    try:
        yield report
    finally:
        if task is not None:
            bar.stop()


def _finish(outcome: Any, out: str | None, fmt: str = "table") -> None:
    """Write the files (atomically), then print the lines or the table."""
    from convlens.interpret.output import write_files

    written = write_files(out, outcome.files) if out else []
    if outcome.table is not None:
        from convlens.interpret import render

        if fmt == "json":
            import json

            print_text(json.dumps(outcome.data, indent=2))
        elif fmt == "markdown":
            print_text(f"**{outcome.table_title}**\n\n" + render.markdown_table(outcome.table))
        else:
            stdout.print(render.rich_table(outcome.table_title, outcome.table))
    for line in outcome.lines:
        print_text(line)
    if written and fmt == "table":
        print_text("wrote " + ", ".join(str(p) for p in written))


def _check_format(fmt: str) -> None:
    from convlens.errors import ArgumentError

    if fmt not in ("table", "markdown", "json"):
        raise ArgumentError(f"--format must be table, markdown or json, got '{fmt}'.")


def _run_check(
    check: Any,
    source: str,
    weights: str | None,
    size: str | None,
    layer: str | None,
    samples: int,
    ig_steps: int,
    seed: int,
    fmt: str,
    out: str,
    no_progress: bool,
) -> None:
    """What ``sanity`` and ``faithfulness`` share: options, source, progress, output."""
    from convlens.interpret import tasks
    from convlens.interpret.methods import MethodOptions

    _check_format(fmt)
    options = MethodOptions(layer=layer, samples=samples, steps=ig_steps, seed=seed)
    loaded = tasks.open_source(source, weights, size)
    with progress_bar(not no_progress) as progress:
        outcome = check(loaded, options, progress)
    _finish(outcome, out, fmt)


# Options every attribution command takes, then each method's own (name, type, default).
_IMAGE_OPTIONS: list[tuple[str, Any, Any]] = [
    ("source", Src, inspect.Parameter.empty),
    ("weights", Weights, None),
    ("size", Size, None),
    ("data", Data, None),
    ("index", Index, None),
    ("image", Image, None),
    ("target", Target, None),
]
_METHOD_OPTIONS: dict[str, list[tuple[str, Any, Any]]] = {
    "saliency": [],
    "smoothgrad": [("samples", Samples, 50), ("sigma", Sigma, 0.15), ("seed", Seed, 0)],
    "integrated-gradients": [("steps", IgSteps, 50), ("baseline", Baseline, 0.0)],
    "occlusion": [("window", Window, None), ("stride", Stride, None), ("baseline", Baseline, 0.0)],
    "gradcam": [("layer", Layer, None)],
    "gradcam++": [("layer", Layer, None)],
}


def _attribution_command(interpret: typer.Typer, method: str, help_text: str) -> None:
    """One command per method, taking the image options and only the settings its method
    reads (its signature is built from the lists above, so Typer shows exactly those)."""
    options = [*_IMAGE_OPTIONS, *_METHOD_OPTIONS[method], ("out", Out, "interpret-out")]

    def command(**given: Any) -> None:
        from convlens.interpret import tasks
        from convlens.interpret.methods import MethodOptions

        source, weights, size, data, index, image, target, out = (
            given.pop(name) for name, _, _ in (*_IMAGE_OPTIONS, ("out", None, None))
        )
        loaded = tasks.open_source(source, weights, size)
        loaded, picture = tasks.choose_picture(loaded, data, index, image)
        outcome = tasks.attribution_task(loaded, picture, method, target, MethodOptions(**given))
        _finish(outcome, out)

    parameters = [
        inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind, default=default
        )
        for name, kind, default in options
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {name: kind for name, kind, _ in options}
    command.__doc__ = help_text + f" Writes OUT/{method}.png and OUT/{method}.npy (H×W float32)."
    interpret.command(method)(handle_errors(command))


ATTRIBUTION_HELP = {
    "saliency": "Gradient magnitude |∂score/∂x|, max over colour channels (Simonyan et al. 2014).",
    "smoothgrad": "Saliency averaged over noisy copies of the image (Smilkov et al. 2017).",
    "integrated-gradients": "Gradients integrated from a black image, summed over channels "
    "(Sundararajan et al. 2017).",
    "occlusion": "Drop of the class score when a patch is blacked out (Zeiler & Fergus 2014).",
    "gradcam": "Gradient-weighted class activation map of a layer, upsampled bilinearly "
    "(Selvaraju et al. 2017).",
    "gradcam++": "Grad-CAM with higher-order weights (Chattopadhay et al. 2018).",
}


def register(app: typer.Typer) -> None:
    interpret = typer.Typer(
        help="Look inside a classifier: activations, filters, feature visualisation, "
        "attribution maps, and sanity and faithfulness checks of those maps.",
        no_args_is_help=True,
    )
    app.add_typer(interpret, name="interpret")

    @interpret.command("activations")
    @handle_errors
    def activations_command(
        source: Src,
        layer: Annotated[
            list[str] | None,
            typer.Option(help="Layer to show (repeatable). (default: every convolution)"),
        ] = None,
        weights: Weights = None,
        size: Size = None,
        data: Data = None,
        index: Index = None,
        image: Image = None,
        max_channels: Annotated[int, typer.Option(min=1, help="Channels drawn per layer.")] = 64,
        out: Out = "interpret-out",
    ) -> None:
        """Feature maps of one image at each layer. Writes OUT/activations.png and
        OUT/activations.npz (one C×h×w array per layer)."""
        from convlens.interpret import tasks

        loaded = tasks.open_source(source, weights, size)
        loaded, picture = tasks.choose_picture(loaded, data, index, image)
        _finish(tasks.activations_task(loaded, picture, layer, max_channels), out)

    @interpret.command("filters")
    @handle_errors
    def filters_command(
        source: Src,
        layer: Annotated[
            str | None, typer.Option(help="A convolution. (default: the first one)")
        ] = None,
        weights: Weights = None,
        size: Size = None,
        out: Out = "interpret-out",
    ) -> None:
        """Learned kernels: RGB images for a layer reading 3 channels, else one tile per
        (output, input) channel. Writes OUT/filters.png and OUT/filters.npy."""
        from convlens.interpret import tasks

        _finish(tasks.filters_task(tasks.open_source(source, weights, size), layer), out)

    @interpret.command("maximize")
    @handle_errors
    def maximize_command(
        source: Src,
        layer: Annotated[str | None, typer.Option(help="Layer whose channel to maximise.")] = None,
        channel: Annotated[int | None, typer.Option(help="Channel of --layer.")] = None,
        class_: Annotated[
            str | None, typer.Option("--class", help="Class score to maximise (number or name).")
        ] = None,
        weights: Weights = None,
        size: Size = None,
        steps: Annotated[int, typer.Option(min=1, help="Gradient-ascent steps.")] = 256,
        lr: Annotated[float, typer.Option(min=0.0, help="Adam step on pixels.")] = 0.05,
        jitter: Annotated[int, typer.Option(min=0, help="Random shift, ± pixels.")] = 2,
        l2: Annotated[float, typer.Option(min=0.0, help="Weight of the L2 penalty.")] = 0.0,
        tv: Annotated[float, typer.Option(min=0.0, help="Weight of total variation.")] = 0.0,
        blur_every: Annotated[int, typer.Option(min=0, help="Blur every N steps (0: never).")] = 4,
        blur_sigma: Annotated[float, typer.Option(min=0.0, help="Blur std in pixels.")] = 0.5,
        seed: Seed = 0,
        out: Out = "interpret-out",
        no_progress: NoProgress = False,
    ) -> None:
        """Feature visualisation: the image that maximises a channel (--layer, --channel) or
        a class (--class), by regularised gradient ascent. Writes OUT/maximize.png and
        OUT/maximize.npy (H×W×3 float32 in [0, 1])."""
        from convlens.interpret import tasks
        from convlens.interpret.maximize import MaximizeOptions

        options = MaximizeOptions(steps, lr, jitter, l2, tv, blur_every, blur_sigma, seed)
        loaded = tasks.open_source(source, weights, size)
        with progress_bar(not no_progress) as progress:
            outcome = tasks.maximize_task(loaded, layer, channel, class_, options, progress)
        _finish(outcome, out)

    for method, text in ATTRIBUTION_HELP.items():
        _attribution_command(interpret, method, text)

    @interpret.command("sanity")
    @handle_errors
    def sanity_command(
        source: Src,
        data: Annotated[str, typer.Option(help="CIFAR-10 python-layout folder.")],
        images: Annotated[int, typer.Option(help="First N test images.")] = 8,
        methods: Methods = "all",
        layer: Layer = None,
        weights: Weights = None,
        size: Size = None,
        samples: Samples = 50,
        ig_steps: IgSteps = 50,
        seed: Seed = 0,
        format: Format = "table",
        out: Out = "interpret-out",
        no_progress: NoProgress = False,
    ) -> None:
        """Cascading model-parameter randomisation (Adebayo et al. 2018): Spearman rank
        correlation of each method's maps on the trained and the progressively randomised
        model. Writes OUT/sanity.png, OUT/sanity-maps.png and OUT/sanity.json."""
        from convlens.interpret import tasks

        def check(loaded: Any, options: Any, progress: Any) -> Any:
            return tasks.sanity_task(loaded, data, images, methods, options, seed, progress)

        _run_check(
            check, source, weights, size, layer, samples, ig_steps, seed, format, out, no_progress
        )

    @interpret.command("faithfulness")
    @handle_errors
    def faithfulness_command(
        source: Src,
        data: Annotated[str, typer.Option(help="CIFAR-10 python-layout folder.")],
        images: Annotated[int, typer.Option(help="First N test images.")] = 100,
        methods: Methods = "all",
        layer: Layer = None,
        weights: Weights = None,
        size: Size = None,
        steps: Annotated[int, typer.Option(help="Points on each curve after the start.")] = 64,
        blur_sigma: Annotated[
            float | None,
            typer.Option(min=0.0, help="Blur of the insertion canvas, px. (default: H/16)"),
        ] = None,
        deletion: Annotated[
            str,
            typer.Option(
                help="What a deleted pixel becomes: blur (its value in the insertion's blurred "
                "copy), mean (the images' mean colour, as RISE's reference code) or black."
            ),
        ] = "blur",
        samples: Samples = 50,
        ig_steps: IgSteps = 50,
        seed: Seed = 0,
        format: Format = "table",
        out: Out = "interpret-out",
        no_progress: NoProgress = False,
    ) -> None:
        """Deletion and insertion curves (Petsiuk et al. 2018) averaged over test images for
        each method and a random pixel order, with their areas under the curve. Writes
        OUT/faithfulness.png and OUT/faithfulness.json."""
        from convlens.interpret import tasks

        def check(loaded: Any, options: Any, progress: Any) -> Any:
            return tasks.faithfulness_task(
                loaded, data, images, methods, options, steps, blur_sigma, seed, progress, deletion
            )

        _run_check(
            check, source, weights, size, layer, samples, ig_steps, seed, format, out, no_progress
        )
