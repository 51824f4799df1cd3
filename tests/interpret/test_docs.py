"""docs/labs/interpret.md stays true: its pictures exist and its commands are real."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from convlens.cli.main import app

PAGE = Path(__file__).resolve().parents[2] / "docs" / "labs" / "interpret.md"


def test_every_picture_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    pictures = re.findall(r"\]\((img/[^)]+)\)", text)
    missing = [p for p in pictures if not (PAGE.parent / p).is_file()]
    assert not missing, missing


def test_every_command_named_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    named = set(re.findall(r"convlens interpret ([a-z+-]+)", text))
    help_text = CliRunner().invoke(app, ["interpret", "--help"]).output
    assert named, "the page names no command"
    for command in named:
        assert CliRunner().invoke(app, ["interpret", command, "--help"]).exit_code == 0, command
        assert command in help_text
