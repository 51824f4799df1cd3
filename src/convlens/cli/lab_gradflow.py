"""``convlens lab gradflow init | train | bn``: parse, then delegate to the lab."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from convlens.cli.console import handle_errors, print_text, stderr, stdout
from convlens.cli.lab import COMMON, NoProgress, _require_data
from convlens.cli.lab_options import LabOption, with_options
from convlens.errors import ArgumentError

GRADFLOW = {
    **COMMON,
    "archs": LabOption(str, "Comma-separated: plain, residual. (default: plain,residual)"),
    "norm": LabOption(
        str, "Normalisation after each convolution: batch, group or none. (default: batch)"
    ),
    "init": LabOption(
        str, "Convolution weights: kaiming (fan-out), xavier or normal. (default: kaiming)"
    ),
    "init_std": LabOption(float, "Standard deviation of --init normal. (default: 0.01)"),
    "dtype": LabOption(
        str, "float64 (tiny magnitudes measured, not flushed to 0) or float32. (default: float64)"
    ),
    "seed": LabOption(int, "Seed for weights, batches and augmentation. (default: 0)"),
    "epochs": LabOption(int, "Training epochs of every net. (default: 15)"),
    "lr": LabOption(float, "SGD learning rate (momentum, no Nesterov). (default: 0.1)"),
    "momentum": LabOption(float, "SGD momentum. (default: 0.9)"),
    "weight_decay": LabOption(float, "L2 weight decay. (default: 1e-4)"),
    "lr_schedule": LabOption(str, "cosine, constant or onecycle. (default: cosine)"),
    "warmup_epochs": LabOption(
        int,
        "Epochs of warm-up before the schedule starts, as He et al. 2016 warm up "
        "ResNet-110. (default: 0)",
    ),
    "warmup_lr": LabOption(float, "Learning rate the warm-up starts at. (default: 0.01)"),
    "warmup": LabOption(
        str,
        "constant: --warmup-lr throughout, then --lr (He et al. 2016); linear: from "
        "--warmup-lr up to --lr (Goyal et al. 2017). (default: constant)",
    ),
    "augment": LabOption(
        str, "none, flip, or flip,crop (4-pixel reflect pad). (default: flip,crop)"
    ),
}
INIT_OPTIONS = ["data", "archs", "norm", "init", "init_std", "dtype", "seed", "threads"]
TRAIN_OPTIONS = ["data", "archs", "norm", "epochs", "lr", "momentum", "weight_decay"]
TRAIN_OPTIONS += ["lr_schedule", "warmup_epochs", "warmup_lr", "warmup", "augment", "seed"]
TRAIN_OPTIONS += ["device", "threads"]

Format = Annotated[str, typer.Option("--format", help="table or json.")]


def _check_format(format: str) -> None:
    if format not in ("table", "json"):
        raise ArgumentError(f"--format: '{format}' is not one of table, json.")


def _report(result: dict[str, Any], table: str, format: str, wrote: str) -> None:
    if format == "json":
        print_text(json.dumps(result, indent=2))
    else:
        print_text(table)
        stdout.print(f"wrote {wrote}", markup=False)


def register_gradflow(lab: typer.Typer) -> None:
    gradflow = typer.Typer(
        help="Gradient flow: vanishing gradients, the degradation of deep plain nets, "
        "residual connections and batch normalisation, measured on CIFAR-10.",
        no_args_is_help=True,
    )
    lab.add_typer(gradflow, name="gradflow")

    @gradflow.command("init")
    @handle_errors
    @with_options(GRADFLOW, INIT_OPTIONS)
    def gradflow_init(
        given: dict[str, Any],
        depths: Annotated[str, typer.Option(help="Comma-separated depths 6n + 2.")] = "8,20,56",
        batch_size: Annotated[int, typer.Option(help="Images in the one batch.")] = 128,
        out: Annotated[str, typer.Option(help="Folder for the JSON, table and plot.")] = (
            "runs/gradflow/init"
        ),
        format: Format = "table",
        no_progress: NoProgress = False,
    ) -> None:
        """Per-layer activations and gradients of each network at initialisation.

        One forward and backward pass on one batch of real images: per layer, first to
        last, the activation std and the gradient norms of activations and weights."""
        from convlens.labs.gradflow_init import (
            INIT_COLUMNS,
            INIT_FILE,
            InitConfig,
            init_rows,
            measure_init,
        )
        from convlens.render.lab import markdown_table

        _check_format(format)
        _require_data(given)
        cfg = InitConfig(**given, depths=depths, batch_size=batch_size, out=out)
        result = measure_init(cfg, stderr, not no_progress)
        table = markdown_table(init_rows(result), INIT_COLUMNS)
        _report(result, table, format, f"{out}/{INIT_FILE}.json, .md, .png")

    @gradflow.command("train")
    @handle_errors
    @with_options(GRADFLOW, TRAIN_OPTIONS)
    def gradflow_train(
        given: dict[str, Any],
        depths: Annotated[str, typer.Option(help="Comma-separated depths 6n + 2.")] = "20,56",
        batch_size: Annotated[int, typer.Option(help="Batch size of every net.")] = 128,
        out: Annotated[
            str, typer.Option(help="Folder for one run folder per net, the JSON, table, plot.")
        ] = "runs/gradflow/train",
        format: Format = "table",
        no_progress: NoProgress = False,
    ) -> None:
        """Train plain nets and ResNets: the degradation problem of He et al. 2016.

        Training and test error per epoch beside each layer's gradient norm over
        training; one run folder per net, finished nets are read back."""
        from convlens.labs.gradflow import (
            TRAIN_COLUMNS,
            TRAIN_FILE,
            NetConfig,
            train_nets,
            train_rows,
        )
        from convlens.render.lab import markdown_table

        _check_format(format)
        _require_data(given)
        archs = given.pop("archs", "plain,residual")
        base = NetConfig(**given, batch_size=batch_size)
        result, runs = train_nets(base, archs, depths, out, stderr, not no_progress)
        table = markdown_table(train_rows(runs), TRAIN_COLUMNS)
        _report(result, table, format, f"{out}/{TRAIN_FILE}.json, .md, .png")

    @gradflow.command("bn")
    @handle_errors
    @with_options(GRADFLOW, ["data", "seed", "device", "threads"])
    def gradflow_bn(
        given: dict[str, Any],
        scales: Annotated[str, typer.Option(help="(a) Factors a of the weights.")] = (
            "0.01,0.1,1,10,100"
        ),
        batch_sizes: Annotated[str, typer.Option(help="(b), (c) Batch sizes.")] = "2,8,32,128",
        norms: Annotated[str, typer.Option(help="(b) Normalisations trained.")] = (
            "batch,group,none"
        ),
        depth: Annotated[int, typer.Option(help="(b) Depth of the residual nets trained.")] = 8,
        epochs: Annotated[int, typer.Option(help="(b) Epochs of every training.")] = 3,
        lr: Annotated[float, typer.Option(help="(b) Learning rate at batch 128 (× B/128).")] = 0.1,
        draws: Annotated[int, typer.Option(help="(b) Batches drawn per batch size.")] = 50,
        out: Annotated[
            str, typer.Option(help="Folder for the trainings (runs/), the JSON, tables, plot.")
        ] = "runs/gradflow/bn",
        format: Format = "table",
        no_progress: NoProgress = False,
    ) -> None:
        """Batch normalisation measured: scale invariance, batch size, train vs eval mode.

        (a) BN(a·W·x) = BN(W·x) and ∂L/∂(aW) = ∂L/∂W / a on a real layer and batch; (b)
        the spread of batch statistics and the test accuracy of short trainings with
        BatchNorm, GroupNorm and none as the batch shrinks; (c) one BN layer in training
        and evaluation mode."""
        from convlens.labs.gradflow_bn import BN_FILE, BnConfig, bn_tables, measure_bn

        _check_format(format)
        _require_data(given)
        cfg = BnConfig(**given, scales=scales, batch_sizes=batch_sizes, norms=norms,
                       depth=depth, epochs=epochs, lr=lr, draws=draws, out=out)  # fmt: skip
        result = measure_bn(cfg, stderr, not no_progress)
        _report(result, bn_tables(result), format, f"{out}/{BN_FILE}.json, .md, .png")
