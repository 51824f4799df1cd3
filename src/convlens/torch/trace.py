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
(where the batch is), ``probes`` (what autograd keeps), ``lowering/`` (each kind's
handlers of PyTorch functions, one module per rule family; ``registry`` holds them).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import convlens.torch.lowering  # noqa: F401  (registers every tracer handler)
from convlens.core.records import LayerSpec, Network
from convlens.errors import ArgumentError, ConvlensError
from convlens.torch.inputs import Leaf, ModelInputs, activation_dtype, dtype_name, model_inputs
from convlens.torch.registry import MODULE_CALLS, ModuleCall
from convlens.torch.shape_tensor import ShapeTensor, meta_tensor
from convlens.torch.tracer import Tracer


@contextlib.contextmanager
def _module_calls(tracer: Tracer, modules: Iterable[nn.Module]) -> Iterator[None]:
    """Every call of one of the model's modules (each given once) reports to the trace
    (whose rows these are; what it returned) through a wrapper put on the module's
    ``forward`` for the length of the trace. Not global module hooks: with any hook
    installed PyTorch takes its slow call path for every module. The module's own hooks
    still run around the wrapper, as they would around its forward. A stock module whose
    forward is one call of a handled function (``registry.MODULE_CALLS``) has the trace
    make that call directly."""
    wrap = _reporting(tracer)
    patched: list[tuple[nn.Module, Any]] = []
    for module in modules:
        state = module.__dict__
        own = state.get("forward", _NOTHING)  # an instance's own forward, if any
        direct = MODULE_CALLS.get(type(module)) if own is _NOTHING else None
        state["forward"] = wrap(module, module.forward, direct)
        patched.append((module, own))
    try:
        yield
    finally:
        for module, own in patched:
            if own is _NOTHING:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = own


_NOTHING = object()


def _reporting(tracer: Tracer) -> Callable[[nn.Module, Any, ModuleCall | None], Any]:
    """Makes a module's forward for the trace: the module is innermost while it runs and
    its output is described; a stock module given a traced tensor makes the one call its
    forward would make, directly."""
    stack, called, outputs, names = tracer.stack, tracer.called, tracer.outputs, tracer.names
    describe, on_call = tracer.describe, tracer.on_call

    def wrap(module: nn.Module, forward: Any, direct: ModuleCall | None) -> Any:
        key = id(module)

        def call(*args: Any, **kwargs: Any) -> Any:
            stack.append(module)
            called.add(key)
            try:
                how = None
                one_tensor = len(args) == 1 and not kwargs and type(args[0]) is ShapeTensor
                if direct is not None and one_tensor:
                    with torch._C.DisableTorchFunctionSubclass():  # its shape reads: plain
                        how = direct(module, args[0])
                output = forward(*args, **kwargs) if how is None else on_call(*how)
            finally:
                if stack and stack[-1] is module:
                    stack.pop()
            name = names.get(key)
            if name is not None:  # "" is the model itself (--depth 0)
                outputs[name] = describe(output)
            return output

        return call

    return wrap


def _named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``model.named_modules(remove_duplicate=False)`` as a list, without its recursive
    generators (one per level of nesting, each yielding every module below it again:
    most of the cost of setting up a trace of a deep network); a compiled submodule's
    wrapper and the module inside it share its name."""
    found: list[tuple[str, nn.Module]] = []
    todo: list[tuple[str, nn.Module]] = [("", model)]
    compiled = False
    while todo:
        name, module = todo.pop()
        found.append((name, module))
        children = module._modules
        if children:  # most modules have none
            prefix = f"{name}." if name else ""
            compiled = compiled or "_orig_mod" in children
            todo.extend(
                [
                    (prefix + child_name, c)
                    for child_name, c in reversed(children.items())
                    if c is not None
                ]
            )
    if compiled:
        return [(name.replace("._orig_mod", "").replace("_orig_mod.", ""), m) for name, m in found]
    return found


def _unique(tensors: Iterable[torch.Tensor | None]) -> list[torch.Tensor]:
    """Tensors in order, each once (a module may hold one under two names), no Nones."""
    return list({id(t): t for t in tensors if t is not None}.values())


@contextlib.contextmanager
def _as_it_runs(model: nn.Module, modules: list[nn.Module], device: str) -> Iterator[None]:
    """A model in train mode is traced as a training step runs it: every module's flag as
    it is (a BatchNorm put in eval mode for fine-tuning stays there; dropout, drop-path and
    attention dropout are active). A model in eval mode is traced as inference runs it.
    Whatever the forward changes — BatchNorm's running statistics and batch counter in
    training — is put back afterwards, and so is every flag. ``modules``:
    ``model.modules()``, already walked."""
    flags = [(m, m.training) for m in modules]
    buffers = (
        [(b, b.clone()) for b in _unique(_buffers(modules, device)) if not b.is_meta]
        if model.training
        else []
    )
    try:
        yield
    finally:
        for module, training in flags:  # a plain attribute: no need for Module.__setattr__
            module.__dict__["training"] = training
        with torch.no_grad():
            for buffer, saved in buffers:  # (a kernel updating running statistics in
                buffer.copy_(saved)  # place does not move their version: copy them all)


def _buffers(modules: Iterable[nn.Module], device: str) -> Iterator[torch.Tensor | None]:
    """The buffers a training forward may change. In a shape trace, PyTorch's own BatchNorm
    changes only its batch counter (its running statistics are updated inside
    F.batch_norm, which the trace does not run): the one buffer of three worth copying."""
    for module in modules:
        stock_batchnorm = (
            device == "meta"
            and isinstance(module, nn.modules.batchnorm._BatchNorm)
            and type(module).forward is nn.modules.batchnorm._BatchNorm.forward
        )
        if stock_batchnorm:
            yield module._buffers.get("num_batches_tracked")
        else:
            yield from module._buffers.values()


def _is_compiled(module: nn.Module) -> bool:
    """``torch.compile(module)``'s wrapper (checked without importing torch._dynamo)."""
    return type(module).__name__ == "OptimizedModule" and "_orig_mod" in module._modules


@contextlib.contextmanager
def _run_eagerly() -> Iterator[None]:
    """Compiled submodules run as plain Python (Dynamo cannot trace a shape tensor)."""
    with torch.compiler.set_stance("force_eager"):
        yield


def _eager(model: nn.Module) -> nn.Module:
    """The eager module behind ``torch.compile(model)``."""
    while _is_compiled(model):
        model = model._modules["_orig_mod"]  # type: ignore[assignment]
    return model


@dataclass
class _Walk:
    """What a trace needs of the model's modules, from one pass over them."""

    modules: list[nn.Module]  # each once, compiled submodules' wrappers included
    holders: list[tuple[str, nn.Module]]  # those holding parameters or buffers, first names
    module_types: tuple[tuple[str, str], ...]  # (first name, type) for the report
    compiled: set[int]  # ids of compiled submodules' wrappers (their modules run eagerly)


def _walk(modules: list[tuple[str, nn.Module]], tracer: Tracer) -> _Walk:
    """One pass over ``_named_modules``: the tracer's module names (a module reached by two
    paths is named by the last), leaves and owned tensors; each module once under its first
    name (as ``named_modules()`` gives it). A compiled submodule's wrapper and the module
    inside it share a name; the wrapper is left out of the report. TorchScript hides its
    operations from Python: refused with what to pass instead."""
    names, leaves, owned = tracer.names, tracer.leaves, tracer.owned
    first: dict[int, nn.Module] = {}
    holders: list[tuple[str, nn.Module]] = []
    types: list[tuple[str, str]] = []
    compiled: set[int] = set()
    for name, module in modules:
        key = id(module)
        names[key] = name
        if key in first:
            continue
        first[key] = module
        if isinstance(module, torch.jit.ScriptModule):
            what = f"submodule '{name}'" if name else "the model"
            raise ArgumentError(
                f"{what} is a TorchScript module (torch.jit.script or torch.jit.trace), whose "
                "operations Python cannot see: pass the nn.Module it was made from instead"
            )
        if not module._modules:
            leaves.add(key)
        elif _is_compiled(module):
            compiled.add(key)
            continue
        if module._parameters or module._buffers:
            owned.update([id(t) for t in module._parameters.values() if t is not None])
            owned.update([id(t) for t in module._buffers.values() if t is not None])
            holders.append((name, module))
        if name:
            types.append((name, type(module).__name__))
    return _Walk(list(first.values()), holders, tuple(types), compiled)


@dataclass(frozen=True)
class Trace:
    network: Network
    output: Any
    costs: Mapping[str, Any] = field(default_factory=dict)  # layer → Cost, for the analyser
    batch: int = 1
    dtype: str = "float32"  # the activations' (the first floating input's or parameter's)


def trace(model: nn.Module, inputs: Any, device: str = "meta", batch: int = 1) -> Trace:
    """Trace ``model`` called with ``inputs``: a size (N, C, H, W), a tensor, or lists,
    tuples and dicts of them (see ``convlens.torch.inputs``); ``batch`` goes in front of
    a size of three.

    ``device="meta"`` (default) computes nothing; ``"cpu"`` or ``"cuda"`` runs a real
    forward (random input, ``no_grad``) for models that cannot be traced by shape alone,
    records the same layers and checks every rule's shape against the real result.
    """
    if device not in ("meta", "cpu", "cuda"):
        raise ArgumentError(f"device must be meta, cpu or cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda: no CUDA device is available here")
    model = _eager(model)
    call = inputs if isinstance(inputs, ModelInputs) else model_inputs(model, inputs, batch)
    dtype = activation_dtype(model, call)
    dtype_text = dtype_name(dtype)
    first = call.leaves[0]
    tracer = Tracer(
        model=model, batch=call.batch, dtype=dtype, device=device, training_step=model.training
    )
    walk = _walk(_named_modules(model), tracer)
    tracer.names[id(model)] = ""
    tracer.shapes["input"] = first.shape[1:]
    tracer.context = Network(input_shape=tracer.shapes["input"], layers=(), name="model")
    if device != "meta":
        model_device = next((p.device for p in model.parameters()), torch.device(device))
        if model_device.type != device:
            raise ArgumentError(f"the model's parameters are on {model_device}, not {device}")

    more_inputs: list[tuple[str, tuple[int, ...]]] = []

    def make(leaf: Leaf) -> ShapeTensor:
        leaf_dtype = leaf.dtype or dtype
        if device == "meta":
            t = meta_tensor(leaf.shape, leaf_dtype)
        elif leaf_dtype.is_floating_point:
            t = torch.randn(leaf.shape, dtype=leaf_dtype, device=device).as_subclass(ShapeTensor)
        else:
            t = torch.zeros(leaf.shape, dtype=leaf_dtype, device=device).as_subclass(ShapeTensor)
        name = "input" if leaf is first else leaf.name
        tracer.register(t, name)
        if leaf is not first:
            more_inputs.append((name, leaf.shape[1:]))
            tracer.shapes[name] = leaf.shape[1:]
        return t

    positional, keywords = call.build(make)
    eager = _run_eagerly() if walk.compiled else contextlib.nullcontext()
    ShapeTensor.tracer = tracer
    try:
        with (
            _module_calls(tracer, walk.modules),
            _as_it_runs(model, walk.modules, device),
            torch.no_grad(),
            eager,
        ):
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
    seen = tracer.seen_params
    for name, module in walk.holders:
        if all(
            t is None or id(t) in seen
            for t in itertools.chain(module._parameters.values(), module._buffers.values())
        ):  # all counted by the layers it ran
            continue
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
                    args={
                        "params": own,
                        "buffers": buffers,
                        "tensors": len(params),
                        "used": id(module) in tracer.called
                        or any(id(p) in tracer.touched for p in params),
                    },
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
        module_types=walk.module_types,
        module_outputs=tuple(tracer.outputs.items()),
        extra_inputs=tuple(more_inputs),
    )
    return Trace(network, output, tracer.costs, call.batch, dtype_text)
