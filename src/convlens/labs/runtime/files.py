"""The run folder: ``config.json``, ``checkpoint.pt``, ``metrics.csv``, tables — every file
written atomically (a temp file beside it, then ``os.replace``), so a crash or Ctrl-C never
leaves half a file, and nothing of an existing run is overwritten by accident."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from convlens.errors import ArgumentError, DataError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CURVES = "learning_curves.png"

C = TypeVar("C")


def atomic_write(path: Path, write: Callable[[Path], Any], suffix: str = "") -> None:
    """Write via ``write(tmp_path)`` to a temp file beside ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    write(tmp)
    os.replace(tmp, path)


def atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_json(path: Path, value: Any) -> None:
    atomic_text(path, json.dumps(value, indent=2) + "\n")


# -----------------------------------------------------------------------------
# checkpoint: format 1 (the colourization lab's since its first version)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    position: Any,
    metrics: list[dict[str, float]],
    config: dict[str, Any],
) -> None:
    state = {
        "format": 1,
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "position": dataclasses.asdict(position),
        "metrics": metrics,
        # Saved so a model with dropout (or any other draw from torch's global generator)
        # resumes exactly; the batch order and augmentation come from (seed, epoch) alone.
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path} is missing: nothing to resume.") from None
    except Exception as err:
        raise DataError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err})."
        ) from None


# -----------------------------------------------------------------------------
# config.json: the lab's config dataclass, with a diff on resume


def read_saved_config(folder: Path, what: str, flag: str = "") -> dict[str, Any]:
    """``config.json`` of a run folder; ``what`` names the lab's runs ("a colourization
    run folder"), ``flag`` the option that named the folder ("--resume"), if any."""
    where = f"{flag}: " if flag else ""
    if not folder.is_dir():
        raise ArgumentError(f"{where}{folder} does not exist, so it is not {what}.")
    try:
        saved = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise ArgumentError(f"{where}{folder} holds no {CONFIG}; it is not {what}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{folder / CONFIG} is not valid JSON ({err}).") from None
    if not isinstance(saved, dict):
        raise DataError(f"{folder / CONFIG} does not hold a configuration object.")
    return saved


def config_from_saved(cls: type[C], saved: dict[str, Any], given: dict[str, Any]) -> C:
    """A run's saved configuration with ``given`` laid over it (keys a newer or older
    version does not know are left out; missing ones take their defaults)."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{**{k: v for k, v in saved.items() if k in known}, **given})


def config_differences(saved: dict[str, Any], cfg: Any, may_change: frozenset[str]) -> list[str]:
    """What differs between a run's saved configuration and ``cfg``, besides what may.

    A key the run did not save (an option added since) counts as its default.
    """
    current = dataclasses.asdict(cfg)
    defaults = {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cfg)
    }
    return [
        f"{key}: run has {saved.get(key, defaults[key])!r}, asked for {current[key]!r}"
        for key in current
        if key not in may_change
        and _jsonish(saved.get(key, defaults[key])) != _jsonish(current[key])
    ]


def _jsonish(value: Any) -> Any:
    """Tuples and lists compare equal, as they do after a round trip through JSON."""
    return list(value) if isinstance(value, tuple) else value


# -----------------------------------------------------------------------------
# metrics.csv and tables


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    return (
        str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    )


def write_metrics_csv(path: Path, metrics: list[dict[str, float]]) -> None:
    """One row per epoch, the columns in the order of the lab's metric rows; floats written
    with ``repr`` so the CSV reads back bit for bit."""
    fields = list(metrics[0]) if metrics else []

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for row in metrics:
                writer.writerow({k: _fmt(row[k]) for k in fields})

    atomic_write(path, write)


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_tables(stem: Path, rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    """``stem.csv`` and ``stem.md`` of the same rows (Markdown through ``render.lab``)."""
    from convlens.render.lab import markdown_table

    stem.parent.mkdir(parents=True, exist_ok=True)

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(stem.with_suffix(".csv"), write_csv)
    atomic_text(stem.with_suffix(".md"), markdown_table(rows, columns, title))
