"""Looking inside a trained classifier: activations, filters, feature visualisation,
attribution maps, and checks of those maps (sanity, faithfulness).

>>> from convlens.interpret import load_source, attribute
>>> source = load_source("zoo:lenet5")                       # or a run folder, module:factory
>>> result = attribute(source, pixels, "gradcam")            # pixels: (3, H, W) in [0, 1]
>>> result.map.shape                                         # (H, W) float32

Modules: ``sources`` (models, weights, layers), ``images`` (inputs), ``methods`` (the
attribution methods), ``maps`` (their registry and H×W maps), ``features`` (activations,
kernels), ``maximize``, ``sanity``, ``faithfulness``; ``render`` and ``plotting`` only
draw what those computed; ``output`` writes files atomically.
"""

from convlens.interpret.faithfulness import FaithfulnessResult, faithfulness
from convlens.interpret.features import activations, kernels
from convlens.interpret.images import Picture, cifar_picture, file_picture, read_test_batch
from convlens.interpret.maps import METHODS, Attribution, attribute, compute_maps
from convlens.interpret.maximize import MaximizeOptions, Visualisation, maximize
from convlens.interpret.methods import MethodOptions
from convlens.interpret.sanity import SanityResult, cascading_randomisation, spearman
from convlens.interpret.sources import (
    Source,
    convolutions,
    find_layer,
    load_source,
    load_weights,
)

__all__ = [
    "METHODS",
    "Attribution",
    "FaithfulnessResult",
    "MaximizeOptions",
    "MethodOptions",
    "Picture",
    "SanityResult",
    "Source",
    "Visualisation",
    "activations",
    "attribute",
    "cascading_randomisation",
    "cifar_picture",
    "compute_maps",
    "convolutions",
    "faithfulness",
    "file_picture",
    "find_layer",
    "kernels",
    "load_source",
    "load_weights",
    "maximize",
    "read_test_batch",
    "spearman",
]
