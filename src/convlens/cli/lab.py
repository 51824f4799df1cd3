"""``convlens lab colourize train | sweep | compare``: parse, then delegate to the lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from convlens.cli.console import handle_errors, stderr, stdout
from convlens.errors import ArgumentError

# Options shared by the three commands. Every default is None so that, with --resume,
# only the options actually typed are compared with the saved configuration.
Data = Annotated[
    str | None,
    typer.Option("--data", help="Folder holding cifar-10-batches-py/ (or that folder itself)."),
]
Classes = Annotated[
    str | None,
    typer.Option(help="Class names or numbers, comma-separated, or 'all'. (default: horse)"),
]
Model = Annotated[str | None, typer.Option(help="colour_cnn or colour_unet. (default: colour_cnn)")]
Kernel = Annotated[int | None, typer.Option(help="Convolution kernel size (odd). (default: 3)")]
Filters = Annotated[int | None, typer.Option(help="Filters of the first block (NF). (default: 32)")]
Colours = Annotated[
    int | None, typer.Option(help="Palette size k (k-means colours). (default: 24)")
]
Epochs = Annotated[int | None, typer.Option(help="Training epochs. (default: 25)")]
Batch = Annotated[
    int | None,
    typer.Option(help="Global batch size (split across torchrun processes). (default: 100)"),
]
Lr = Annotated[float | None, typer.Option(help="Adam learning rate. (default: 0.001)")]
Seed = Annotated[
    int | None, typer.Option(help="Seed for k-means, weights and batch order. (default: 0)")
]
Palette = Annotated[
    str | None, typer.Option(help="Reuse a saved palette.npy instead of running k-means.")
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or auto. (default: auto)")]
Threads = Annotated[
    int | None, typer.Option(help="torch.set_num_threads (0: torch's default). (default: 0)")
]
GridEvery = Annotated[
    int | None, typer.Option(help="Write an image grid every N epochs. (default: 5)")
]
KmeansOver = Annotated[
    str | None,
    typer.Option(
        help="k-means over every training pixel ('pixels') or every distinct colour once "
        "('colours', as the course handout describes). (default: pixels)"
    ),
]
Flip = Annotated[
    bool | None,
    typer.Option(
        "--flip/--no-flip", help="Mirror training images left-right at random. (default: off)"
    ),
]
LrSchedule = Annotated[
    str | None,
    typer.Option(help="constant, or cosine decay to 0 over all steps. (default: constant)"),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")]


def _options(**given: Any) -> dict[str, Any]:
    """The config fields the user typed (None means 'not given')."""
    return {k: v for k, v in given.items() if v is not None}


def _config(given: dict[str, Any], out: str | None = None) -> Any:
    from convlens.labs.colourize import ColourizeConfig

    if "data" not in given:
        raise ArgumentError(
            "--data is required: the folder holding CIFAR-10's cifar-10-batches-py/ "
            "(python version, https://www.cs.toronto.edu/~kriz/cifar.html)."
        )
    return ColourizeConfig(**given, out=out or "")


def _resumed_config(folder: Path, given: dict[str, Any]) -> Any:
    """The saved configuration with the typed options laid over it (checked by ``train``)."""
    from convlens.labs.colourize import config_from_saved, read_saved_config

    return config_from_saved(read_saved_config(folder), {**given, "out": str(folder)})


def register(app: typer.Typer) -> None:
    lab = typer.Typer(help="Training experiments (labs).", no_args_is_help=True)
    colourize = typer.Typer(
        help="Colourization as per-pixel classification on CIFAR-10 (CNN and U-Net).",
        no_args_is_help=True,
    )
    lab.add_typer(colourize, name="colourize")
    app.add_typer(lab, name="lab")

    @colourize.command("train")
    @handle_errors
    def train_command(
        data: Data = None,
        classes: Classes = None,
        model: Model = None,
        kernel: Kernel = None,
        num_filters: Filters = None,
        num_colours: Colours = None,
        epochs: Epochs = None,
        batch_size: Batch = None,
        lr: Lr = None,
        seed: Seed = None,
        out: Annotated[
            str | None, typer.Option(help="Run folder. (default: runs/<model>-b<batch>-s<seed>)")
        ] = None,
        palette: Palette = None,
        device: Device = None,
        threads: Threads = None,
        grid_every: GridEvery = None,
        kmeans_over: KmeansOver = None,
        flip: Flip = None,
        lr_schedule: LrSchedule = None,
        resume: Annotated[
            str | None,
            typer.Option(help="Continue the interrupted run in this folder (same settings)."),
        ] = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train one colourization network; every epoch is checkpointed (resumable)."""
        from convlens.labs.colourize import train

        given = _options(
            data=data,
            classes=classes,
            model=model,
            kernel=kernel,
            num_filters=num_filters,
            num_colours=num_colours,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            palette=palette,
            device=device,
            threads=threads,
            grid_every=grid_every,
            kmeans_over=kmeans_over,
            flip=flip,
            lr_schedule=lr_schedule,
        )
        if resume is not None:
            if out is not None and Path(out) != Path(resume):
                raise ArgumentError("--out and --resume name different folders; give one.")
            cfg = _resumed_config(Path(resume), given)
        else:
            cfg = _config(given, out)
        result = train(cfg, resume=resume is not None, console=stderr, progress_bar=not no_progress)
        if result.interrupted:
            raise typer.Exit(130)
        _print_final(result)

    @colourize.command("sweep")
    @handle_errors
    def sweep_command(
        batch_sizes: Annotated[
            str, typer.Option(help="Comma-separated batch sizes, one run each.")
        ] = "25,50,100,200,500,1000",
        data: Data = None,
        classes: Classes = None,
        model: Model = None,
        kernel: Kernel = None,
        num_filters: Filters = None,
        num_colours: Colours = None,
        epochs: Epochs = None,
        lr: Lr = None,
        seed: Seed = None,
        out: Annotated[str, typer.Option(help="Folder for the runs and the table.")] = (
            "runs/sweep"
        ),
        device: Device = None,
        threads: Threads = None,
        grid_every: GridEvery = None,
        kmeans_over: KmeansOver = None,
        flip: Flip = None,
        lr_schedule: LrSchedule = None,
        no_progress: NoProgress = False,
    ) -> None:
        """One training per batch size; a table (Markdown, CSV) and a plot of the results."""
        from convlens.labs.colourize import markdown_table, parse_batch_sizes, sweep

        sizes = parse_batch_sizes(batch_sizes)
        given = _options(
            data=data,
            classes=classes,
            model=model,
            kernel=kernel,
            num_filters=num_filters,
            num_colours=num_colours,
            epochs=epochs,
            lr=lr,
            seed=seed,
            device=device,
            threads=threads,
            grid_every=grid_every,
            kmeans_over=kmeans_over,
            flip=flip,
            lr_schedule=lr_schedule,
        )
        cfg = _config(given, out)
        rows = sweep(cfg, sizes, out, console=stderr, progress_bar=not no_progress)
        columns = [
            "batch_size",
            "epochs",
            "val_loss",
            "val_accuracy",
            "baseline_accuracy",
            "train_seconds",
        ]
        stdout.print(markdown_table(rows, columns), markup=False, highlight=False)
        stdout.print(f"wrote {out}/sweep.md, sweep.csv, sweep.png", markup=False)

    @colourize.command("compare")
    @handle_errors
    def compare_command(
        data: Data = None,
        classes: Classes = None,
        kernel: Kernel = None,
        num_filters: Filters = None,
        num_colours: Colours = None,
        epochs: Epochs = None,
        batch_size: Batch = None,
        lr: Lr = None,
        seed: Seed = None,
        palette: Palette = None,
        out: Annotated[
            str, typer.Option(help="Folder for both runs (reused when finished) and the table.")
        ] = "runs/compare",
        device: Device = None,
        threads: Threads = None,
        grid_every: GridEvery = None,
        kmeans_over: KmeansOver = None,
        flip: Flip = None,
        lr_schedule: LrSchedule = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train (or read finished runs of) the CNN and the U-Net with identical settings."""
        from convlens.labs.colourize import compare, markdown_table

        given = _options(
            data=data,
            classes=classes,
            kernel=kernel,
            num_filters=num_filters,
            num_colours=num_colours,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            palette=palette,
            device=device,
            threads=threads,
            grid_every=grid_every,
            kmeans_over=kmeans_over,
            flip=flip,
            lr_schedule=lr_schedule,
        )
        cfg = _config(given, out)
        rows = compare(cfg, out, console=stderr, progress_bar=not no_progress)
        columns = [
            "model",
            "params",
            "epochs",
            "val_loss",
            "val_accuracy",
            "baseline_accuracy",
            "train_seconds",
        ]
        stdout.print(markdown_table(rows, columns), markup=False, highlight=False)
        stdout.print(
            f"wrote {out}/compare.md, compare.csv, compare_curves.png, compare_grid.png",
            markup=False,
        )

    @colourize.command("evaluate")
    @handle_errors
    def evaluate_command(
        runs: Annotated[list[str], typer.Argument(help="Finished run folders.")],
        data: Annotated[
            str | None,
            typer.Option("--data", help="Where the data set is now, if it has moved."),
        ] = None,
    ) -> None:
        """Validation accuracy of finished runs with its spread over the validation images
        (standard error, 95 % bootstrap interval): how far another draw could move it."""
        from convlens.labs.colourize import spread

        spreads = [spread(run, data) for run in runs]
        stdout.print(_spread_table(spreads), markup=False, highlight=False)


def _spread_table(spreads: list[Any]) -> str:
    from convlens.labs.colourize import markdown_table

    rows = [
        {
            "run": s.out,
            "model": s.model,
            "epochs": s.epochs,
            "images": s.images,
            "val_accuracy": s.accuracy,
            "standard_error": s.standard_error,
            "interval": f"{100 * s.low:.2f} – {100 * s.high:.2f} %",
        }
        for s in spreads
    ]
    columns = ["run", "model", "epochs", "images", "val_accuracy", "standard_error", "interval"]
    return markdown_table(rows, columns)


def _print_final(result: Any) -> None:
    from convlens.labs.colourize import detect_distributed

    if not detect_distributed().is_main:
        return
    final = result.final
    stdout.print(
        f"{result.config.model}: {int(final['epoch'])} epochs, val loss {final['val_loss']:.4f}, "
        f"val accuracy {100 * final['val_accuracy']:.2f}% (most-frequent-colour baseline "
        f"{100 * final['baseline_accuracy']:.2f}%), {result.train_seconds:.0f} s of training; "
        f"wrote {result.out}/",
        markup=False,
        highlight=False,
    )
