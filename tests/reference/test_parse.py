"""Reading matrices: inline, text/CSV, .npy, shorthands, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convlens.errors import ArgumentError
from convlens.reference.parse import parse_channels, parse_matrix


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[1,2],[3,4]]", [[1, 2], [3, 4]]),
        ("[[1.5, -2], [3e1, +4]]", [[1.5, -2], [30, 4]]),
        ("1 2; 3 4", [[1, 2], [3, 4]]),
        ("[1, 2, 3]", [[1, 2, 3]]),
        ("7", [[7]]),
        ("ones2x3", [[1, 1, 1], [1, 1, 1]]),
        ("zeros2", [[0, 0], [0, 0]]),
        ("eye2", [[1, 0], [0, 1]]),
        ("arange2x2", [[0, 1], [2, 3]]),
    ],
)
def test_inline_and_shorthands(text: str, expected: list) -> None:
    np.testing.assert_array_equal(parse_matrix(text, "--input"), np.array(expected, dtype=float))


def test_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# a comment\n1 2 3\n\n4 5 6  # trailing\n")
    (tmp_path / "b.csv").write_text("1,2,3\n4,5,6\n")
    np.save(tmp_path / "c.npy", np.arange(24.0).reshape(2, 3, 4))
    expected = [[1, 2, 3], [4, 5, 6]]
    assert parse_matrix(str(tmp_path / "a.txt"), "--input").tolist() == expected
    assert parse_matrix(str(tmp_path / "b.csv"), "--input").tolist() == expected
    assert parse_matrix(str(tmp_path / "c.npy"), "--input").shape == (2, 3, 4)


def test_channels_stack_and_are_named_after_files(tmp_path: Path) -> None:
    for name in ("R.txt", "G.txt"):
        (tmp_path / name).write_text("1 2\n3 4\n")
    array, names = parse_channels([str(tmp_path / "R.txt"), str(tmp_path / "G.txt")], "--input")
    assert array.shape == (2, 2, 2)
    assert names == (str(tmp_path / "R.txt"), str(tmp_path / "G.txt"))
    array, names = parse_channels(["[[[1]], [[2]], [[3]]]"], "--input")
    assert array.shape == (3, 1, 1) and names == ("channel 0", "channel 1", "channel 2")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[1,2],[3]]", "ragged: row 1 has 1 entry but row 0 has 2 entries"),
        ("[[1,2],[3,4,5]]", "every row must have 2 entries"),
        ("[]", "empty"),
        ("[[]]", "empty"),
        ("", "empty"),
        ("[[1,'a']]", "row 0, entry 1 is 'a', not a number"),
        ("[[1,True]]", "not a number"),
        ("[[1,a]]", "cannot read"),
        ("1 2; 3", "ragged"),
        ("1 x", "'x' is not a number"),
        ("no_such_file.txt", "no such file"),
        ("banana", "not a file, an inline matrix"),
        ("ones0x2", "zero size"),
    ],
)
def test_bad_input_names_the_argument(text: str, fragment: str) -> None:
    with pytest.raises(ArgumentError) as err:
        parse_matrix(text, "--weight")
    assert str(err.value).startswith("--weight")
    assert fragment in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "words.txt").write_text("1 2\n3 four\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    cases = {
        "ragged.csv": "line 2 has 1 entry but line 1 has 2 entries",
        "words.txt": "line 2: 'four' is not a number",
        "empty.txt": "empty",
        "text.npy": "expected numbers",
        "bad.npy": "cannot read",
    }
    for name, fragment in cases.items():
        with pytest.raises(ArgumentError, match=fragment):
            parse_matrix(str(tmp_path / name), "--input")


def test_channels_must_share_a_shape() -> None:
    with pytest.raises(ArgumentError, match=r"same shape.*2×2.*2×3"):
        parse_channels(["ones2x2", "ones2x3"], "--input")
    with pytest.raises(ArgumentError, match="one per channel"):
        parse_channels(["ones2x2", "[[[1]]]"], "--input")
