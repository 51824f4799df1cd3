"""Writes the run folders under ``tests/labs/legacy/`` with the colourization lab as it was
before the lab runtime (commit d25b432, ``labs/colourize.py`` of 1,427 lines).

Kept to show how the fixtures were made; running it again with today's code would write
today's format, which is not the point. The tests lay these folders over the tiny data
``colourize_data.write_tiny`` writes (byte-identical on every run).

    .venv/bin/python tests/labs/legacy/make_runs.py
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from colourize_data import write_tiny  # noqa: E402

from convlens.labs import colourize  # noqa: E402
from convlens.labs.colourize import ColourizeConfig, train  # noqa: E402


def config(out: Path, data: Path, epochs: int) -> ColourizeConfig:
    return ColourizeConfig(
        data=str(data),
        classes="horse,cat",
        model="colour_unet",
        num_filters=4,
        num_colours=4,
        epochs=epochs,
        batch_size=8,
        out=str(out),
        device="cpu",
        threads=1,
        grid_every=1,
        grid_images=4,
        kmeans_pixels=20_000,
        kmeans_iters=10,
        flip=True,
    )


def main() -> None:
    data = write_tiny(Path(tempfile.mkdtemp()) / "cifar")
    finished, stopped = HERE / "finished", HERE / "stopped"
    for folder in (finished, stopped):
        shutil.rmtree(folder, ignore_errors=True)
    train(config(finished, data, epochs=1), progress_bar=False)

    # Ctrl-C after global step 7 of a 2-epoch run: epoch 2, step 2 of 5
    steps: list[object] = []

    def ctrl_c(position: object) -> None:
        steps.append(position)
        if len(steps) == 7:
            os.kill(os.getpid(), signal.SIGINT)

    colourize._after_step = ctrl_c
    assert train(config(stopped, data, epochs=2), progress_bar=False).interrupted
    for folder in (finished, stopped):
        shutil.rmtree(folder / "grids", ignore_errors=True)
        for png in folder.glob("*.png"):
            png.unlink()


if __name__ == "__main__":
    main()
