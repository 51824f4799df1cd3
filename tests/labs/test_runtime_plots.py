"""The runtime's figures: a one-epoch run's curves are visible (markers, whole-number epoch
ticks) and a grid's title sits above its top row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convlens.labs.colourize import CURVES
from convlens.labs.runtime import plots


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions would save, drawn but kept open."""
    kept: list[Any] = []

    def keep(fig: Any, path: Path, dpi: int = 80) -> None:
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


ROW = {"epoch": 1.0, "train_loss": 1.2, "val_loss": 1.1, "val_accuracy": 0.4,
       "baseline_accuracy": 0.3}  # fmt: skip


def test_one_epoch_curves_have_markers_and_whole_epoch_ticks(figures: list[Any]) -> None:
    plots.plot_curves(Path("unused.png"), {"colour_cnn": [ROW]}, CURVES, "one epoch")
    (fig,) = figures
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
        assert lines and all(line.get_marker() == "o" for line in lines)
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_many_epochs_ticks_are_whole(figures: list[Any]) -> None:
    rows = [{**ROW, "epoch": float(e)} for e in range(1, 4)]
    plots.plot_curves(Path("unused.png"), {"a": rows, "b": rows}, CURVES)
    assert all(float(t).is_integer() for ax in figures[0].axes for t in ax.get_xticks())


def test_grid_title_does_not_overlap_the_top_row(figures: list[Any]) -> None:
    images = np.zeros((4, 32, 32, 3))
    rows = [("input", images), ("cnn", images), ("unet", images), ("target", images)]
    plots.plot_grid(Path("unused.png"), rows, "validation images, 25 epochs, batch 100")
    (fig,) = figures
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    top = max(ax.get_window_extent(renderer).y1 for ax in fig.axes)
    assert title.y0 >= top
