"""The CIFAR-10 reader: official layout, class filter, restricted unpickling, bad folders."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from colourize_data import COLOURS, make_images, write_tiny

from convlens.errors import ArgumentError, DataError
from convlens.labs.cifar import load_cifar10, load_pickle, resolve_classes


def test_reads_official_layout_and_filters_by_name(tiny_data: Path) -> None:
    train, test, names = load_cifar10(tiny_data, "horse")
    assert names[7] == "horse"
    assert train.images.shape == (5 * 4, 32, 32, 3)  # 4 horses in each of 5 batches
    assert test.images.shape == (3, 32, 32, 3)
    assert set(train.labels.tolist()) == {7}
    # row 0 of data_batch_1 is a horse; its top-left quadrant is COLOURS[order[0]] in RGB
    row = make_images(8, seed=0)[0]
    expected = row.reshape(3, 32, 32).transpose(1, 2, 0)  # R, G, B planes → (32, 32, 3)
    np.testing.assert_array_equal(train.images[0], expected)
    assert any((train.images[0, 0, 0] == c).all() for c in COLOURS)


def test_filters_by_number_and_several_classes(tiny_data: Path) -> None:
    by_number, _, _ = load_cifar10(tiny_data, "7")
    by_name, _, _ = load_cifar10(tiny_data, "horse")
    np.testing.assert_array_equal(by_number.images, by_name.images)
    both, test, _ = load_cifar10(tiny_data, "cat,horse")
    assert len(both.labels) == 40 and len(test.labels) == 6
    assert both.labels.tolist()[:2] == [7, 3]  # original order kept


def test_accepts_the_batches_folder_itself(tiny_data: Path) -> None:
    train, _, _ = load_cifar10(tiny_data / "cifar-10-batches-py", "horse")
    assert len(train.labels) == 20


def test_shared_horse_data(horse_data: Path) -> None:
    train, test, names = load_cifar10(horse_data, "horse")
    assert train.images.shape == (5000, 32, 32, 3) and test.images.shape == (102, 32, 32, 3)
    assert names[7] == "horse" and set(train.labels.tolist()) == {7}


def test_unknown_class_lists_the_known_ones() -> None:
    names = ["cat", "horse"]
    with pytest.raises(ArgumentError, match=r"unknown class 'zebra'.*1=horse"):
        resolve_classes("zebra", names)
    assert resolve_classes("HORSE,0", names) == [0, 1]
    assert resolve_classes("all", names) == [0, 1]


def test_missing_folder_says_how_to_obtain_the_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*cifar\.html"):
        load_cifar10(tmp_path / "nowhere")


def test_incomplete_folder_names_the_missing_files(tiny_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(tiny_data / "cifar-10-batches-py", copy)
    (copy / "test_batch").unlink()
    (copy / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"incomplete: missing data_batch_3, test_batch"):
        load_cifar10(tmp_path)


def test_corrupt_file_is_a_data_error(tiny_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(tiny_data / "cifar-10-batches-py", copy)
    data = (copy / "data_batch_2").read_bytes()
    (copy / "data_batch_2").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError, match=r"data_batch_2 is not a readable CIFAR-10 pickle"):
        load_cifar10(tmp_path)


def test_foreign_but_harmless_pickle_is_a_data_error(tiny_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(tiny_data / "cifar-10-batches-py", copy)
    (copy / "data_batch_1").write_bytes(pickle.dumps({"something": [1, 2]}))
    with pytest.raises(DataError, match=r"data_batch_1 has no 'data' and 'labels'"):
        load_cifar10(tmp_path)


class _Evil:
    """Unpickling this with plain pickle would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({"data": _Evil(marker), "labels": [7]}, protocol=protocol))
    with pytest.raises(DataError) as err:
        load_pickle(evil)
    message = str(err.value)
    assert str(evil) in message and "refused" in message
    assert ("posix.system" in message) or ("os.system" in message)
    assert not marker.exists()


def test_other_dangerous_globals_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    # GLOBAL builtins.eval, then call it: the classic payload, written by hand
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DataError, match=r"refused to unpickle 'builtins\.eval'"):
        load_pickle(path)


def test_foreign_pickle_in_a_folder_fails_the_whole_load(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.dumps(_Evil(marker), protocol=2)
    )
    with pytest.raises(DataError, match=r"batches\.meta: refused"):
        load_cifar10(tmp_path)
    assert not marker.exists()
