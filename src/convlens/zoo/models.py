"""Imports every module that registers models (the registry loads this lazily)."""

from convlens.zoo import (  # noqa: F401
    cifar_resnet,
    classic,
    colour,
    deeplab,
    densenet,
    efficient,
    googlenet,
    mobilenet,
    resnet,
    segmentation,
    unet,
    yolo,
    yolov2,
)
