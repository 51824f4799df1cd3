"""Descriptions to start from: the zoo's (shipped in the package) and the repository's
``examples/`` (present in a source checkout, absent from an installed wheel)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import convlens

EXAMPLES = Path(convlens.__file__).resolve().parents[2] / "examples"


def _title(text: str) -> str:
    """The first comment line, which says what the description is."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def descriptions() -> list[dict[str, Any]]:
    """``[{"group", "name", "title", "text"}]``: examples first, then the zoo."""
    found = []
    if EXAMPLES.is_dir():
        for path in sorted(EXAMPLES.rglob("*.cnn")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(EXAMPLES).with_suffix("").as_posix()
            found.append({"group": "examples", "name": name, "title": _title(text), "text": text})
    zoo = resources.files("convlens.zoo") / "descriptions"
    for entry in sorted(zoo.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".cnn"):
            text = entry.read_text(encoding="utf-8")
            name = "zoo:" + entry.name.removesuffix(".cnn")
            found.append({"group": "zoo", "name": name, "title": _title(text), "text": text})
    return found
