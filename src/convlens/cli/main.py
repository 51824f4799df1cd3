"""Entry point of the ``convlens`` command: builds the Typer app from command modules.

Each module in ``COMMAND_MODULES`` exposes ``register(app)``; adding a command
group is one line here and one module beside this file.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperOption

COMMAND_MODULES = (
    "analyze",
    "lab",
    "zoo",
    "op",
    "serve",
    "detect",
    "interpret",
)

app = typer.Typer(
    name="convlens",
    help="A workbench for convolutional neural networks: exact shapes, parameters, "
    "MACs, receptive fields and memory, with the working shown.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from convlens import __version__

        print(f"convlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """A workbench for convolutional neural networks."""


def _flag_type(option: TyperOption, ctx: Any) -> str | None:
    """An on/off flag takes no value, so its help shows no type (Typer prints ``<bool>``)."""
    return None if option.is_flag else _option_type(option, ctx)


if hasattr(TyperOption, "display_type_rich"):  # Typer versions that print option types
    _option_type = TyperOption.display_type_rich
    TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign,assignment]


for _name in COMMAND_MODULES:
    importlib.import_module(f"convlens.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
