"""``convlens analyze``, ``explain`` and ``compare``: parse options and delegate."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from convlens.cli.console import handle_errors, print_text, stdout
from convlens.errors import ArgumentError

FORMAT_HELP = "table, markdown, json, csv, latex or html"


def parse_set(texts: list[str] | None) -> dict[str, Any]:
    """``--set k=3,NF=32 --set NC=24`` → {"k": 3, "NF": 32, "NC": 24}.

    Repeated ``--set`` options accumulate; one name given two different values is an
    error (the same value twice is harmless).
    """
    bindings: dict[str, Any] = {}
    for text in texts or ():
        for part in text.split(","):
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq or not name.isidentifier():
                raise ArgumentError(
                    f"--set takes NAME=VALUE pairs separated by commas, got {part!r}"
                )
            try:
                number = int(value)
            except ValueError:
                raise ArgumentError(
                    f"--set {name}: the value must be an integer, got {value!r}"
                ) from None
            if bindings.get(name, number) != number:
                raise ArgumentError(
                    f"--set {name} is given two values, {bindings[name]} and {number}"
                )
            bindings[name] = number
    return bindings


InputOpt = Annotated[
    str | None, typer.Option("--input", "-i", help="override the input shape, e.g. 3x224x224")
]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="batch size", min=1)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="values for symbols, e.g. k=3,NF=32,NC=24 (repeatable)"),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="float32, float16, bfloat16 or float64 (default: a model's own dtype; "
        "float32 for descriptions)",
    ),
]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="sgd, momentum, adam or adamw")]
ConventionOpt = Annotated[
    str,
    typer.Option(
        "--convention",
        help="FLOP convention: full, 2mac (torch.utils.flop_counter) or mac (fvcore)",
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--arg", help="an argument of a zoo model, e.g. --arg num_classes=10 (repeatable)"
    ),
]
FreezeBnOpt = Annotated[
    bool,
    typer.Option(
        "--freeze-bn",
        help="training memory with every BatchNorm kept in eval mode (running statistics, "
        "as when fine-tuning)",
    ),
]
FrozenOpt = Annotated[
    list[str] | None,
    typer.Option("--frozen", help="freeze layers whose name matches this pattern (repeatable)"),
]


def with_model_args(source: str, args: list[str] | None) -> str:
    """``zoo:NAME`` plus ``--arg k=v`` → ``zoo:NAME?k=v`` (the one place zoo args are read)."""
    if not args:
        return source
    if not source.startswith("zoo:"):
        raise ArgumentError("--arg applies to zoo:NAME models only")
    for arg in args:
        if "=" not in arg:
            raise ArgumentError(f"--arg takes NAME=VALUE, got {arg!r}")
    joiner = "&" if "?" in source else "?"
    return source + joiner + "&".join(args)


def build_report(
    source: str,
    input: str | None,
    batch: int,
    set_: list[str] | None,
    dtype: str | None,
    optimizer: str,
    convention: str,
    frozen: list[str] | None,
    model_args: list[str] | None = None,
    device: str = "meta",
    freeze_bn: bool = False,
) -> Any:
    from convlens.api import analyze

    source = with_model_args(source, model_args)
    extra = {"device": device} if device != "meta" else {}
    return analyze(
        source,
        input=input,
        batch=batch,
        dtype=dtype,
        optimizer=optimizer,
        convention=convention,
        frozen=tuple(frozen or ()),
        freeze_bn=freeze_bn,
        **extra,
        **parse_set(set_),
    )


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def analyze(
        source: Annotated[str, typer.Argument(help="a .cnn file, zoo:NAME or module:factory")],
        input: InputOpt = None,
        batch: BatchOpt = 1,
        set_: SetOpt = None,
        format: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "table",
        dtype: DtypeOpt = None,
        optimizer: OptimizerOpt = "adam",
        convention: ConventionOpt = "full",
        frozen: FrozenOpt = None,
        freeze_bn: FreezeBnOpt = False,
        model_args: ModelArgOpt = None,
        device: Annotated[
            str,
            typer.Option(
                "--device",
                help="models only: meta (trace by "
                "shape, default), or cpu / cuda to run a real "
                "forward",
            ),
        ] = "meta",
        depth: Annotated[
            int | None,
            typer.Option(
                "--depth", min=1, help="table of modules (or blocks) this many levels deep"
            ),
        ] = None,
    ) -> None:
        """Per-layer shapes, parameters, MACs/FLOPs, receptive field and memory.

        SOURCE is a .cnn file, zoo:NAME[?arg=value] or package.module:factory."""
        from convlens.render import FORMATS, renderer

        if format not in FORMATS:
            raise ArgumentError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
        report = build_report(
            source,
            input,
            batch,
            set_,
            dtype,
            optimizer,
            convention,
            frozen,
            model_args,
            device,
            freeze_bn,
        )
        from convlens.api import gc_paused

        with gc_paused():
            if format == "table":
                from convlens.render.table import print_report

                print_report(report, stdout, depth)
            else:
                print_text(renderer(format)(report, depth=depth))

    @app.command()
    @handle_errors
    def explain(
        source: Annotated[str, typer.Argument(help="a .cnn file, zoo:NAME or module:factory")],
        layer: Annotated[
            str | None,
            typer.Option("--layer", "-l", help="layer number or name (default: every layer)"),
        ] = None,
        what: Annotated[
            str, typer.Option("--what", "-w", help="shape, params, macs, flops, rf, memory or all")
        ] = "all",
        format: Annotated[
            str, typer.Option("--format", "-f", help="text, markdown or latex")
        ] = "text",
        input: InputOpt = None,
        batch: BatchOpt = 1,
        set_: SetOpt = None,
        dtype: DtypeOpt = None,
        optimizer: OptimizerOpt = "adam",
        frozen: FrozenOpt = None,
        freeze_bn: FreezeBnOpt = False,
        model_args: ModelArgOpt = None,
    ) -> None:
        """The derivation of each number, step by step: formula, numbers, result."""
        from convlens.explain.derivation import derivation, render_sections

        report = build_report(
            source,
            input,
            batch,
            set_,
            dtype,
            optimizer,
            "full",
            frozen,
            model_args,
            freeze_bn=freeze_bn,
        )
        print_text(render_sections(derivation(report, layer, what), format))

    @app.command()
    @handle_errors
    def compare(
        first: Annotated[str, typer.Argument(help="design A (.cnn)")],
        second: Annotated[str, typer.Argument(help="design B (.cnn)")],
        input: InputOpt = None,
        batch: BatchOpt = 1,
        set_: SetOpt = None,
        format: Annotated[
            str, typer.Option("--format", "-f", help="table, markdown or json")
        ] = "table",
        dtype: DtypeOpt = None,
        optimizer: OptimizerOpt = "adam",
        convention: ConventionOpt = "full",
    ) -> None:
        """Two designs side by side, per layer and in total, with ratios B / A."""
        from convlens.core.compare import compare_reports
        from convlens.render.compare import (
            render_comparison_json,
            render_comparison_markdown,
            render_comparison_text,
        )

        renderers = {
            "table": render_comparison_text,
            "markdown": render_comparison_markdown,
            "json": render_comparison_json,
        }
        if format not in renderers:
            raise ArgumentError(f"--format must be one of {', '.join(renderers)}")
        from dataclasses import replace

        from convlens.api import load_network, make_options, parse_shape
        from convlens.core.analyze import analyze_network
        from convlens.errors import SpecError

        bindings = parse_set(set_)
        # One --set serves both designs: each uses what it needs; a name neither uses
        # is a typo and is refused, as analyze refuses it.
        networks = [load_network(source, bindings, strict=False) for source in (first, second)]
        unused = sorted(set(bindings) - networks[0].used_bindings - networks[1].used_bindings)
        if unused:
            raise SpecError(f"--set names symbol(s) neither design uses: {', '.join(unused)}")
        if input is not None:
            networks = [replace(n, input_shape=parse_shape(input)) for n in networks]
        options = make_options(batch, dtype, optimizer, convention)
        reports = [analyze_network(network, options) for network in networks]
        print_text(renderers[format](compare_reports(reports[0], reports[1])))
