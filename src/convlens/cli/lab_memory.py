"""``convlens lab memory``: parse, then delegate to ``labs.memory``."""

from __future__ import annotations

from typing import Annotated

import typer

from convlens.cli.console import handle_errors, print_text, stderr
from convlens.errors import ArgumentError


def register(lab: typer.Typer) -> None:
    @lab.command("memory")
    @handle_errors
    def memory(
        spec: Annotated[
            str, typer.Argument(help="A zoo model (zoo:NAME?arg=value) or package.module:factory.")
        ],
        input: Annotated[
            str, typer.Option("--input", "-i", help="One sample's shape C x H x W, e.g. 3x256x256.")
        ],
        batch: Annotated[
            int,
            typer.Option(
                "--batch", "-b", help="Batch size (BatchNorm in training mode needs 2 or more)."
            ),
        ] = 2,
        train_only: Annotated[
            list[str] | None,
            typer.Option(
                "--train-only",
                help="Glob over parameter names: train only these, freeze the rest; repeatable.",
            ),
        ] = None,
        freeze_bn: Annotated[
            bool,
            typer.Option(
                "--freeze-bn",
                help="Keep BatchNorm layers whose parameters are frozen in eval mode "
                "(as lab classify train --freeze-bn).",
            ),
        ] = False,
        optimizer: Annotated[
            str, typer.Option("--optimizer", help="adam, adamw, sgd or momentum (SGD 0.9).")
        ] = "adam",
        threads: Annotated[
            int, typer.Option("--threads", help="torch.set_num_threads (0: torch's default).")
        ] = 0,
        format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    ) -> None:
        """Run two real training steps on the CPU and put convlens's predicted training memory
        beside the measured one (parameters, gradients, optimizer state, saved activations),
        with the allocator's peak and what it held there."""
        import json

        from convlens.api import parse_shape
        from convlens.labs.memory import MemoryConfig, run
        from convlens.render.memory import render_memory_table

        if format not in ("table", "json"):
            raise ArgumentError(f"--format: '{format}' is not one of table, json.")
        c, h, w = parse_shape(input, spatial_axes=(2,))
        cfg = MemoryConfig(
            model=spec,
            input=(c, h, w),
            batch=batch,
            train_only=tuple(train_only or ()),
            freeze_bn=freeze_bn,
            optimizer=optimizer,
            threads=threads,
        )
        with stderr.status("two training steps on the CPU, profiled…"):
            result = run(cfg).to_dict()
        text = json.dumps(result, indent=2) if format == "json" else render_memory_table(result)
        print_text(text)
