"""Where a model comes from: a classify-lab run, ``zoo:NAME`` or ``module:factory`` + weights.

Every source ends as the same ``Source``: an ``nn.Module`` in eval mode on the CPU that
takes N×3×H×W floats in [0, 1] and returns N×K class scores, with the input size it is fed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convlens.errors import ArgumentError, DataError

# Input size (H, W) of a run folder or a module:factory without --size: the CIFAR labs' 32×32.
DEFAULT_SIZE = (32, 32)


@dataclass(frozen=True)
class Source:
    """A classifier ready for interpretation."""

    model: nn.Module  # eval mode, CPU; (N, 3, H, W) in [0, 1] → (N, num_classes)
    input_size: tuple[int, int]  # (H, W) every image is resized to
    num_classes: int
    class_names: tuple[str, ...] | None
    name: str  # how reports name the model


def load_source(
    source: str,
    weights: str | Path | None = None,
    size: tuple[int, int] | None = None,
) -> Source:
    """A run folder, ``zoo:NAME[?arg=value]`` or ``package.module:factory`` → ``Source``.

    ``weights`` (a ``.pt`` state dict or ``.safetensors`` file) replaces the module's
    weights and must fit it exactly. ``size`` overrides the input size the source implies.
    """
    class_names: tuple[str, ...] | None = None
    if Path(source).is_dir():
        model, config = _load_run(source)
        implied = DEFAULT_SIZE
        class_names = _run_class_names(config)
    elif ":" in source:
        from convlens.api import model_from_reference

        model, default_input = model_from_reference(source, real=True)
        if isinstance(model, type):  # a Module class passed as its own factory
            try:
                model = model()
            except Exception as err:
                raise ArgumentError(
                    f"calling '{source}' failed: {type(err).__name__}: {err}"
                ) from None
        implied = tuple(default_input[-2:]) if default_input else DEFAULT_SIZE  # type: ignore[assignment]
    else:
        raise ArgumentError(
            f"SRC '{source}' is neither a classify run folder (no such folder), "
            "zoo:NAME nor package.module:factory."
        )
    if weights is not None:
        load_weights(model, weights, source)
    model = model.cpu().eval()
    input_size = size or implied
    num_classes = probe_classes(model, input_size, source)
    if class_names is not None and len(class_names) != num_classes:
        class_names = None
    return Source(model, input_size, num_classes, class_names, source)


def _load_run(folder: str) -> tuple[nn.Module, Any]:
    """The classify lab's contract: ``load_run(folder) -> (model, config)``."""
    try:
        from convlens.labs import load_run  # type: ignore[attr-defined]
    except ImportError:
        raise ArgumentError(
            f"SRC '{folder}' is a folder, but this convlens has no classify lab "
            "(convlens.labs.load_run) to read a run from it."
        ) from None
    return load_run(folder)


def _run_class_names(config: Any) -> tuple[str, ...] | None:
    """The run's class names in label order (the model's outputs may be a subset of CIFAR's
    ten); None when they cannot be found (numbers are shown instead)."""
    try:
        from convlens.labs.classify import class_names

        return tuple(class_names(config))
    except Exception:  # names are a convenience: a moved data folder must not stop the work
        return None


def probe_classes(model: nn.Module, size: tuple[int, int], source: str) -> int:
    """Run one blank image through the model: it must map 1×3×H×W to 1×K scores."""
    height, width = size
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, height, width))
    except Exception as err:
        raise ArgumentError(
            f"{source} does not accept a 1×3×{height}×{width} image "
            f"({type(err).__name__}: {err}); give its input size with --size HxW."
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = "×".join(map(str, out.shape)) if isinstance(out, torch.Tensor) else type(out)
        raise ArgumentError(
            f"{source} is not a classifier: it returned {shape} for one image; "
            "interpretation needs N×K class scores."
        )
    return int(out.shape[1])


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file or a ``.pt`` state dict (loaded with ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(
            f"{path} is not a readable weights file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); expected a .pt state dict "
            "or a .safetensors file."
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(
            f"{path} holds a {type(state).__name__}, not a state dict (names → tensors)."
        )
    return dict(state)


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def first_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """The first key (in the model's order) that is missing, extra or of another shape."""
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            return f"key '{key}' ({_shape(value)} in the model) is missing from the file"
        if state[key].shape != value.shape:
            return (
                f"key '{key}' is {_shape(state[key])} in the file but {_shape(value)} in the model"
            )
    for key, value in state.items():
        if key not in expected:
            return f"the file has key '{key}' ({_shape(value)}) that the model does not have"
    return None


def load_weights(model: nn.Module, path: str | Path, source: str = "the model") -> None:
    """Copy a weights file into ``model``; a file that does not fit names the first key."""
    state = read_state_dict(path)
    mismatch = first_mismatch(model, state)
    if mismatch:
        raise ArgumentError(f"weights {path} do not fit {source}: {mismatch}.")
    model.load_state_dict(state)


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name lists the five closest."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = layer_names(model)
    closest = difflib.get_close_matches(name, names, n=5, cutoff=0.0)
    raise ArgumentError(
        f"--layer: the model has no layer '{name}'; closest names: {', '.join(closest)} "
        f"(of {len(names)} layers)."
    )


def is_leaf(module: nn.Module) -> bool:
    return not any(module.children())


def executed_layers(
    model: nn.Module, x: torch.Tensor, select: Callable[[nn.Module], bool] = is_leaf
) -> list[str]:
    """Names of the selected modules (default: the leaves) in the order one forward
    finishes them; a module run twice counts once, at its first run."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name and select(module):
            handles.append(
                module.register_forward_hook(
                    lambda _m, _i, _o, name=name: order.append(name) if name not in order else None
                )
            )
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def convolutions(model: nn.Module, size: tuple[int, int]) -> list[str]:
    """Every ``nn.Conv2d`` in the order a forward runs them."""
    return executed_layers(model, torch.zeros(1, 3, *size), lambda m: isinstance(m, nn.Conv2d))


def last_convolution(model: nn.Module, size: tuple[int, int]) -> str:
    """The default Grad-CAM layer: the last ``nn.Conv2d`` a forward runs."""
    convs = convolutions(model, size)
    if not convs:
        raise ArgumentError("the model runs no nn.Conv2d; name the layer with --layer.")
    return convs[-1]
