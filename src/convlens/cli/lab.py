"""``convlens lab colourize | classify | segment``: parse, then delegate to the lab
(``detect``, ``gradflow`` and ``memory`` in ``lab_detect``, ``lab_gradflow``, ``lab_memory``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from convlens.cli import lab_memory
from convlens.cli.console import handle_errors, print_text, stderr, stdout
from convlens.cli.lab_options import LabOption, with_options
from convlens.errors import ArgumentError

COMMON = {
    "data": LabOption(
        str, "Folder holding cifar-10-batches-py/ (or that folder itself).", ("--data",)
    ),
    "device": LabOption(str, "cpu, cuda or auto. (default: auto)"),
    "threads": LabOption(int, "torch.set_num_threads (0: torch's default). (default: 0)"),
}
COLOURIZE = {
    **COMMON,
    "epochs": LabOption(int, "Training epochs. (default: 25)"),
    "batch_size": LabOption(
        int, "Global batch size (split across torchrun processes). (default: 100)"
    ),
    "seed": LabOption(int, "Seed for k-means, weights and batch order. (default: 0)"),
    "classes": LabOption(
        str, "Class names or numbers, comma-separated, or 'all'. (default: horse)"
    ),
    "model": LabOption(str, "colour_cnn or colour_unet. (default: colour_cnn)"),
    "kernel": LabOption(int, "Convolution kernel size (odd). (default: 3)"),
    "num_filters": LabOption(int, "Filters of the first block (NF). (default: 32)"),
    "num_colours": LabOption(int, "Palette size k (k-means colours). (default: 24)"),
    "lr": LabOption(float, "Adam learning rate. (default: 0.001)"),
    "palette": LabOption(str, "Reuse a saved palette.npy instead of running k-means."),
    "grid_every": LabOption(int, "Write an image grid every N epochs. (default: 5)"),
    "kmeans_over": LabOption(
        str,
        "k-means over every training pixel ('pixels') or every distinct colour once "
        "('colours', as the course handout describes). (default: pixels)",
    ),
    "flip": LabOption(
        bool, "Mirror training images left-right at random. (default: off)", ("--flip/--no-flip",)
    ),
    "lr_schedule": LabOption(
        str, "constant, or cosine decay to 0 over all steps. (default: constant)"
    ),
}
COLOURIZE_RUN = ["data", "classes", "kernel", "num_filters", "num_colours", "epochs"]
COLOURIZE_RUN += ["lr", "seed", "device", "threads", "grid_every", "kmeans_over", "flip"]
COLOURIZE_RUN += ["lr_schedule"]

CLASSIFY = {
    **COMMON,
    "epochs": LabOption(int, "Training epochs. (default: 18)"),
    "batch_size": LabOption(
        int, "Global batch size (split across torchrun processes). (default: 256)"
    ),
    "seed": LabOption(int, "Seed for weights, batch order and augmentation. (default: 0)"),
    "classes": LabOption(str, "Class names or numbers, comma-separated, or 'all'. (default: all)"),
    "model": LabOption(
        str, "A zoo name (with ?arg=value) or module:factory. (default: cifar_resnet9?width=32)"
    ),
    "lr": LabOption(float, "Peak learning rate. (default: 0.2)"),
    "optimizer": LabOption(str, "sgd (Nesterov momentum) or adam. (default: sgd)"),
    "momentum": LabOption(float, "SGD momentum. (default: 0.9)"),
    "weight_decay": LabOption(
        float, "L2 weight decay (SGD: coupled; Adam: AdamW). (default: 5e-4)"
    ),
    "label_smoothing": LabOption(float, "Label smoothing of the cross-entropy. (default: 0.1)"),
    "augment": LabOption(
        str, "none, flip, or flip,crop (4-pixel reflect pad). (default: flip,crop)"
    ),
    "lr_schedule": LabOption(
        str, "onecycle (linear up, then down), cosine or constant. (default: onecycle)"
    ),
    "warmup": LabOption(float, "onecycle: the fraction of steps spent rising. (default: 0.25)"),
    "init": LabOption(
        str, "Initial weights: a classify run folder, a .pt state dict or a .safetensors file."
    ),
    "init_exclude": LabOption(
        list[str], "Glob over state-dict names left as built with --init (e.g. 'fc.*'); repeatable."
    ),
    "train_only": LabOption(
        list[str], "Glob over parameter names: train only these, freeze the rest; repeatable."
    ),
    "freeze_bn": LabOption(
        bool, "Keep BatchNorm layers whose parameters are frozen in eval mode.", ("--freeze-bn",)
    ),
}
CLASSIFY_TRAIN = ["data", "classes", "model", "epochs", "batch_size", "lr", "optimizer"]
CLASSIFY_TRAIN += ["momentum", "weight_decay", "label_smoothing", "augment", "lr_schedule"]
CLASSIFY_TRAIN += ["warmup", "seed", "init", "init_exclude", "train_only", "freeze_bn"]
CLASSIFY_TRAIN += ["device", "threads"]

SEGMENT = {
    "data": LabOption(str, "Folder with image/ and label/ PNGs of the same names.", ("--data",)),
    "device": COMMON["device"],
    "threads": COMMON["threads"],
    "model": LabOption(
        str,
        "A zoo name (with ?arg=value&…: unet_same, unet_valid, deeplabv3_cifar, "
        "deeplabv3_resnet50) or module:factory. (default: unet_same?base_channels=16&depth=4)",
    ),
    "width": LabOption(int, "Channels of the model's first stage (0: the model's own)."),
    "epochs": LabOption(int, "Training epochs. (default: 60)"),
    "batch_size": LabOption(int, "Crops per step. (default: 4)"),
    "crop": LabOption(
        int, "Side of a training crop's labelled window (the output tile). (default: 256)"
    ),
    "repeat": LabOption(int, "Crops per training section and epoch. (default: 8)"),
    "augment": LabOption(
        str, "Comma-separated elastic, flip, rot90, intensity, or none. (default: all four)"
    ),
    "elastic_sigma": LabOption(
        float, "Elastic deformation: σ of the 3×3 grid's displacements, pixels. (default: 10)"
    ),
    "loss": LabOption(
        str, "ce, weighted-ce (the paper's), dice or ce+dice. (default: weighted-ce)"
    ),
    "w0": LabOption(float, "Weight map: border weight w0. (default: 10)"),
    "sigma": LabOption(float, "Weight map: border width σ in pixels. (default: 5)"),
    "val": LabOption(int, "Sections held out for validation (seeded). (default: 5)"),
    "optimizer": LabOption(str, "adam (AdamW) or sgd (Nesterov, momentum 0.99). (default: adam)"),
    "lr": LabOption(float, "Peak learning rate. (default: 0.002)"),
    "weight_decay": LabOption(float, "Weight decay. (default: 0)"),
    "lr_schedule": LabOption(str, "cosine, onecycle or constant. (default: cosine)"),
    "warmup": LabOption(float, "onecycle: the fraction of steps spent rising. (default: 0.1)"),
    "tile": LabOption(
        int, "Prediction tile side (0: 572 for valid U-Nets, 1024 for padded models)."
    ),
    "seed": LabOption(int, "Seed for weights, validation split, crops, augmentation. (default: 0)"),
    "init": LabOption(
        str,
        "Initial weights: a segment run, a classify run (into the model's backbone), a .pt "
        "state dict or a .safetensors file.",
    ),
    "init_exclude": CLASSIFY["init_exclude"],
    "train_only": CLASSIFY["train_only"],
    "freeze_bn": CLASSIFY["freeze_bn"],
}
SEGMENT_TRAIN = ["data", "model", "width", "epochs", "batch_size", "crop", "repeat", "augment"]
SEGMENT_TRAIN += ["elastic_sigma", "loss", "w0", "sigma", "val", "optimizer", "lr"]
SEGMENT_TRAIN += ["weight_decay", "lr_schedule", "warmup", "tile", "seed", "init"]
SEGMENT_TRAIN += ["init_exclude", "train_only", "freeze_bn", "device", "threads"]
SEGMENT_FINETUNE = [n for n in SEGMENT_TRAIN if n not in ("train_only", "freeze_bn")]

Out = Annotated[
    str | None, typer.Option(help="Run folder. (default: runs/<model>-b<batch>-s<seed>)")
]
SegmentOut = Annotated[
    str | None, typer.Option(help="Run folder. (default: runs/segment/<model>-s<seed>)")
]
Resume = Annotated[
    str | None, typer.Option(help="Continue the interrupted run in this folder (same settings).")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")]
Orientations = Annotated[
    bool | None,
    typer.Option(
        "--tta/--no-tta",
        help="Average the probabilities over the eight orientations (quarter turns, each "
        "mirrored) [default: when the run trained with flip,rot90].",
        show_default=False,
    ),
]
DataMoved = Annotated[
    str | None, typer.Option("--data", help="Where the data set is now, if it has moved.")
]


def _require_data(given: dict[str, Any], what: str = "") -> None:
    if "data" not in given and what:
        raise ArgumentError(f"--data is required: {what}")
    if "data" not in given:
        raise ArgumentError(
            "--data is required: the folder holding CIFAR-10's cifar-10-batches-py/ "
            "(python version, https://www.cs.toronto.edu/~kriz/cifar.html)."
        )


def _train_config(
    cls: Any, what: str, given: dict[str, Any], out: str | None, resume: str | None
) -> Any:
    """A new config from the typed options, or with ``--resume`` the saved one with the
    typed options laid over it (``train`` checks what may change)."""
    from convlens.labs.runtime.files import config_from_saved, read_saved_config

    if resume is None:
        _require_data(given, getattr(cls, "DATA_HELP", ""))
        return cls(**given, out=out or "")
    if out is not None and Path(out) != Path(resume):
        raise ArgumentError("--out and --resume name different folders; give one.")
    saved = read_saved_config(Path(resume), what, "--resume")
    return config_from_saved(cls, saved, {**given, "out": resume})


def register(app: typer.Typer) -> None:
    lab = typer.Typer(help="Training experiments (labs).", no_args_is_help=True)
    colourize = typer.Typer(
        help="Colourization as per-pixel classification on CIFAR-10 (CNN and U-Net).",
        no_args_is_help=True,
    )
    classify = typer.Typer(
        help="Image classification on CIFAR-10 (ResNets, transfer learning).",
        no_args_is_help=True,
    )
    lab.add_typer(colourize, name="colourize")
    lab.add_typer(classify, name="classify")
    app.add_typer(lab, name="lab")
    lab_memory.register(lab)
    _register_segment(lab)

    from convlens.cli.lab_detect import register_detect
    from convlens.cli.lab_gradflow import register_gradflow

    register_detect(lab)
    register_gradflow(lab)

    @colourize.command("train")
    @handle_errors
    @with_options(
        COLOURIZE, [*COLOURIZE_RUN[:5], "model", *COLOURIZE_RUN[5:], "batch_size", "palette"]
    )
    def colourize_train(
        given: dict[str, Any],
        out: Out = None,
        resume: Resume = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train one colourization network; every epoch is checkpointed (resumable)."""
        from convlens.labs import colourize

        result = _train(colourize, colourize.ColourizeConfig, given, out, resume, no_progress)
        final = result.final
        _print_final(
            f"{result.config.model}: {int(final['epoch'])} epochs, val loss "
            f"{final['val_loss']:.4f}, val accuracy {100 * final['val_accuracy']:.2f}% "
            f"(most-frequent-colour baseline {100 * final['baseline_accuracy']:.2f}%), "
            f"{result.train_seconds:.0f} s of training; wrote {result.out}/"
        )

    @colourize.command("sweep")
    @handle_errors
    @with_options(COLOURIZE, [*COLOURIZE_RUN, "model"])
    def colourize_sweep(
        given: dict[str, Any],
        batch_sizes: Annotated[
            str, typer.Option(help="Comma-separated batch sizes, one run each.")
        ] = "25,50,100,200,500,1000",
        out: Annotated[str, typer.Option(help="Folder for the runs and the table.")] = "runs/sweep",
        no_progress: NoProgress = False,
    ) -> None:
        """One training per batch size; a table (Markdown, CSV) and a plot of the results."""
        from convlens.labs.colourize import SWEEP_COLUMNS, ColourizeConfig, parse_batch_sizes, sweep
        from convlens.render.lab import markdown_table

        sizes = parse_batch_sizes(batch_sizes)
        _require_data(given)
        rows = sweep(ColourizeConfig(**given, out=out), sizes, out, stderr, not no_progress)
        print_text(markdown_table(rows, [*SWEEP_COLUMNS, "train_seconds"]))
        stdout.print(f"wrote {out}/sweep.md, sweep.csv, sweep.png", markup=False)

    @colourize.command("compare")
    @handle_errors
    @with_options(COLOURIZE, [*COLOURIZE_RUN, "batch_size", "palette"])
    def colourize_compare(
        given: dict[str, Any],
        out: Annotated[
            str, typer.Option(help="Folder for both runs (reused when finished) and the table.")
        ] = "runs/compare",
        no_progress: NoProgress = False,
    ) -> None:
        """Train (or read finished runs of) the CNN and the U-Net with identical settings."""
        from convlens.labs.colourize import COMPARE_COLUMNS, ColourizeConfig, compare
        from convlens.render.lab import markdown_table

        _require_data(given)
        rows = compare(
            ColourizeConfig(**given, out=out), out, console=stderr, progress_bar=not no_progress
        )
        columns = [*COMPARE_COLUMNS[:3], *COMPARE_COLUMNS[4:], "baseline_accuracy", "train_seconds"]
        print_text(markdown_table(rows, columns))
        stdout.print(
            f"wrote {out}/compare.md, compare.csv, compare_curves.png, compare_grid.png",
            markup=False,
        )

    @colourize.command("evaluate")
    @handle_errors
    def colourize_evaluate(
        runs: Annotated[list[str], typer.Argument(help="Finished run folders.")],
        data: DataMoved = None,
    ) -> None:
        """Validation accuracy of finished runs with its spread over the validation images
        (standard error, 95 % bootstrap interval): how far another draw could move it."""
        from convlens.labs.colourize import spread
        from convlens.render.lab import spread_table

        print_text(spread_table([spread(run, data) for run in runs]))

    @classify.command("train")
    @handle_errors
    @with_options(CLASSIFY, CLASSIFY_TRAIN)
    def classify_train(
        given: dict[str, Any],
        out: Out = None,
        resume: Resume = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train a classifier on CIFAR-10; every epoch is checkpointed (resumable)."""
        from convlens.labs import classify

        result = _train(classify, classify.ClassifyConfig, given, out, resume, no_progress)
        final = result.final
        _print_final(
            f"{result.config.model}: {int(final['epoch'])} epochs, test accuracy "
            f"{100 * final['test_accuracy']:.2f}% (test loss {final['test_loss']:.4f}), "
            f"{result.train_seconds:.0f} s of training; wrote {result.out}/"
        )

    @classify.command("evaluate")
    @handle_errors
    def classify_evaluate(
        run: Annotated[str, typer.Argument(help="A finished classify run folder.")],
        data: Annotated[
            str | None, typer.Option("--data", help="Test on this folder's test_batch instead.")
        ] = None,
        format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    ) -> None:
        """Test accuracy with a 95 % bootstrap interval, and per-class accuracy."""
        import json

        from convlens.labs.classify import evaluate_run
        from convlens.render.lab import classify_evaluation_table

        if format not in ("table", "json"):
            raise ArgumentError(f"--format: '{format}' is not one of table, json.")
        result = evaluate_run(run, data)
        if format == "json":
            print_text(json.dumps(result, indent=2))
        else:
            print_text(classify_evaluation_table(result))


def _train(
    lab: Any, cls: Any, given: dict[str, Any], out: str | None, resume: str | None, quiet: bool
) -> Any:
    """Train (or resume) a run of ``lab``; Ctrl-C exits with status 130."""
    cfg = _train_config(cls, lab.LAB.what, given, out, resume)
    result = lab.train(cfg, resume=resume is not None, console=stderr, progress_bar=not quiet)
    if result.interrupted:
        raise typer.Exit(130)
    return result


def _print_final(line: str) -> None:
    """The final numbers, printed once (by rank 0 under torchrun)."""
    from convlens.labs.runtime.distributed import detect_distributed

    if detect_distributed().is_main:
        stdout.print(line, markup=False, highlight=False)


def _register_segment(lab: typer.Typer) -> None:
    segment = typer.Typer(
        help="Segmentation: the U-Net on EM sections (elastic deformation, weighted loss, "
        "overlap-tile prediction), DeepLabv3 fine-tuning.",
        no_args_is_help=True,
    )
    lab.add_typer(segment, name="segment")

    @segment.command("train")
    @handle_errors
    @with_options(SEGMENT, SEGMENT_TRAIN)
    def segment_train(
        given: dict[str, Any],
        out: SegmentOut = None,
        resume: Resume = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train a segmentation network; every epoch is checkpointed (resumable)."""
        from convlens.labs import segment as lab_module

        result = _train(lab_module, lab_module.SegmentConfig, given, out, resume, no_progress)
        final = result.final
        scores = (
            f"validation pixel error {final['val_pixel_error']:.4f}, Rand error "
            f"{final['val_rand_error']:.4f} (majority-class pixel error "
            f"{final['baseline_pixel_error']:.4f}), "
            if "val_pixel_error" in final
            else ""
        )
        _print_final(
            f"{result.config.model}: {int(final['epoch'])} epochs, {scores}"
            f"{result.train_seconds:.0f} s of training; wrote {result.out}/"
        )

    @segment.command("evaluate")
    @handle_errors
    def segment_evaluate(
        run: Annotated[str, typer.Argument(help="A finished segment run folder.")],
        data: Annotated[
            str, typer.Option("--data", help="Folder with image/ and label/ PNGs to score.")
        ],
        format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
        tta: Orientations = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Pixel error, foreground-restricted Rand error, VI, IoU and Dice per class."""
        import json

        from convlens.labs.seg_results import evaluate_run
        from convlens.render.lab import segment_evaluation_table

        if format not in ("table", "json"):
            raise ArgumentError(f"--format: '{format}' is not one of table, json.")
        result = evaluate_run(run, data, None if no_progress else _progress(), tta)
        if format == "json":
            print_text(json.dumps(result, indent=2))
        else:
            print_text(segment_evaluation_table(result))

    @segment.command("predict")
    @handle_errors
    def segment_predict(
        run: Annotated[str, typer.Argument(help="A segment run folder.")],
        data: Annotated[
            str,
            typer.Option("--data", help="A PNG, a folder of PNGs, or a folder with image/."),
        ],
        out: Annotated[str, typer.Option("--out", help="Folder for masks/ and probabilities/.")],
        tta: Orientations = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Overlap-tile prediction: masks (class values) and per-class probability maps."""
        from convlens.labs.seg_results import predict_run

        written = predict_run(run, data, out, None if no_progress else _progress(), tta)
        stdout.print(
            f"wrote {len(written)} PNGs to {out}/ (masks/, probabilities/<value>/)", markup=False
        )

    @segment.command("finetune")
    @handle_errors
    @with_options(SEGMENT, SEGMENT_FINETUNE)
    def segment_finetune(
        given: dict[str, Any],
        out: Annotated[
            str,
            typer.Option(help="Folder for the three runs (reused when finished) and the table."),
        ] = "runs/segment/finetune",
        no_progress: NoProgress = False,
    ) -> None:
        """Fine-tune from --init three ways — the last layer (classifier.4*), the head
        (classifier.*) and the whole model — and compare them in one table."""
        from convlens.labs.seg_finetune import FINETUNE_COLUMNS, compare_finetuning
        from convlens.labs.segment import SegmentConfig
        from convlens.render.lab import markdown_table

        _require_data(given, SegmentConfig.DATA_HELP)
        if "init" not in given:
            raise ArgumentError(
                "--init is required: the weights to fine-tune from (a classify run, a segment "
                "run, a .pt or a .safetensors file)."
            )
        rows = compare_finetuning(
            SegmentConfig(**given, out=out), out, stderr, progress_bar=not no_progress
        )
        print_text(markdown_table(rows, FINETUNE_COLUMNS))
        stdout.print(f"wrote {out}/finetune.md, finetune.csv", markup=False)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr, transient=True,
    )  # fmt: skip
