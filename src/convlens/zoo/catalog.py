# ruff: noqa: E501  (generated rows, one a line)
"""What ``convlens zoo list`` shows, as data: listing the zoo imports neither torch nor a model.

Generated from the registry by ``python -m convlens.zoo.catalog`` (which rewrites this
file); ``tests/cli/test_zoo_list.py`` fails, naming that command, when a registered model
and this copy disagree.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from convlens.zoo.registry import CatalogRow

# fmt: off
ROWS: tuple[CatalogRow, ...] = (
    CatalogRow(name='alexnet', paper='Krizhevsky et al.: ImageNet Classification with Deep Convolutional Neural Networks', year=2012, params=61100840, default_input=(3, 224, 224)),
    CatalogRow(name='cifar_plain20', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=269722, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_plain32', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=464154, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_plain44', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=658586, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_plain56', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=853018, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_plain110', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=1727962, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet9', paper='Page: How to Train Your ResNet (DAWNBench CIFAR-10 entry, myrtle.ai)', year=2018, params=6573120, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet20', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=269722, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet32', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=464154, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet44', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=658586, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet56', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=853018, default_input=(3, 32, 32)),
    CatalogRow(name='cifar_resnet110', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=1727962, default_input=(3, 32, 32)),
    CatalogRow(name='colour_cnn', paper='course (CSC321): Programming Assignment: Image Colourization (PoolUpsampleNet and UNet)', year=2018, params=86784, default_input=(1, 32, 32)),
    CatalogRow(name='colour_unet', paper='course (CSC321): Programming Assignment: Image Colourization (PoolUpsampleNet and UNet)', year=2018, params=112344, default_input=(1, 32, 32)),
    CatalogRow(name='darknet19', paper='Redmon & Farhadi: YOLO9000: Better, Faster, Stronger', year=2017, params=20842376, default_input=(3, 224, 224)),
    CatalogRow(name='darknet53', paper='Redmon & Farhadi: YOLOv3: An Incremental Improvement', year=2018, params=41609928, default_input=(3, 256, 256)),
    CatalogRow(name='deeplabv3_cifar', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=1665810, default_input=(1, 128, 128)),
    CatalogRow(name='deeplabv3_resnet50', paper='Chen et al.: Rethinking Atrous Convolution for Semantic Image Segmentation', year=2017, params=39638869, default_input=(3, 513, 513)),
    CatalogRow(name='deeplabv3_resnet101', paper='Chen et al.: Rethinking Atrous Convolution for Semantic Image Segmentation', year=2017, params=58630997, default_input=(3, 513, 513)),
    CatalogRow(name='densenet121', paper='Huang et al.: Densely Connected Convolutional Networks', year=2017, params=7978856, default_input=(3, 224, 224)),
    CatalogRow(name='densenet169', paper='Huang et al.: Densely Connected Convolutional Networks', year=2017, params=14149480, default_input=(3, 224, 224)),
    CatalogRow(name='densenet201', paper='Huang et al.: Densely Connected Convolutional Networks', year=2017, params=20013928, default_input=(3, 224, 224)),
    CatalogRow(name='efficientnet_b0', paper='Tan & Le: EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks', year=2019, params=5288548, default_input=(3, 224, 224)),
    CatalogRow(name='googlenet', paper='Szegedy et al.: Going Deeper with Convolutions', year=2015, params=6624904, default_input=(3, 224, 224)),
    CatalogRow(name='lenet5', paper='LeCun et al.: Gradient-Based Learning Applied to Document Recognition', year=1998, params=60000, default_input=(1, 32, 32)),
    CatalogRow(name='mobilenet_v1', paper='Howard et al.: MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications', year=2017, params=4231976, default_input=(3, 224, 224)),
    CatalogRow(name='mobilenet_v2', paper='Sandler et al.: MobileNetV2: Inverted Residuals and Linear Bottlenecks', year=2018, params=3504872, default_input=(3, 224, 224)),
    CatalogRow(name='mobilenet_v3_large', paper='Howard et al.: Searching for MobileNetV3', year=2019, params=5483032, default_input=(3, 224, 224)),
    CatalogRow(name='mobilenet_v3_small', paper='Howard et al.: Searching for MobileNetV3', year=2019, params=2542856, default_input=(3, 224, 224)),
    CatalogRow(name='resnet18', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=11689512, default_input=(3, 224, 224)),
    CatalogRow(name='resnet34', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=21797672, default_input=(3, 224, 224)),
    CatalogRow(name='resnet50', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=25557032, default_input=(3, 224, 224)),
    CatalogRow(name='resnet101', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=44549160, default_input=(3, 224, 224)),
    CatalogRow(name='resnet152', paper='He et al.: Deep Residual Learning for Image Recognition', year=2016, params=60192808, default_input=(3, 224, 224)),
    CatalogRow(name='se_resnet50', paper='Hu et al.: Squeeze-and-Excitation Networks', year=2018, params=28088024, default_input=(3, 224, 224)),
    CatalogRow(name='unet', paper='Ronneberger et al.: U-Net: Convolutional Networks for Biomedical Image Segmentation', year=2015, params=31030658, default_input=(1, 572, 572)),
    CatalogRow(name='unet_same', paper='Ronneberger et al.: U-Net: Convolutional Networks for Biomedical Image Segmentation', year=2015, params=31037698, default_input=(3, 256, 256)),
    CatalogRow(name='unet_valid', paper='Ronneberger et al.: U-Net: Convolutional Networks for Biomedical Image Segmentation', year=2015, params=31030658, default_input=(1, 572, 572)),
    CatalogRow(name='vgg11', paper='Simonyan & Zisserman: Very Deep Convolutional Networks for Large-Scale Image Recognition', year=2015, params=132863336, default_input=(3, 224, 224)),
    CatalogRow(name='vgg16', paper='Simonyan & Zisserman: Very Deep Convolutional Networks for Large-Scale Image Recognition', year=2015, params=138357544, default_input=(3, 224, 224)),
    CatalogRow(name='vgg19', paper='Simonyan & Zisserman: Very Deep Convolutional Networks for Large-Scale Image Recognition', year=2015, params=143667240, default_input=(3, 224, 224)),
    CatalogRow(name='yolov1', paper='Redmon et al.: You Only Look Once: Unified, Real-Time Object Detection', year=2016, params=271703550, default_input=(3, 448, 448)),
    CatalogRow(name='yolov2', paper='Redmon & Farhadi: YOLO9000: Better, Faster, Stronger', year=2017, params=67137565, default_input=(3, 416, 416)),
    CatalogRow(name='yolov3', paper='Redmon & Farhadi: YOLOv3: An Incremental Improvement', year=2018, params=61949149, default_input=(3, 416, 416)),
)
# fmt: on


def list_rows(pattern: str = "*") -> list[CatalogRow]:
    """Rows whose name matches the shell-style ``pattern``, in the registry's order."""
    return [row for row in ROWS if fnmatch.fnmatchcase(row.name, pattern)]


def source_text(rows: tuple[CatalogRow, ...]) -> str:
    """This module's text with ``rows`` as its data."""
    text = Path(__file__).read_text(encoding="utf-8")
    head, rest = text.split("ROWS: tuple[CatalogRow, ...] = (\n", 1)
    _, tail = rest.split(")\n# fmt: on\n", 1)
    lines = "".join(f"    {row!r},\n" for row in rows)
    return f"{head}ROWS: tuple[CatalogRow, ...] = (\n{lines})\n# fmt: on\n{tail}"


if __name__ == "__main__":
    from convlens.zoo.registry import catalog_rows

    Path(__file__).write_text(source_text(catalog_rows()), encoding="utf-8")
