"""The lab runs in a folder (``convlens serve --runs DIR``), read without the lab code.

A run folder holds ``config.json``, ``metrics.csv`` (a header row, then one row per
epoch) and PNG images (curves, image grids, ``grids/epoch_NNN.png``). Any of them may be
missing or half-written while a run trains: what cannot be read is reported, never fatal.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

CONFIG = "config.json"
METRICS = "metrics.csv"
MAX_DEPTH = 4  # how deep below DIR run folders are looked for
MAX_RUNS = 500


def is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file() or (folder / METRICS).is_file()


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Run folders below ``root`` (``root`` itself included), by relative path."""
    found: list[dict[str, Any]] = []

    def walk(folder: Path, depth: int) -> None:
        if len(found) >= MAX_RUNS:
            return
        if is_run(folder):
            found.append(_summary(root, folder))
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return found


def _summary(root: Path, folder: Path) -> dict[str, Any]:
    name = folder.relative_to(root).as_posix()
    return {
        "name": name if name != "." else folder.name,
        "path": name,
        "has_config": (folder / CONFIG).is_file(),
        "has_metrics": (folder / METRICS).is_file(),
    }


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it stays inside ``root`` (no ``..``, no symlink out)."""
    candidate = (root / relative).resolve()
    base = root.resolve()
    return candidate if candidate == base or candidate.is_relative_to(base) else None


def read_run(root: Path, relative: str) -> dict[str, Any] | None:
    """Config, metrics columns and image paths of one run; None if it is no run."""
    folder = resolve_inside(root, relative)
    if folder is None or not folder.is_dir() or not is_run(folder):
        return None
    problems: list[str] = []
    config = _read_config(folder / CONFIG, problems)
    columns, rows = _read_metrics(folder / METRICS, problems)
    images = sorted(
        p.relative_to(folder).as_posix()
        for pattern in ("*.png", "grids/*.png")
        for p in folder.glob(pattern)
        if p.is_file()
    )
    return {
        "path": relative,
        "config": config,
        "metrics": {"columns": columns, "rows": rows},
        "images": images,
        "problems": problems,
    }


def _read_config(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        problems.append(f"no {CONFIG}")
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{CONFIG} cannot be read: {err}")
        return None
    if not isinstance(config, dict):
        problems.append(f"{CONFIG} is not a JSON object")
        return None
    return config


def _read_metrics(path: Path, problems: list[str]) -> tuple[list[str], list[list[float | None]]]:
    """Columns and rows of numbers; a cell that is no finite number is None."""
    if not path.is_file():
        problems.append(f"no {METRICS}")
        return [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problems.append(f"{METRICS} cannot be read: {err}")
        return [], []
    if not table:
        problems.append(f"{METRICS} is empty")
        return [], []
    columns, rows = table[0], []
    for number, row in enumerate(table[1:], start=2):
        if len(row) != len(columns):
            problems.append(f"{METRICS} line {number}: {len(row)} cells, expected {len(columns)}")
            continue
        rows.append([_number(cell) for cell in row])
    return columns, rows


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
