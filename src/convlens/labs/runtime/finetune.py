"""Fine-tuning: initial weights from a run or a file, training only some parameters,
frozen BatchNorm kept in eval mode, and convlens's prediction of the training memory.

Shared by every lab that trains a network someone else trained first (classification,
segmentation)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convlens.errors import ArgumentError, DataError

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def read_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a run folder (its ``checkpoint.pt``), a ``.pt``/``.pth`` file (a
    state dict, or a checkpoint holding one under ``model`` or ``state_dict``) or a
    ``.safetensors`` file. Loading never runs code from the file (``weights_only``)."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.is_file():
            raise DataError(
                f"--init: {source} is a folder without checkpoint.pt; not a run folder."
            )
    elif not path.is_file():
        raise DataError(f"--init: {source} does not exist.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        except Exception as err:
            raise DataError(
                f"--init: {path} is not a readable .safetensors file ({err})."
            ) from None
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(
            f"--init: {path} is not a readable PyTorch weights file ({type(err).__name__}: "
            f"{err}); give a run folder, a .pt state dict or a .safetensors file."
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(value, dict) and isinstance(value.get(key), dict):
            value = value[key]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    ):
        raise DataError(f"--init: {path} holds no state dict (names → tensors).")
    return value


def load_weights(
    model: nn.Module,
    source: str | Path,
    exclude: Sequence[str] = (),
    prefix: str = "",
    unused: Sequence[str] = (),
) -> list[str]:
    """Copy the weights of ``source`` into ``model``; every tensor of the model must be there
    with its shape, except those whose names match an ``exclude`` pattern (left as built,
    e.g. a new classifier). Returns the names loaded. A mismatch names the first
    mismatching key and both shapes, before anything is copied.

    ``prefix`` loads the file into the submodule of that name (a classifier's weights
    into ``backbone.``: the file's ``k`` is the model's ``prefix + k``; the model's tensors
    outside the prefix are left as built); file tensors matching an ``unused`` pattern
    (the classifier's own head, ``fc.*``) are not loaded."""
    weights = {
        prefix + k: v
        for k, v in read_weights(source).items()
        if not any(fnmatch.fnmatchcase(k, p) for p in unused)
    }
    own = model.state_dict()
    wanted = [
        k
        for k in own
        if k.startswith(prefix) and not any(fnmatch.fnmatchcase(k, p) for p in exclude)
    ]
    for key in wanted:
        if key not in weights:
            raise DataError(
                f"--init: {source} does not fit the model: it has no '{key}' "
                f"(model shape {tuple(own[key].shape)}); pass --init-exclude '{key}' to keep "
                "the model's own value."
            )
        if weights[key].shape != own[key].shape:
            raise DataError(
                f"--init: {source} does not fit the model: '{key}' has shape "
                f"{tuple(weights[key].shape)} in the file but {tuple(own[key].shape)} in the "
                f"model; pass --init-exclude '{key}' to keep the model's own."
            )
    unknown = [k for k in weights if k not in own]
    if unknown:
        raise DataError(
            f"--init: {source} does not fit the model: the file's '{unknown[0]}' is not in the "
            f"model ({len(unknown)} such tensors)."
        )
    with torch.no_grad():
        for key in wanted:
            own[key].copy_(weights[key])
    return wanted


def train_only(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Freeze every parameter whose name matches none of the glob ``patterns``
    (``requires_grad=False``); returns the names left trainable. A pattern that matches no
    parameter is an error listing some names."""
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = (
                ", ".join([*names[:4], "…", *names[-3:]]) if len(names) > 8 else ", ".join(names)
            )
            raise ArgumentError(
                f"--train-only '{pattern}' matches no parameter of the model; its parameters "
                f"are named like {shown}."
            )
    kept = []
    for name, parameter in model.named_parameters():
        trainable = any(fnmatch.fnmatchcase(name, p) for p in patterns)
        parameter.requires_grad_(trainable)
        if trainable:
            kept.append(name)
    return kept


def frozen_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers none of whose parameters is trained."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, BATCHNORMS)
        and not any(p.requires_grad for p in module.parameters(recurse=False))
    ]


def train_mode(frozen_bn: Sequence[str]) -> Any:
    """``model.train()`` that keeps the named BatchNorm layers in eval mode, so they
    normalise with their running statistics and never update them."""
    names = set(frozen_bn)

    def set_mode(model: nn.Module) -> None:
        model.train()
        inner = getattr(model, "module", model)  # DDP wraps the model
        for name, module in inner.named_modules():
            if name in names:
                module.eval()

    return set_mode


def predicted_memory(
    model: nn.Module, input_size: tuple[int, ...], optimizer: str
) -> dict[str, Any]:
    """convlens's own prediction of one training step's memory for ``model`` as it is
    frozen now (the tracer reads ``requires_grad``): bytes of parameters, buffers,
    gradients, optimizer state and saved activations. ``optimizer`` is convlens's name
    (``sgd``, ``momentum``, ``adam``)."""
    import convlens

    report = convlens.analyze(model, input_size=input_size, optimizer=optimizer)
    t = report.totals
    return {
        "batch": input_size[0],
        "optimizer": optimizer,
        "trainable_params": int(t.trainable_params),
        "frozen_params": int(t.frozen_params),
        "params": int(t.param_bytes),
        "buffers": int(t.buffer_bytes),
        "grads": int(t.grad_bytes),
        "optimizer_state": int(t.optimizer_bytes),
        "saved_activations": int(t.saved_activation_bytes),
        "total": int(t.training_bytes),
        "partial": list(t.unsupported),
    }


def memory_line(memory: dict[str, Any], train_only: Sequence[str], freeze_bn: bool) -> str:
    """The start line's prediction (``predicted_memory``), in MiB, with the freeze pattern."""
    mib = 1024**2
    frozen = f"train-only {', '.join(train_only)}" if train_only else "all trainable"
    bn = ", frozen BatchNorm in eval mode" if freeze_bn else ""
    return (
        f"predicted training memory (convlens, batch {memory['batch']} per process, {frozen}"
        f"{bn}, {memory['optimizer']}): parameters {memory['params'] / mib:.1f} MiB + "
        f"gradients {memory['grads'] / mib:.1f} + optimizer state "
        f"{memory['optimizer_state'] / mib:.1f} + saved activations "
        f"{memory['saved_activations'] / mib:.1f} + buffers {memory['buffers'] / mib:.2f} = "
        f"{memory['total'] / mib:.1f} MiB"
        + (f" (partial: no rule for {', '.join(memory['partial'])})" if memory["partial"] else "")
    )
