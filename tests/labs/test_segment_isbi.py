"""The real ISBI 2012 sections in ../shared/data/isbi2012-em: they pair up, their masks are
0 / 255, the majority-class baseline is the published ≈ 0.22 pixel error, and a full
512 × 512 section is segmented by overlap tiles exactly as in one pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convlens.labs import seg_data
from convlens.labs.seg_metrics import score
from convlens.labs.tiling import geometry_of, predict_probabilities
from convlens.zoo import create_model

ISBI = Path(__file__).parents[2] / "../shared/data/isbi2012-em"


@pytest.fixture
def train_folder() -> Path:
    folder = ISBI / "train"
    if not (folder / "image").is_dir() or not (folder / "label").is_dir():
        pytest.fail(
            f"shared ISBI 2012 data not found at {folder} (../shared beside the repository)"
        )
    return folder


def test_sections_pair_up_and_the_majority_baseline_is_about_022(train_folder: Path) -> None:
    names = seg_data.paired_names(train_folder)
    assert names == [f"{i}.png" for i in range(25)]
    assert seg_data.class_values(train_folder, names) == [0, 255]
    sections = seg_data.load_sections(train_folder, names, [0, 255])
    assert all(s.image.shape == (512, 512) for s in sections)
    truths = [s.mask for s in sections]
    majority = score(truths, [np.ones_like(t) for t in truths], 2)  # type: ignore[arg-type]
    assert 0.20 < majority.pixel_error < 0.24  # ANCHORS.md: "about 0.22"
    assert majority.rand_error > 0.9  # one giant cell merges everything


def test_a_full_section_by_overlap_tiles_equals_one_pass(train_folder: Path) -> None:
    (section,) = seg_data.load_sections(train_folder, ["7.png"], [0, 255])
    torch.manual_seed(0)
    model = create_model("unet_valid", width=2, depth=3, batch_norm=True).double().eval()
    geometry = geometry_of(model)
    image = section.image.astype(np.float64)
    whole = predict_probabilities(model, image, geometry, tile=10_000)
    tiled = predict_probabilities(model, image, geometry, tile=220)  # 4 × 4 tiles of 220² → 132²
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-12)
