"""Speed of box_iou and NMS on NumPy arrays and torch tensors (CPU), and of COCO mAP.

    python benchmarks/detect_speed.py

box_iou computes on whichever it is given (the same formula on NumPy or torch); NMS
runs its greedy loop in NumPy and converts a tensor input (its cost is the loop, one
row of IoUs per kept box). Times are the best of ``--repeat`` runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

import numpy as np
import torch

from convlens.detection.boxes import box_iou
from convlens.detection.coco import parse_detections, parse_ground_truth
from convlens.detection.evaluate import evaluate_coco
from convlens.detection.nms import nms


def best_ms(function, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def clustered_boxes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Boxes around 50 centres in a 1000×1000 image, as a detector's raw output looks."""
    centres = rng.uniform(50, 950, (50, 2))[rng.integers(50, size=n)]
    xy = centres + rng.normal(0, 8, (n, 2))
    wh = rng.uniform(20, 80, (n, 2))
    return np.concatenate([xy - wh / 2, xy + wh / 2], 1)


def coco_case(images: int, rng: np.random.Generator) -> tuple[dict, list[dict]]:
    annotations, detections = [], []
    for image in range(1, images + 1):
        for _ in range(5):
            box = [float(v) for v in (*rng.uniform(0, 200, 2), *rng.uniform(10, 100, 2))]
            category = int(rng.integers(1, 4))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image, "category_id": category,
                 "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            )  # fmt: skip
            for _ in range(4):
                jitter = [box[0] + rng.normal(0, 5), box[1] + rng.normal(0, 5), box[2], box[3]]
                detections.append(
                    {"image_id": image, "category_id": category, "bbox": jitter,
                     "score": float(rng.uniform())}
                )  # fmt: skip
    gt = {
        "images": [{"id": i, "width": 300, "height": 300} for i in range(1, images + 1)],
        "annotations": annotations,
        "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)],
    }
    return gt, detections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} threads")
    print("| operation | NumPy (ms) | torch (ms) |")
    print("|---|---:|---:|")
    for n in (1000, 4000):
        a, b = clustered_boxes(n, rng), clustered_boxes(n, rng)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        np_ms = best_ms(lambda a=a, b=b: box_iou(a, b), args.repeat)
        torch_ms = best_ms(lambda ta=ta, tb=tb: box_iou(ta, tb), args.repeat)
        print(f"| box_iou {n}×{n} (float64) | {np_ms:.1f} | {torch_ms:.1f} |")
    for n in (1000, 10000):
        boxes, scores = clustered_boxes(n, rng), rng.uniform(size=n)
        kept = len(nms(boxes, scores, 0.5))
        np_ms = best_ms(lambda boxes=boxes, scores=scores: nms(boxes, scores, 0.5), args.repeat)
        t_boxes, t_scores = torch.from_numpy(boxes), torch.from_numpy(scores)
        torch_ms = best_ms(lambda b=t_boxes, s=t_scores: nms(b, s, 0.5), args.repeat)
        print(f"| nms of {n} boxes at 0.5 ({kept} kept) | {np_ms:.1f} | {torch_ms:.1f} |")
    for images in (100, 500):
        gt, detections = coco_case(images, rng)
        truth = parse_ground_truth(gt)
        dets = parse_detections(detections, truth)
        ours = best_ms(lambda truth=truth, dets=dets: evaluate_coco(truth, dets), 1)
        line = f"| evaluate_coco, {images} images, {len(dets)} detections | {ours:.0f} | — |"
        try:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            def reference(gt=gt, detections=detections) -> None:  # type: ignore[no-untyped-def]
                with contextlib.redirect_stdout(io.StringIO()):
                    coco = COCO()
                    coco.dataset = gt
                    coco.createIndex()
                    run = COCOeval(coco, coco.loadRes(detections), "bbox")
                    run.evaluate()
                    run.accumulate()
                    run.summarize()

            line += f" pycocotools: {best_ms(reference, 1):.0f} ms"
        except ImportError:
            pass
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
