"""Worked numbers for one pair of boxes: every quantity IoU, GIoU, DIoU and CIoU are made of.

Only collects numbers (``render.py`` writes them out); a test checks that the steps
recombine into exactly what ``box_iou`` and its siblings report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from convlens.detection.boxes import EPS

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PairWork:
    """Two xyxy boxes and the pieces of their overlap measures."""

    a: Box
    b: Box
    intersection: Box  # corners max(x1), max(y1), min(x2), min(y2); may be inverted (empty)
    inter_w: float  # max(0, x2 − x1) of the intersection
    inter_h: float
    area_a: float
    area_b: float
    enclosing: Box  # the smallest box holding both
    centre_a: tuple[float, float]
    centre_b: tuple[float, float]

    @property
    def inter(self) -> float:
        return self.inter_w * self.inter_h

    @property
    def union(self) -> float:
        return self.area_a + self.area_b - self.inter

    @property
    def iou(self) -> float:
        return self.inter / self.union if self.inter > 0 else 0.0

    @property
    def enclosing_area(self) -> float:
        x1, y1, x2, y2 = self.enclosing
        return (x2 - x1) * (y2 - y1)

    @property
    def giou(self) -> float:
        c = self.enclosing_area
        return self.iou - (c - self.union) / c if c > 0 else self.iou

    @property
    def centre_distance2(self) -> float:
        return (self.centre_a[0] - self.centre_b[0]) ** 2 + (
            self.centre_a[1] - self.centre_b[1]
        ) ** 2

    @property
    def diagonal2(self) -> float:
        x1, y1, x2, y2 = self.enclosing
        return (x2 - x1) ** 2 + (y2 - y1) ** 2

    @property
    def diou(self) -> float:
        return self.iou - self.centre_distance2 / (self.diagonal2 + EPS)

    @staticmethod
    def _angle(box: Box) -> float:
        w, h = box[2] - box[0], box[3] - box[1]
        return math.pi / 2 if h <= 0 else math.atan(w / h)

    @property
    def angle_a(self) -> float:
        return self._angle(self.a)

    @property
    def angle_b(self) -> float:
        return self._angle(self.b)

    @property
    def v(self) -> float:
        return 4 / math.pi**2 * (self.angle_b - self.angle_a) ** 2

    @property
    def alpha(self) -> float:
        return self.v / (1 - self.iou + self.v + EPS)

    @property
    def ciou(self) -> float:
        return self.diou - self.alpha * self.v


def pair_work(a: Box, b: Box) -> PairWork:
    a = tuple(float(v) for v in a)  # type: ignore[assignment]
    b = tuple(float(v) for v in b)  # type: ignore[assignment]
    inter = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return PairWork(
        a=a,
        b=b,
        intersection=inter,
        inter_w=max(0.0, inter[2] - inter[0]),
        inter_h=max(0.0, inter[3] - inter[1]),
        area_a=(a[2] - a[0]) * (a[3] - a[1]),
        area_b=(b[2] - b[0]) * (b[3] - b[1]),
        enclosing=(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])),
        centre_a=((a[0] + a[2]) / 2, (a[1] + a[3]) / 2),
        centre_b=((b[0] + b[2]) / 2, (b[1] + b[3]) / 2),
    )
