"""``convlens --version`` and the help of every command."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
import typer

from convlens import __version__
from convlens.cli.main import app
from tests.cli.test_errors import run


def test_version() -> None:
    code, output = run("--version")
    assert code == 0
    assert output == f"convlens {__version__}\n"
    assert __version__ == version("convlens")


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group, as the words that reach it (the root is ())."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "convlens")
def test_help_shows_no_type_for_flags(path: tuple[str, ...]) -> None:
    code, output = run(*path, "--help")
    assert code == 0, output
    assert "--help" in output
    assert "<bool>" not in output


def test_help_still_shows_the_type_of_options_that_take_values() -> None:
    code, output = run("analyze", "--help")
    assert code == 0
    assert "<int range>" in output  # --batch and --depth
