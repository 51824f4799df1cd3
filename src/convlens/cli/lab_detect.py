"""``convlens lab detect make-data | train | evaluate``: parse, then delegate to the lab."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from convlens.cli.console import handle_errors, print_text, stderr, stdout
from convlens.cli.lab import COMMON, NoProgress, Out, Resume, _print_final, _train
from convlens.cli.lab_options import LabOption, with_options
from convlens.errors import ArgumentError

DETECT = {
    **COMMON,
    "data": LabOption(
        str,
        "Folder with train.json, val.json and their images (from 'lab detect make-data').",
        ("--data",),
    ),
    "width": LabOption(int, "TinyYolo's width w (channels w, 2w, 4w, 8w). (default: 16)"),
    "num_anchors": LabOption(
        int, "Anchors k, clustered from the training boxes (k-means, 1 − IoU). (default: 3)"
    ),
    "epochs": LabOption(int, "Training epochs. (default: 12)"),
    "batch_size": LabOption(
        int, "Global batch size (split across torchrun processes). (default: 32)"
    ),
    "lr": LabOption(float, "AdamW's peak learning rate. (default: 0.002)"),
    "weight_decay": LabOption(float, "AdamW's weight decay. (default: 5e-4)"),
    "lr_schedule": LabOption(
        str, "After the warm-up: cosine (decay to 0) or constant. (default: cosine)"
    ),
    "warmup_epochs": LabOption(float, "Epochs of linear warm-up. (default: 1)"),
    "augment": LabOption(
        str,
        "none, hflip or hflip,vflip: flip each image with probability 1/2. (default: hflip,vflip)",
    ),
    "seed": LabOption(int, "Seed for anchors, weights, batch order and flips. (default: 0)"),
    "score_threshold": LabOption(
        float, "Detections kept for mAP: objectness × class score above. (default: 0.01)"
    ),
    "iou_threshold": LabOption(float, "IoU threshold of the class-aware NMS. (default: 0.45)"),
    "pictures": LabOption(int, "Validation images drawn in detections.png. (default: 16)"),
}
DETECT_TRAIN = ["data", "width", "num_anchors", "epochs", "batch_size", "lr", "weight_decay"]
DETECT_TRAIN += ["lr_schedule", "warmup_epochs", "augment", "seed", "score_threshold"]
DETECT_TRAIN += ["iou_threshold", "pictures", "device", "threads"]


def register_detect(lab: typer.Typer) -> None:
    detect = typer.Typer(
        help="Object detection: a tiny YOLO on synthetic shapes, scored by COCO mAP.",
        no_args_is_help=True,
    )
    lab.add_typer(detect, name="detect")

    @detect.command("make-data")
    @handle_errors
    def detect_make_data(
        folder: Annotated[str, typer.Argument(help="A new folder for the data set.")],
        train: Annotated[int, typer.Option("--train", help="Training images.")] = 4000,
        val: Annotated[int, typer.Option("--val", help="Validation images.")] = 500,
        seed: Annotated[int, typer.Option(help="Seed: the same seed, the same files.")] = 0,
        image_size: Annotated[int, typer.Option(help="Side of the square images.")] = 64,
        min_size: Annotated[int, typer.Option(help="Shortest longer side of a shape.")] = 10,
        max_size: Annotated[int, typer.Option(help="Longest longer side of a shape.")] = 30,
        no_progress: NoProgress = False,
    ) -> None:
        """Write a seeded synthetic data set: ellipses, rectangles and triangles of random
        size, colour and position on textured backgrounds; PNGs and COCO JSON."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from convlens.detection.synthetic import ShapesConfig
        from convlens.labs.detect import make_data

        shapes = ShapesConfig(image_size=image_size, min_size=min_size, max_size=max_size)
        progress = None
        if not no_progress:
            columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            progress = Progress(*columns, console=stderr, transient=True)
        with progress or contextlib.nullcontext():
            advance = None
            if progress is not None:
                task = progress.add_task("images", total=train + val)
                advance = lambda: progress.advance(task)  # noqa: E731
            made = make_data(folder, train, val, seed, shapes, advance)
        stdout.print(
            f"wrote {made['folder']}: {train} training images ({made['boxes']['train']} boxes) "
            f"and {val} validation images ({made['boxes']['val']} boxes) of {image_size}×"
            f"{image_size}, seed {seed}",
            markup=False,
            highlight=False,
        )

    @detect.command("train")
    @handle_errors
    @with_options(DETECT, DETECT_TRAIN)
    def detect_train(
        given: dict[str, Any],
        out: Out = None,
        resume: Resume = None,
        no_progress: NoProgress = False,
    ) -> None:
        """Train the tiny YOLO; every epoch is checkpointed (resumable) and scored by COCO mAP
        on the validation images."""
        from convlens.labs import detect

        if resume is None and "data" not in given:
            raise ArgumentError(
                "--data is required: a folder with train.json and val.json (COCO) and their "
                "images; 'convlens lab detect make-data FOLDER' makes one."
            )
        result = _train(detect, detect.DetectConfig, given, out, resume, no_progress)
        final = result.final
        _print_final(
            f"TinyYolo w{result.config.width}: {int(final['epoch'])} epochs, validation COCO "
            f"mAP {final['val_map']:.4f}, mAP@0.5 {final['val_map50']:.4f}, mAP@0.75 "
            f"{final['val_map75']:.4f}, {result.train_seconds:.0f} s of training; "
            f"wrote {result.out}/"
        )

    @detect.command("evaluate")
    @handle_errors
    def detect_evaluate(
        run: Annotated[str, typer.Argument(help="A finished detect run folder.")],
        data: Annotated[
            str | None,
            typer.Option("--data", help="Evaluate on this folder's val.json and images instead."),
        ] = None,
        detections: Annotated[
            str | None,
            typer.Option(
                "--detections",
                help="Write the detections (COCO results JSON) here. "
                "(default: RUN/val_detections.json)",
            ),
        ] = None,
        format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    ) -> None:
        """COCO mAP, mAP@0.5, mAP@0.75 and per-class AP on the validation images (as
        pycocotools' COCOeval); writes the detections as COCO results JSON."""
        import json

        from convlens.detection.render import render_coco
        from convlens.labs.detect import evaluate_run

        if format not in ("table", "json"):
            raise ArgumentError(f"--format: '{format}' is not one of table, json.")
        evaluation = evaluate_run(run, data, detections)
        facts = evaluation.facts
        if format == "json":
            print_text(json.dumps(facts, indent=2))
            return
        print_text(
            f"{facts['run']}: COCO mAP {facts['map']:.4f}, mAP@0.5 {facts['map50']:.4f}, "
            f"mAP@0.75 {facts['map75']:.4f} on {facts['images']} validation images "
            f"({facts['ground_truth_boxes']} boxes) of {facts['data']}; {facts['detections']} "
            f"detections written to {facts['detections_file']}\n\n"
        )
        print_text(render_coco(evaluation.result, [], 0.5, "text"))
