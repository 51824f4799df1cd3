"""Entry point of the ``convlens`` command: builds the Typer app from command modules.

Each module in ``COMMAND_MODULES`` exposes ``register(app)``; adding a command
group is one line here and one module beside this file.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "analyze",
    "lab",
    "zoo",
    "op",
    "serve",
    "detect",
)

app = typer.Typer(
    name="convlens",
    help="A workbench for convolutional neural networks: exact shapes, parameters, "
    "MACs, receptive fields and memory, with the working shown.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """A workbench for convolutional neural networks."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"convlens.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
