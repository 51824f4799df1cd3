"""Tables read the results and nothing else: cells equal the numbers they stand for."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convlens.interpret.faithfulness import FaithfulnessResult
from convlens.interpret.output import write_files
from convlens.interpret.render import (
    faithfulness_json,
    faithfulness_rows,
    markdown_table,
    sanity_json,
    sanity_rows,
)
from convlens.interpret.sanity import SanityResult


def sanity_result() -> SanityResult:
    correlations = np.array(
        [
            [[0.9, 0.7], [0.2, np.nan]],  # saliency: one constant map at step 2
            [[np.nan, np.nan], [0.1, 0.3]],  # gradcam: every map constant at step 1
        ]
    )
    return SanityResult(
        ("saliency", "gradcam"),
        ("head", "conv"),
        correlations,
        np.zeros((2, 3, 4, 4), np.float32),
        np.array([1, 2]),
    )


def test_sanity_rows_are_nan_aware_means() -> None:
    rows = sanity_rows(sanity_result())
    assert rows.columns == ["step", "re-initialised down to", "saliency", "gradcam"]
    assert rows.rows == [
        ["1", "head", "+0.800", "n/a"],
        ["2", "conv", "+0.200 (1 constant)", "+0.200"],
    ]
    summary = sanity_json(sanity_result())
    assert summary["methods"]["saliency"] == {"mean": [0.8, 0.2], "constant_maps": [0, 1]}
    assert summary["methods"]["gradcam"]["mean"] == [None, 0.2]


def test_markdown_alignment_follows_the_text_columns() -> None:
    text = markdown_table(sanity_rows(sanity_result()))
    assert text.splitlines()[1] == "|---|---|---:|---:|"


def test_faithfulness_rows_are_mean_and_standard_error_of_the_areas() -> None:
    fractions = np.array([0.0, 0.5, 1.0])
    deletion = np.array([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    result = FaithfulnessResult(
        ("gradcam", "random"), fractions, deletion, deletion[::-1], np.array([0, 1]), 8, 2.0
    )
    # areas: gradcam 0.25 and 0.75 (mean 0.5, SE = std 0.3536 / √2 = 0.25); random 1 and 1
    rows = faithfulness_rows(result)
    # paired differences −0.75 and −0.25: mean −0.5, SE 0.25, lower on both images
    assert rows.rows[0] == [
        "gradcam",
        "0.500 ± 0.250",
        "-0.500 ± 0.250 (lower on 2/2)",
        "1.000 ± 0.000",
    ]
    assert rows.rows[1] == ["random", "1.000 ± 0.000", "", "0.500 ± 0.250"]
    assert rows.columns[1] == "deletion AUC, to blur (lower is better)"  # the default
    paired = result.deletion_against_random("gradcam")
    assert (paired.mean, paired.se, paired.lower_on, paired.lower) == (-0.5, 0.25, 2, False)
    summary = faithfulness_json(result)
    assert summary["orders"]["gradcam"]["deletion_minus_random"] == -0.5
    assert summary["orders"]["gradcam"]["deletion_curve"] == [1.0, 0.5, 0.0]
    assert summary["pixels_per_step"] == 8


def test_written_files_are_whole_and_get_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    written = write_files(tmp_path / "out", {"a.npy": b"123", "b.png": b"4"})
    assert [p.read_bytes() for p in written] == [b"123", b"4"]
    assert {os.stat(p).st_mode & 0o777 for p in written} == {
        os.stat(tmp_path / "plain").st_mode & 0o777
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.npy",
        "b.png",
    ]  # no temp files
