"""Object detection after the network: boxes, IoU, NMS, YOLO decoding, anchors and mAP.

NumPy throughout (torch tensors accepted where the formula is the same); the YOLO
decoders and the tiny detector need torch and are imported from their modules
(``convlens.detection.decode``, ``convlens.detection.tiny_yolo``).

>>> from convlens.detection import box_iou, nms
>>> box_iou([[0, 0, 10, 10]], [[5, 5, 15, 15]]).round(4).tolist()
[[0.1429]]
>>> nms([[0, 0, 10, 10], [1, 1, 11, 11]], [0.8, 0.9], 0.5).tolist()
[1]
"""

from convlens.detection.anchors import kmeans_anchors, mean_iou_by_k
from convlens.detection.ap import ap_all_points, ap_coco101, ap_voc07, pr_curve
from convlens.detection.boxes import (
    BoxFormat,
    box_area,
    box_iou,
    complete_box_iou,
    convert,
    distance_box_iou,
    generalized_box_iou,
)
from convlens.detection.coco import (
    Annotation,
    Category,
    Detection,
    GroundTruth,
    Image,
    load_detections,
    load_ground_truth,
)
from convlens.detection.evaluate import evaluate_coco, evaluate_voc
from convlens.detection.nms import batched_nms, nms, soft_nms

__all__ = [
    "Annotation",
    "BoxFormat",
    "Category",
    "Detection",
    "GroundTruth",
    "Image",
    "ap_all_points",
    "ap_coco101",
    "ap_voc07",
    "batched_nms",
    "box_area",
    "box_iou",
    "complete_box_iou",
    "convert",
    "distance_box_iou",
    "evaluate_coco",
    "evaluate_voc",
    "generalized_box_iou",
    "kmeans_anchors",
    "load_detections",
    "load_ground_truth",
    "mean_iou_by_k",
    "nms",
    "pr_curve",
    "soft_nms",
]
