"""The one place that owns the Rich consoles and turns errors into exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from convlens.errors import ConvlensError

# Piped output gets a wide console so tables are never squeezed into 80 columns.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one paragraph to stderr and exit; never a traceback."""
    stderr.print(f"[bold red]error:[/bold red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def handle_errors(command: F) -> F:
    """Map ``ConvlensError`` (bad input) to exit status 2 with its message."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConvlensError as err:
            fail(_escape(str(err)), err.exit_code)
        except KeyboardInterrupt:
            stderr.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_text(text: str) -> None:
    """Write rendered text verbatim (no Rich markup interpretation)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
