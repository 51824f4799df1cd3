"""``lab segment`` beyond the binary masks and the zoo: multi-class masks (the value → class
map stored with the run, one score per class) and a ``module:factory`` model returning
torchvision's ``{"out": logits}``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.io
from test_colourize_cli import invoke
from test_segment_data import write_sections
from test_segment_train import small

from convlens.labs.segment import train

FACTORY = '''
import torch
from torch import nn


class DictNet(nn.Module):
    """Two padded convolutions; returns {"out": logits} as torchvision's models do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> dict:
        return {"out": self.body(x)}


def build() -> nn.Module:
    return DictNet()
'''


def three_classes(root: Path) -> Path:
    """Sections whose masks hold 0 (border), 100 and 200: the cells left of column 32 get
    100, the others 200."""
    write_sections(root, n=5, size=64)
    for path in sorted((root / "label").iterdir()):
        mask = skimage.io.imread(path)
        mask = np.where(mask == 0, 0, np.where(np.arange(64) < 32, 100, 200)).astype(np.uint8)
        skimage.io.imsave(path, mask, check_contrast=False)
    return root


def test_multi_class_masks_map_values_to_classes(tmp_path: Path) -> None:
    data = three_classes(tmp_path / "em")
    out = tmp_path / "run"
    result = train(small(data, out, epochs=1), progress_bar=False)
    assert result.finished
    saved = json.loads((out / "data.json").read_text())
    assert saved["values"] == [0, 100, 200]
    assert saved["classes"] == {"0": 0, "100": 1, "200": 2}
    assert result.model is not None
    code, output = invoke("lab", "segment", "evaluate", out, "--data", data, "--format", "json",
                          "--no-progress")  # fmt: skip
    assert code == 0, output
    scores = json.loads(output)
    assert set(scores["iou"]) == set(scores["dice"]) == {"0", "100", "200"}
    assert "rand_error_best_threshold" not in scores  # a threshold needs two classes
    assert scores["n"] == 5
    predicted = tmp_path / "pred"
    code, output = invoke("lab", "segment", "predict", out, "--data", data / "image" / "0.png",
                          "--out", predicted, "--no-progress")  # fmt: skip
    assert code == 0, output
    assert set(np.unique(skimage.io.imread(predicted / "masks" / "0.png"))) <= {0, 100, 200}
    assert sorted(p.name for p in (predicted / "probabilities").iterdir()) == ["0", "100", "200"]


def test_a_module_factory_model_with_dict_output_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "code"
    package.mkdir()
    (package / "seg_factory_net.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(package))
    data = write_sections(tmp_path / "em", n=4, size=64)
    out = tmp_path / "run"
    result = train(small(data, out, model="seg_factory_net:build", epochs=1), progress_bar=False)
    assert result.finished and np.isfinite(result.final["val_pixel_error"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trainable_params"] == (4 * 9 + 4) + (4 * 2 + 2)  # the two convolutions
    sys.modules.pop("seg_factory_net", None)
