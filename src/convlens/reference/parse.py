"""Read matrices for worked examples: inline text, .txt/.csv files, .npy, or shorthands.

    "[[1,2],[3,4]]"   inline, Python/JSON list syntax (a 3-D list gives channels)
    "1 2; 3 4"        inline, rows separated by ';'
    image.txt / .csv  one row per line, entries separated by commas or spaces, '#' comments
    image.npy         any numeric array (2-D, 3-D (C, H, W) or 4-D)
    ones3x3, zeros2x4, eye3, arange4x4 (0, 1, …, 15 row by row)

Every problem raises ``ArgumentError`` naming the argument (``--input`` …) and the shape
that was expected.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

from convlens.errors import ArgumentError
from convlens.reference._args import check_elements

_SHORTHAND = re.compile(r"^(ones|zeros|eye|arange)(\d+)(?:x(\d+))?$")
SHORTHANDS = "ones3x3, zeros2x4, eye3, arange4x4"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _size(shape: tuple[int, ...]) -> str:
    if not shape:
        return "a single number"
    if len(shape) == 1:
        return f"{shape[0]} entr{'y' if shape[0] == 1 else 'ies'}"
    return f"shape {shape}"


def _nested(value: object, argument: str, path: tuple[int, ...] = ()) -> np.ndarray:
    """A rectangular, numeric nested list → ndarray, with the first ragged or bad entry named."""
    where = "row " + ", entry ".join(map(str, path)) if path else "the value"
    if _is_number(value):
        return np.asarray(float(value))  # type: ignore[arg-type]
    if not isinstance(value, (list, tuple)):
        raise ArgumentError(f"{argument}: {where} is {value!r}, not a number.")
    if not value:
        what = f"{where} of the matrix" if path else "the matrix"
        raise ArgumentError(f"{argument}: {what} is empty; expected rows of numbers.")
    items = [_nested(v, argument, (*path, i)) for i, v in enumerate(value)]
    first = items[0].shape
    for i, item in enumerate(items):
        if item.shape != first:
            row = ", entry ".join(map(str, (*path, i)))
            raise ArgumentError(
                f"{argument}: the matrix is ragged: row {row} has {_size(item.shape)} but row "
                f"{', entry '.join(map(str, (*path, 0)))} has {_size(first)}; every row must have "
                f"{_size(first)}."
            )
    return np.stack(items)


def _inline(text: str, argument: str) -> np.ndarray:
    if "[" not in text:  # "1 2; 3 4"
        rows = [r for r in text.split(";")]
        return _rows([(i + 1, r) for i, r in enumerate(rows)], argument, "row")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ArgumentError(
            f"{argument}: cannot read {text!r} as a matrix of numbers; write rows of numbers "
            "like [[1, 2], [3, 4]]."
        ) from None
    return _nested(value, argument)


def _rows(lines: list[tuple[int, str]], argument: str, what: str) -> np.ndarray:
    """Rows of numbers separated by commas or spaces; ``what`` names the unit in messages."""
    matrix: list[list[float]] = []
    first_line = 0
    for number, line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        entries = [e for e in re.split(r"[,\s]+", line) if e]
        row = []
        for entry in entries:
            try:
                row.append(float(entry))
            except ValueError:
                raise ArgumentError(
                    f"{argument}: {what} {number}: {entry!r} is not a number."
                ) from None
        if matrix and len(row) != len(matrix[0]):
            raise ArgumentError(
                f"{argument}: the matrix is ragged: {what} {number} has {_size((len(row),))} but "
                f"{what} {first_line} has {_size((len(matrix[0]),))}; every row must have "
                f"{_size((len(matrix[0]),))}."
            )
        if not matrix:
            first_line = number
        matrix.append(row)
    if not matrix:
        raise ArgumentError(f"{argument}: the matrix is empty; expected rows of numbers.")
    return np.array(matrix)


def _shorthand(match: re.Match[str], argument: str) -> np.ndarray:
    kind, rows = match.group(1), int(match.group(2))
    cols = int(match.group(3)) if match.group(3) else rows
    if rows < 1 or cols < 1:
        raise ArgumentError(f"{argument}: {match.group(0)} has a zero size; expected at least 1×1.")
    check_elements((rows, cols), f"{argument}: {match.group(0)}")
    if kind == "eye":
        return np.eye(rows, cols)
    if kind == "arange":
        return np.arange(rows * cols, dtype=float).reshape(rows, cols)
    return (np.ones if kind == "ones" else np.zeros)((rows, cols))


def _file(path: Path, argument: str) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            check_elements(_npy_shape(path), f"{argument}: {path}")
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ArgumentError(
                f"{argument}: cannot read {path} as a .npy array ({err})."
            ) from None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise ArgumentError(f"{argument}: {path} holds {array.dtype} values; expected numbers.")
        if array.size == 0:
            raise ArgumentError(f"{argument}: {path} is empty (shape {array.shape}).")
        return array.astype(np.float64)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ArgumentError(f"{argument}: cannot read {path} ({err}).") from None
    return _rows(list(enumerate(text.splitlines(), start=1)), f"{argument} {path}", "line")


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The shape in a .npy header, read without loading the array."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a long inline matrix is not a valid file name
        return False


def parse_matrix(source: str, argument: str) -> np.ndarray:
    """One source → an array (2-D for a matrix; 3-D/4-D from a nested list or .npy)."""
    text = source.strip()
    if not text:
        raise ArgumentError(f"{argument}: empty value; expected a matrix like [[1, 2], [3, 4]].")
    if match := _SHORTHAND.match(text):
        return _shorthand(match, argument)
    path = Path(text)
    if path.suffix in (".npy", ".txt", ".csv") or _is_file(text):
        if not _is_file(text):
            raise ArgumentError(f"{argument}: no such file {text!r}.")
        array = _file(path, argument)
    elif text.startswith("[") or ";" in text or re.match(r"[-+.0-9]", text):
        array = _inline(text, argument)
    else:
        raise ArgumentError(
            f"{argument}: {text!r} is not a file, an inline matrix like [[1, 2], [3, 4]], "
            f"or a shorthand ({SHORTHANDS})."
        )
    if array.ndim == 1:
        array = array[None, :]  # a single row
    if array.ndim == 0:
        array = array.reshape(1, 1)
    return array


def parse_channels(sources: list[str], argument: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """One matrix per channel (stacked to (C, H, W)), or one source holding them all.

    Returns the array and a name for each channel (the file name, else ``channel i``).
    """
    if not sources:
        raise ArgumentError(f"{argument} is required: one matrix per channel.")
    arrays = [parse_matrix(s, argument) for s in sources]
    if len(arrays) == 1:
        array = arrays[0]
        channels = array.shape[-3] if array.ndim >= 3 else 1
        name = sources[0] if _is_file(sources[0]) and channels == 1 else ""
        names = (name,) if name else tuple(f"channel {c}" for c in range(channels))
        return array, names
    for source, array in zip(sources, arrays, strict=True):
        if array.ndim != 2:
            raise ArgumentError(
                f"{argument}: with several values each must be one 2-D matrix (one per channel); "
                f"{source!r} has shape {array.shape}."
            )
        if array.shape != arrays[0].shape:
            raise ArgumentError(
                f"{argument}: every channel must have the same shape; {sources[0]!r} is "
                f"{arrays[0].shape[0]}×{arrays[0].shape[1]} but {source!r} is "
                f"{array.shape[0]}×{array.shape[1]}."
            )
    names = tuple(s if _is_file(s) else f"channel {c}" for c, s in enumerate(sources))
    return np.stack(arrays), names
