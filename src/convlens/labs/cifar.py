"""CIFAR-10 "python version" reader with a restricted unpickler (no torchvision).

The official layout is a folder ``cifar-10-batches-py/`` holding ``data_batch_1`` ..
``data_batch_5``, ``test_batch`` and ``batches.meta``. Each batch is a Python-2 pickle
of a dict ``{data: uint8 (N, 3072), labels: [int], filenames, batch_label}``; a row is
the R plane, then G, then B, each 32 × 32 row-major.

``pickle.load`` would run whatever a foreign file asks for, so ``RestrictedUnpickler``
admits only the globals the official files reference: NumPy array reconstruction
(``_reconstruct``, ``ndarray``, ``dtype``). Everything else is refused with a
``DataError`` naming the file, before any code from the file runs.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convlens.errors import ArgumentError, DataError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
OBTAIN = (
    "Download the CIFAR-10 python version from https://www.cs.toronto.edu/~kriz/cifar.html "
    "(cifar-10-python.tar.gz) and extract it, so that PATH/cifar-10-batches-py/ holds "
    "data_batch_1..5, test_batch and batches.meta; pass PATH (or the cifar-10-batches-py "
    "folder itself) as --data."
)


def _numpy_reconstruct() -> Any:
    try:  # NumPy 2 moved the module; the files name the old one
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
    return _reconstruct


# (module, name) → object. Resolved here, never through importlib on file input.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and NumPy arrays."""

    def __init__(self, file: Any, source: Path):
        super().__init__(file, encoding="latin1")  # py2 str → str keys; arrays stay bytes-exact
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: refused to unpickle '{module}.{name}'. Only plain containers "
                "and NumPy arrays are admitted (the official CIFAR-10 files contain nothing "
                "else), so this is not a CIFAR-10 batch file or it has been tampered with."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.source}: persistent ids are not allowed in a CIFAR-10 file.")


def load_pickle(path: Path) -> Any:
    """Unpickle one file with ``RestrictedUnpickler``; any failure is a ``DataError``."""
    try:
        with open(path, "rb") as handle:
            return RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path} is missing. {OBTAIN}") from None
    except Exception as err:  # truncated, not a pickle, wrong protocol, ...
        raise DataError(
            f"{path} is not a readable CIFAR-10 pickle ({type(err).__name__}: {err}). "
            f"Replace it with the original file. {OBTAIN}"
        ) from None


@dataclass(frozen=True)
class Split:
    """Images of one split, already filtered to the chosen classes."""

    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    labels: np.ndarray  # (N,) int64, original CIFAR-10 label numbers


def find_folder(path: str | Path) -> Path:
    """Accept either the parent of ``cifar-10-batches-py`` or that folder itself."""
    root = Path(path).expanduser()
    folder = root if root.name == FOLDER or (root / META_FILE).exists() else root / FOLDER
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 data folder {folder} does not exist. {OBTAIN}")
    missing = [n for n in (*TRAIN_FILES, TEST_FILE, META_FILE) if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 data folder {folder} is incomplete: missing {', '.join(missing)}. {OBTAIN}"
        )
    return folder


def label_names(folder: Path) -> list[str]:
    meta = load_pickle(folder / META_FILE)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(
            f"{folder / META_FILE} has no list 'label_names'; not a CIFAR-10 meta file."
        )
    return names


def resolve_classes(classes: str | list[str] | list[int] | None, names: list[str]) -> list[int]:
    """Class names or numbers (``"horse"``, ``"7"``, ``"cat,dog"``) → sorted label numbers.

    ``None`` or ``"all"`` selects every class.
    """
    if classes is None or classes == "all":
        return list(range(len(names)))
    items = classes.split(",") if isinstance(classes, str) else list(classes)
    chosen: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if text.isdigit() and int(text) < len(names):
            chosen.add(int(text))
        elif text in names:
            chosen.add(names.index(text))
        else:
            raise ArgumentError(
                f"--classes: unknown class '{item}'. Known classes: "
                f"{', '.join(f'{i}={n}' for i, n in enumerate(names))}."
            )
    if not chosen:
        raise ArgumentError("--classes: no class given.")
    return sorted(chosen)


def _labels(values: Any, path: Path) -> np.ndarray:
    """'labels': a flat sequence of non-negative integers, one per image."""
    try:
        labels = np.asarray(values)
    except Exception:  # ragged nesting
        labels = np.asarray([None])
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise DataError(
            f"{path}: 'labels' must be a flat list of integer class numbers; got "
            f"{labels.dtype} of shape {labels.shape}."
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: 'labels' holds the negative class number {labels.min()}.")
    return labels.astype(np.int64)


def _read_batch(path: Path, wanted: np.ndarray, classes: int) -> Split:
    batch = load_pickle(path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DataError(f"{path} has no 'data' and 'labels'; not a CIFAR-10 batch file.")
    data, labels = batch["data"], _labels(batch["labels"], path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or data.shape[0] != labels.shape[0]
    ):
        raise DataError(
            f"{path}: 'data' must be uint8 of shape (N, 3072) with one label per row; "
            f"got {getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')} "
            f"and {labels.shape[0]} labels."
        )
    if labels.size and labels.max() >= classes:
        raise DataError(
            f"{path}: 'labels' holds class number {labels.max()}, but {META_FILE} names only "
            f"{classes} classes (0..{classes - 1})."
        )
    keep = np.isin(labels, wanted)
    images = data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return Split(np.ascontiguousarray(images), labels[keep])


def load_cifar10(
    path: str | Path, classes: str | list[str] | list[int] | None = None
) -> tuple[Split, Split, list[str]]:
    """(train, test, label_names): train from ``data_batch_1..5``, test from ``test_batch``."""
    folder = find_folder(path)
    names = label_names(folder)
    wanted = np.asarray(resolve_classes(classes, names), dtype=np.int64)
    parts = [_read_batch(folder / n, wanted, len(names)) for n in TRAIN_FILES]
    train = Split(
        np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts])
    )
    test = _read_batch(folder / TEST_FILE, wanted, len(names))
    chosen = ", ".join(names[i] for i in wanted)
    if len(train.labels) == 0:
        raise DataError(f"{folder}: no training images of class(es) {chosen}.")
    if len(test.labels) == 0:
        raise DataError(f"{folder}/{TEST_FILE}: no validation images of class(es) {chosen}.")
    return train, test, names


def write_cifar10(
    folder: Path,
    train: list[tuple[np.ndarray, list[int]]],
    test: tuple[np.ndarray, list[int]],
    names: list[str] | None = None,
) -> Path:
    """Write a small data set in the official layout (tests and examples).

    ``train`` is five ``(data uint8 (N, 3072), labels)`` pairs. Written with pickle
    protocol 4: the same dict and the same NumPy globals as the originals (which are
    protocol 2 from Python 2; Python 3's protocol 2 would add ``_codecs.encode`` for bytes,
    which the restricted unpickler rightly refuses).
    """
    out = Path(folder) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    names = names or [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    batches = [*zip(TRAIN_FILES, train, strict=True), (TEST_FILE, test)]
    for name, (data, labels) in batches:
        record = {
            "batch_label": name,
            "labels": list(labels),
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(len(labels))],
        }
        with open(out / name, "wb") as handle:
            pickle.dump(record, handle, protocol=4)
    with open(out / META_FILE, "wb") as handle:
        pickle.dump(
            {"num_cases_per_batch": 10000, "label_names": names, "num_vis": 3072},
            handle,
            protocol=4,
        )
    return out
