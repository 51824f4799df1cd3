"""Prototype of the detection lab: train the tiny YOLO on the synthetic shapes, measure mAP.

    flock /tmp/convlens-heavy.lock python benchmarks/detect_train.py --data /tmp/shapes

Generates the data set (``convlens.detection.synthetic``) if ``--data`` has none, picks
the anchors by k-means (1 − IoU) on the training boxes, trains ``TinyYolo`` with Adam
and a cosine schedule, and reports COCO mAP and mAP@0.5 on the validation images (our
COCOeval) with the wall-clock and CPU time the training took. The target for the lab:
mAP@0.5 ≥ 0.9 in ≤ 20 minutes of CPU training on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from convlens.detection.anchors import kmeans_anchors
from convlens.detection.coco import GroundTruth, detections_json, load_ground_truth
from convlens.detection.evaluate import evaluate_coco
from convlens.detection.files import atomic_write, write_json
from convlens.detection.synthetic import load_images, make_dataset
from convlens.detection.tiny_yolo import TinyYolo, TinyYoloConfig, detect, yolo_loss


@dataclass
class Config:
    data: str = "/tmp/convlens-shapes"
    num_train: int = 4000
    num_val: int = 500
    data_seed: int = 0
    seed: int = 0
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    width: int = 16
    num_anchors: int = 3
    threads: int = 2
    eval_every: int = 4
    out: str = ""  # JSON with the results, written at the end
    detections: str = ""  # COCO results JSON of the validation images, written at the end
    pictures: str = ""  # PNG of 16 validation images: ground truth green, detections red


def boxes_by_image(gt: GroundTruth) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """xyxy boxes (K, 4) and class indices (K,) per image, in the order of gt.images."""
    index = {im.id: i for i, im in enumerate(gt.images)}
    categories = sorted(c.id for c in gt.categories)
    boxes: list[list[list[float]]] = [[] for _ in gt.images]
    labels: list[list[int]] = [[] for _ in gt.images]
    for a in gt.annotations:
        x, y, w, h = a.bbox
        boxes[index[a.image_id]].append([x, y, x + w, y + h])
        labels[index[a.image_id]].append(categories.index(a.category_id))
    return (
        [np.asarray(b, float).reshape(-1, 4) for b in boxes],
        [np.asarray(lab, int) for lab in labels],
    )


def flip(images: torch.Tensor, boxes: list[np.ndarray], size: int, horizontal: bool):
    """Mirror a batch (N, 3, H, W) and its xyxy boxes."""
    if horizontal:
        out = [np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1) for b in boxes]
        return images.flip(3), out
    out = [np.stack([b[:, 0], size - b[:, 3], b[:, 2], size - b[:, 1]], 1) for b in boxes]
    return images.flip(2), out


def predict(model, images, gt, batch_size=100):  # type: ignore[no-untyped-def]
    categories = sorted(c.id for c in gt.categories)
    detections = []
    for start in range(0, len(images), batch_size):
        ids = [im.id for im in gt.images[start : start + batch_size]]
        detections += detect(model, images[start : start + batch_size], ids, categories)
    return detections


def evaluate(model, images, gt):  # type: ignore[no-untyped-def]
    return evaluate_coco(gt, predict(model, images, gt))


def draw_pictures(path: str, pixels: np.ndarray, gt: GroundTruth, detections, count=16):  # type: ignore[no-untyped-def]
    """A 4×4 grid, 3× enlarged: ground truth in green, detections (score ≥ 0.3) in red."""
    from PIL import Image, ImageDraw

    scale, size = 3, pixels.shape[1]
    grid = Image.new("RGB", (4 * size * scale, 4 * size * scale))
    for i, image in enumerate(gt.images[:count]):
        tile = Image.fromarray(pixels[i]).resize((size * scale,) * 2, Image.NEAREST)
        draw = ImageDraw.Draw(tile)
        for a in gt.annotations:
            if a.image_id == image.id:
                x, y, w, h = (v * scale for v in a.bbox)
                draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(0, 255, 0))
        for d in detections:
            if d.image_id == image.id and d.score >= 0.3:
                x, y, w, h = (v * scale for v in d.bbox)
                draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(255, 0, 0))
                label = gt.category_name(d.category_id)[0]
                draw.text((x + 2, y + 1), f"{label} {d.score:.2f}", fill=(255, 255, 255))
        grid.paste(tile, ((i % 4) * size * scale, (i // 4) * size * scale))
    atomic_write(path, lambda tmp: grid.save(tmp, "PNG"))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)


def main() -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in asdict(defaults).items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    config = Config(**vars(parser.parse_args()))
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    root = Path(config.data)
    if not (root / "train.json").exists() or not (root / "val.json").exists():
        start = time.perf_counter()
        make_dataset(root, config.num_train, config.num_val, config.data_seed)
        print(f"data: wrote {root} in {time.perf_counter() - start:.1f} s")
    train_gt, val_gt = load_ground_truth(root / "train.json"), load_ground_truth(root / "val.json")
    train_x, val_x = to_tensor(load_images(root, train_gt)), to_tensor(load_images(root, val_gt))
    train_boxes, train_labels = boxes_by_image(train_gt)
    size = train_x.shape[-1]

    sizes = np.concatenate(
        [np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1) for b in train_boxes]
    )
    clusters = kmeans_anchors(sizes, config.num_anchors, seed=config.seed)
    anchors = tuple((round(float(w), 2), round(float(h), 2)) for w, h in clusters.anchors)
    print(f"anchors (k = {config.num_anchors}, mean IoU {clusters.mean_iou:.3f}): {anchors}")
    model_config = TinyYoloConfig(
        num_classes=len(train_gt.categories), anchors=anchors, width=config.width
    )
    model = TinyYolo(model_config)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters; {len(train_x)} training, {len(val_x)} validation images")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup = steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history = []
    wall, cpu = 0.0, 0.0  # training only: the clocks stop while the model is evaluated
    for epoch in range(1, config.epochs + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        model.train()
        order = rng.permutation(len(train_x))
        totals: dict[str, float] = {}
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x = train_x[index]
            boxes = [train_boxes[i] for i in index]
            labels = [train_labels[i] for i in index]
            if rng.random() < 0.5:
                x, boxes = flip(x, boxes, size, horizontal=True)
            if rng.random() < 0.5:
                x, boxes = flip(x, boxes, size, horizontal=False)
            loss, parts = yolo_loss(model(x), boxes, labels, model_config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value * len(index) / len(order)
        wall += time.perf_counter() - wall0
        cpu += time.process_time() - cpu0
        record = {"epoch": epoch, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        record.update({k: round(v, 4) for k, v in totals.items()})
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            result = evaluate(model, val_x, val_gt)
            record.update(map=round(result.stats["AP"], 4), map50=round(result.stats["AP50"], 4))
        history.append(record)
        print(json.dumps(record), flush=True)
    detections = predict(model, val_x, val_gt)
    result = evaluate_coco(val_gt, detections)
    if config.detections:
        write_json(config.detections, detections_json(detections))
    if config.pictures:
        draw_pictures(config.pictures, load_images(root, val_gt), val_gt, detections)
    summary = {
        "config": asdict(config),
        "anchors": anchors,
        "parameters": params,
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "map": result.stats["AP"],
        "map50": result.stats["AP50"],
        "map75": result.stats["AP75"],
        "per_class_ap50": {
            val_gt.category_name(k): result.class_ap(k, 0.5) for k in result.category_ids
        },
        "history": history,
        "torch": torch.__version__,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))
    if config.out:
        write_json(config.out, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
