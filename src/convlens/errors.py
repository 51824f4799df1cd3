"""Errors that reach the user.

Every problem with the user's input is a ``ConvlensError``: the CLI prints its
message (one paragraph, no traceback) and exits with status 2. Code raises the
most specific subclass so callers of the Python API can catch what they expect.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConvlensError(Exception):
    """Bad input or an impossible request; ``str(err)`` is the user-facing message."""

    exit_code = 2


@dataclass(frozen=True)
class SourcePosition:
    """Where in a description a problem is: file, 1-based line and column."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(ConvlensError):
    """A description that cannot be parsed or analysed, with its position."""

    def __init__(self, message: str, position: SourcePosition | None = None, layer: str = ""):
        self.message = message
        self.position = position
        self.layer = layer
        where = f"{position}: " if position else ""
        in_layer = f"in layer '{layer}': " if layer else ""
        super().__init__(f"{where}{in_layer}{message}")


class ArgumentError(ConvlensError):
    """A command-line or API argument with a wrong value (names the argument)."""


class DataError(ConvlensError):
    """Data files that are missing, corrupt or of the wrong kind."""
