"""A finished segmentation run: load it, score it on labelled sections, predict new ones.

Prediction averages the class probabilities over the eight orientations of the image (four
quarter turns, each also mirrored) by default: the network was trained on all eight
(``--augment flip,rot90``), so each is an equally good guess, and their mean is smoother
at thin membranes than any one of them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from convlens.errors import ArgumentError, DataError
from convlens.labs import seg_data
from convlens.labs.runtime import files
from convlens.labs.seg_metrics import best_threshold_rand_error, score
from convlens.labs.seg_samples import augmentations
from convlens.labs.segment import (
    DATA_FILE,
    LAB,
    SegmentConfig,
    build_model,
    saved_values,
    tile_side,
)
from convlens.labs.tiling import Geometry, geometry_of, orientations, predict_averaged


def load_run(
    folder: str | Path, finished: bool = False
) -> tuple[nn.Module, SegmentConfig, list[int], Geometry]:
    """(model in eval mode on the CPU, config, the mask value of each class, geometry).
    ``finished``: refuse a run that stopped early, as evaluating it must."""
    out = Path(folder)
    saved = files.read_saved_config(out, LAB.what)
    if "crop" not in saved:
        raise ArgumentError(f"{out} is not a segment run (its config has no crop).")
    cfg = files.config_from_saved(SegmentConfig, saved, {"out": str(out)})
    values = saved_values(out)
    if values is None:
        raise DataError(f"{out / DATA_FILE} is missing; the run folder is incomplete.")
    checkpoint = LAB.run_checkpoint(out, cfg.epochs, finished)
    model = build_model(cfg.model, len(values), cfg.width, cfg.seed)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), cfg, values, geometry_of(model)


def averages_orientations(cfg: SegmentConfig, asked: bool | None) -> bool:
    """``asked``, or by default: whether the run was trained on every orientation (flips
    and quarter turns), so that each is a prediction the network was trained to make."""
    return {"flip", "rot90"} <= augmentations(cfg) if asked is None else asked


def evaluate_run(
    folder: str | Path, data: str, progress: Any = None, averaged: bool | None = None
) -> dict[str, Any]:
    """Metrics of a finished run on every section of ``data`` (``image/`` + ``label/``),
    predicted as the mean over the eight orientations (``averaged``; by default when the
    run trained on them) or as the sections are."""
    model, cfg, values, geometry = load_run(folder, finished=True)
    averaged = averages_orientations(cfg, averaged)
    names = seg_data.paired_names(data)
    sections = seg_data.load_sections(data, names, values)
    probabilities = _with_progress(
        progress, "evaluating", sections,
        lambda s: predict_averaged(model, s.image, geometry, tile_side(cfg, geometry), averaged),
    )  # fmt: skip
    truths = [s.mask for s in sections]
    scores = score(truths, [p.argmax(0) for p in probabilities], len(values))  # type: ignore[arg-type]
    counts = np.sum([np.bincount(t.ravel(), minlength=len(values)) for t in truths], axis=0)  # type: ignore[union-attr]
    majority = int(np.argmax(counts))
    base = score(truths, [np.full_like(t, majority) for t in truths], len(values))  # type: ignore[arg-type]
    best = {}
    if len(values) == 2:  # the challenge's way: the best threshold of the cell probability
        threshold, error = best_threshold_rand_error(truths, [p[1] for p in probabilities])  # type: ignore[arg-type]
        best = {"rand_error_best_threshold": {"threshold": threshold, "rand_error": error}}
    return {
        "run": str(folder),
        "model": cfg.model,
        "orientations": len(orientations()) if averaged else 1,
        "pixel_error": scores.pixel_error,
        "rand_error": scores.rand_error,
        "vi": scores.vi,
        "vi_merge": scores.vi_merge,
        "vi_split": scores.vi_split,
        "iou": {str(v): x for v, x in zip(values, scores.iou, strict=True)},
        "dice": {str(v): x for v, x in zip(values, scores.dice, strict=True)},
        "n": scores.n,
        **best,
        "baseline": {
            "class": values[majority],
            "pixel_error": base.pixel_error,
            "rand_error": base.rand_error,
        },
    }


def _with_progress(progress: Any, what: str, items: list[Any], work: Any) -> list[Any]:
    if progress is None:
        return [work(item) for item in items]
    with progress:
        task = progress.add_task(what, total=len(items))
        results = []
        for item in items:
            results.append(work(item))
            progress.advance(task)
        return results


def predict_run(
    folder: str | Path, data: str, out: str, progress: Any = None, averaged: bool | None = None
) -> list[Path]:
    """Probability maps (one folder per class value, 8-bit PNG, 255 = probability 1) and
    masks (the class values) of every image of ``data`` (a PNG, a folder of PNGs or a
    folder with ``image/``), averaged over the orientations as ``evaluate_run`` is.
    Everything is read and checked before anything is written."""
    model, cfg, values, geometry = load_run(folder)
    averaged = averages_orientations(cfg, averaged)
    source = Path(data)
    if source.is_file():
        paths = [source]
    elif (source / "image").is_dir():
        paths = [source / "image" / n for n in seg_data.paired_names(source, need_labels=False)]
    elif source.is_dir():
        paths = sorted(source.glob("*.png"), key=lambda p: seg_data._natural_key(p.name))
        if not paths:
            raise DataError(f"--data: {source} holds no PNG images (nor an image/ folder).")
    else:
        raise DataError(f"--data: {source} does not exist.")
    images = [seg_data.read_grey(p) for p in paths]
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise ArgumentError(f"--out: {target} exists and is not a folder.")
    probabilities = _with_progress(
        progress, "predicting", images,
        lambda raw: predict_averaged(
            model, raw.astype(np.float32) / (65535.0 if raw.dtype == np.uint16 else 255.0),
            geometry, tile_side(cfg, geometry), averaged,
        ),
    )  # fmt: skip
    written = []
    lookup = np.array(values, dtype=np.uint16 if max(values) > 255 else np.uint8)
    for path, prob in zip(paths, probabilities, strict=True):
        mask = lookup[prob.argmax(0)]
        outputs = [(target / "masks" / path.name, mask)]
        outputs += [
            (
                target / "probabilities" / str(v) / path.name,
                np.round(prob[c] * 255).astype(np.uint8),
            )
            for c, v in enumerate(values)
        ]
        for file, array in outputs:
            file.parent.mkdir(parents=True, exist_ok=True)
            # the temporary name ends in .png: the format
            files.atomic_write(file, functools.partial(_write_png, array), suffix=".png")
            written.append(file)
    return written


def _write_png(array: np.ndarray, path: Path) -> None:
    import skimage.io

    skimage.io.imsave(path, array, check_contrast=False)
