"""Shape-only tracing of ``nn.Module``s into the same layer records as descriptions.

The input is a ``ShapeTensor``: a tensor on the meta device (no data, free to
create) whose ``__torch_function__`` sees every operation the model performs. For
operations with a convlens rule the output shape comes from that rule and the
operation becomes a ``LayerSpec`` — so a module and its description are analysed
by the very same code. Only operations without a rule run PyTorch's meta kernel
(which costs a one-off import); they are recorded as ``opaque`` and the report says
its figures are partial. The user's model is not changed: no kernel touches its
weights, and its train/eval flags are restored afterwards.

The pieces: ``shape_tensor`` (the tensor), ``tracer`` (the recorder), ``batch_axis``
(where the batch is), ``probes`` (what autograd keeps), ``handlers/`` (PyTorch functions
→ rules, one module per family).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import convlens.torch.handlers  # noqa: F401  (registers every handler)
from convlens.core.records import LayerSpec, Network
from convlens.errors import ArgumentError, ConvlensError
from convlens.torch.shape_tensor import ShapeTensor, meta_tensor
from convlens.torch.tracer import Tracer


@contextlib.contextmanager
def _module_hooks(tracer: Tracer) -> Iterator[None]:
    def pre(module: nn.Module, _: Any) -> None:
        tracer.stack.append(module)
        tracer.called.add(id(module))

    def post(module: nn.Module, _: Any, output: Any) -> None:
        if tracer.stack and tracer.stack[-1] is module:
            tracer.stack.pop()
        name = tracer.names.get(id(module))
        if name is not None:  # "" is the model itself (--depth 0)
            tracer.outputs[name] = tracer.describe(output)

    handles_ = [
        nn.modules.module.register_module_forward_pre_hook(pre),
        nn.modules.module.register_module_forward_hook(post, always_call=True),
    ]
    try:
        yield
    finally:
        for h in handles_:
            h.remove()


def _first_names(modules: Iterable[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Each module once, under the first name the walk gives it (as named_modules() does)."""
    first: dict[int, tuple[str, nn.Module]] = {}
    for name, module in modules:
        first.setdefault(id(module), (name, module))
    return list(first.values())


def _unique(tensors: Iterable[torch.Tensor | None]) -> list[torch.Tensor]:
    """Tensors in order, each once (a module may hold one under two names), no Nones."""
    return list({id(t): t for t in tensors if t is not None}.values())


def _own_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The parameters and buffers a module holds itself (not its children's)."""
    return _unique(itertools.chain(module._parameters.values(), module._buffers.values()))


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Trace in eval mode (BatchNorm would count batches) and restore every flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:  # a plain attribute: no need for Module.__setattr__
            module.__dict__["training"] = training


@dataclass(frozen=True)
class Trace:
    network: Network
    output: Any
    costs: Mapping[str, Any] = field(default_factory=dict)  # layer → Cost, for the analyser


def trace(
    model: nn.Module,
    input_size: Sequence[int],
    dtype: torch.dtype = torch.float32,
    kwargs: Mapping[str, Any] | None = None,
    device: str = "meta",
) -> Trace:
    """Trace ``model`` on an input of ``input_size`` = (N, C, H, W).

    ``device="meta"`` (default) computes nothing; ``"cpu"`` or ``"cuda"`` runs a real
    forward (random input, ``no_grad``) for models that cannot be traced by shape alone,
    records the same layers and checks every rule's shape against the real result.
    """
    sizes = (
        [tuple(input_size)]
        if all(isinstance(d, int) for d in input_size)
        else [tuple(s) for s in input_size]
    )  # several positional inputs
    input_size = sizes[0]
    if len(input_size) != 4:
        raise ArgumentError(f"input size must be (N, C, H, W); got {tuple(input_size)}")
    if device not in ("meta", "cpu", "cuda"):
        raise ArgumentError(f"device must be meta, cpu or cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda: no CUDA device is available here")
    tracer = Tracer(model=model, batch=int(input_size[0]), dtype=dtype, device=device)
    # One walk over the modules serves names, leaves, owned tensors and the report.
    modules = list(model.named_modules(remove_duplicate=False))
    tracer.names = {id(m): name for name, m in modules}
    tracer.leaves = {id(m) for _, m in modules if not m._modules}
    tracer.names[id(model)] = ""
    tracer.owned = {id(t) for _, m in modules for t in _own_tensors(m)}
    tracer.shapes["input"] = tuple(int(d) for d in input_size[1:])
    tracer.context = Network(input_shape=tracer.shapes["input"], layers=(), name="model")

    def make(shape: Sequence[int]) -> ShapeTensor:
        if device == "meta":
            return meta_tensor(shape, dtype)
        return torch.randn(tuple(shape), dtype=dtype, device=device).as_subclass(ShapeTensor)

    if device == "meta":
        x = meta_tensor(input_size, dtype)
    else:
        model_device = next((p.device for p in model.parameters()), torch.device(device))
        if model_device.type != device:
            raise ArgumentError(f"the model's parameters are on {model_device}, not {device}")
        x = torch.randn(tuple(input_size), dtype=dtype, device=device).as_subclass(ShapeTensor)
    tracer.register(x, "input")
    more_inputs: list[tuple[str, tuple[int, ...]]] = []
    positional = [x]
    keywords = dict(kwargs or {})
    for i, shape in enumerate(sizes[1:], start=1):  # more positional inputs
        t = make(shape)
        tracer.register(t, f"input_{i}")
        positional.append(t)
        more_inputs.append((f"input_{i}", tuple(shape[1:])))
    for key, value in list(keywords.items()):  # keyword tensors: traced too, by name
        if isinstance(value, torch.Tensor):
            t = make(tuple(value.shape))
            tracer.register(t, key)
            keywords[key] = t
            more_inputs.append((key, tuple(value.shape[1:])))
    for name, shape in more_inputs:
        tracer.shapes[name] = shape
    ShapeTensor.tracer = tracer
    try:
        with _module_hooks(tracer), _eval_mode(model), torch.no_grad():
            output = model(*positional, **keywords)
    except ConvlensError:
        raise
    except Exception as err:  # the user's forward failed: say where and on what shapes
        raise ConvlensError(
            f"the forward pass failed in {tracer.where()}: {type(err).__name__}: {err}"
        ) from None
    finally:
        ShapeTensor.tracer = None
    not_run = []
    unique = _first_names(modules)
    for name, module in unique:
        status = (
            " (ran; its operations have no rule)"
            if id(module) in tracer.called
            else " (did not run)"
        )
        params = [
            p for p in _unique(module._parameters.values()) if id(p) not in tracer.seen_params
        ]
        extra = [b for b in _unique(module._buffers.values()) if id(b) not in tracer.seen_params]
        if params or extra:
            tracer.seen_params.update(id(t) for t in [*params, *extra])
            own = sum(p.numel() for p in params)
            buffers = sum(b.numel() for b in extra)
            label = name or "(model)"
            if label in tracer.shapes:  # the module also ran layers under this name
                label = f"{label} (parameters)"
            tracer.shapes[label] = (0,)
            not_run.append(
                LayerSpec(
                    name=label,
                    kind="params_only",
                    args={"params": own, "buffers": buffers},
                    inputs=(),
                    frozen=not any(p.requires_grad for p in params),
                    origin=type(module).__name__ + status,
                )
            )
    network = Network(
        input_shape=tracer.shapes["input"],
        layers=(*tracer.layers, *not_run),
        name=type(model).__name__,
        source=type(model).__name__,
        module_types=tuple((name, type(m).__name__) for name, m in unique if name),
        module_outputs=tuple(tracer.outputs.items()),
        extra_inputs=tuple(more_inputs),
    )
    return Trace(network, output, tracer.costs)
