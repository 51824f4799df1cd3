"""Text and Markdown for the detection results and their worked examples.

Only reads the numbers the other modules collected (``explain.PairWork``, ``nms.NmsStep``,
``decode.CellWork``, ``ap.APResult`` …); computes nothing new but sums shown for checking.
The text layout follows ``convlens op --explain``: a title, underlined sections, one
line of working per step. ``document`` holds that layout (``Doc``); ``boxes`` the
working for one set of boxes (IoU, NMS, decoding, anchors); ``evaluation`` the AP tables,
the COCO and VOC summaries and their JSON.
"""

from convlens.detection.render.boxes import (
    EXPLAIN_PAIRS,
    render_anchors,
    render_decode,
    render_iou,
    render_nms,
    render_soft_nms,
)
from convlens.detection.render.document import FORMATS, Doc, box, p4
from convlens.detection.render.evaluation import (
    EXPLAIN_RANKS,
    coco_json,
    render_coco,
    render_curve,
    render_voc,
    voc_json,
)

__all__ = [
    "EXPLAIN_PAIRS",
    "EXPLAIN_RANKS",
    "FORMATS",
    "Doc",
    "box",
    "coco_json",
    "p4",
    "render_anchors",
    "render_coco",
    "render_curve",
    "render_decode",
    "render_iou",
    "render_nms",
    "render_soft_nms",
    "render_voc",
    "voc_json",
]
