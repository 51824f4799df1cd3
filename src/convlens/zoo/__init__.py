"""The model zoo: classic CNNs and the course networks as PyTorch modules.

>>> from convlens.zoo import create_model
>>> model = create_model("colour_unet", kernel=3, num_filters=32, num_colours=24, in_channels=1)
"""

from convlens.zoo.registry import (
    Argument,
    Citation,
    ModelEntry,
    PublishedFigure,
    Quantity,
    coerce_arguments,
    create_model,
    get_entry,
    list_models,
    register_model,
)

__all__ = [
    "Argument",
    "Citation",
    "ModelEntry",
    "PublishedFigure",
    "Quantity",
    "coerce_arguments",
    "create_model",
    "get_entry",
    "list_models",
    "register_model",
]
