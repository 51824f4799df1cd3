"""``convlens zoo list`` and ``convlens zoo show NAME``: parse, delegate, print."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from convlens.cli.console import handle_errors, stdout
from convlens.errors import ArgumentError
from convlens.render.text import shape_text


def format_shape(shape: tuple[int, ...]) -> str:
    """(3, 224, 224) → 3×224×224."""
    return shape_text(shape, empty="scalar")


def format_number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.4g}"


def list_table(pattern: str) -> Table:
    """The zoo as a table, from the catalog: no torch, no model built."""
    from convlens.zoo.catalog import ROWS, list_rows

    rows = list_rows(pattern)
    if not rows:
        raise ArgumentError(
            f"no model matches '{pattern}'. Patterns are shell-style ('resnet*', '*net*'); "
            f"run 'convlens zoo list' to see the {len(ROWS)} models."
        )
    table = Table(title=f"convlens model zoo ({len(rows)} models)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("paper")
    table.add_column("year", justify="right")
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("default input", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.name,
            escape(row.paper),
            str(row.year),
            f"{row.params:,}",
            format_shape(row.default_input),
        )
    return table


def show_entry(name: str) -> None:
    from convlens.zoo import get_entry
    from convlens.zoo.measure import measure, measure_figure

    entry = get_entry(name)
    stdout.print(f"[bold]{escape(name)}[/bold] — {escape(entry.citation.title)}")
    stdout.print(f"[bold]citation[/bold]  {escape(str(entry.citation))}")

    arguments = Table(title="arguments", title_justify="left")
    arguments.add_column("name", no_wrap=True)
    arguments.add_column("default", no_wrap=True)
    arguments.add_column("help")
    for arg in entry.arguments:
        arguments.add_row(arg.name, escape(repr(arg.default)), escape(arg.help))
    stdout.print(arguments)

    if entry.published:
        figures = Table(title="published figures vs. the rebuild", title_justify="left")
        for column in ("figure", "published", "rebuild", "tolerance", "match", "source / note"):
            figures.add_column(
                column, justify="right" if column in {"published", "rebuild"} else "left"
            )
        for key, figure in entry.published.items():
            measured = measure_figure(entry, figure)
            conditions = ", ".join(f"{k}={v!r}" for k, v in figure.arguments.items())
            label = f"{key} ({conditions})" if conditions else key
            tolerance = "exact" if figure.rel_tolerance == 0 else f"±{figure.rel_tolerance:.1%}"
            figures.add_row(
                escape(label),
                format_number(figure.value),
                format_number(measured),
                tolerance,
                "yes" if figure.matches(measured) else "[red]NO[/red]",
                escape(figure.note),
            )
        stdout.print(figures)
    else:
        stdout.print("[bold]published figures[/bold]  none (the rebuild's own counts are recorded)")

    if entry.notes:
        stdout.print(f"[bold]notes[/bold]  {escape(entry.notes)}")

    summary = measure(name)
    outputs = ", ".join(format_shape(shape) for shape in summary.output_shapes)
    stdout.print(
        f"[bold]summary[/bold]  {summary.params:,} parameters; input "
        f"{format_shape(summary.input_shape)} → output {outputs}; "
        f"{summary.macs:,} MACs (conv + linear multiply-accumulates, "
        "torch.utils.flop_counter total / 2, on the meta device)"
    )
    if entry.description:
        stdout.print(f"[bold]description[/bold]  {escape(entry.description)}")


def register(app: typer.Typer) -> None:
    zoo = typer.Typer(
        name="zoo",
        help="The model zoo: classic CNNs and the course networks as PyTorch modules.",
        no_args_is_help=True,
    )

    @zoo.command("list")
    @handle_errors
    def list_command(
        pattern: Annotated[str, typer.Argument(help="shell-style pattern, e.g. 'resnet*'")] = "*",
    ) -> None:
        """List the registered models: paper, year, parameters, default input."""
        stdout.print(list_table(pattern))

    @zoo.command("show")
    @handle_errors
    def show_command(
        name: Annotated[str, typer.Argument(help="a registered model name, e.g. resnet50")],
    ) -> None:
        """Citation, arguments, published figures vs. the rebuild, notes and a summary."""
        show_entry(name)

    app.add_typer(zoo, name="zoo")
