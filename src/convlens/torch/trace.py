"""Shape-only tracing of ``nn.Module``s into the same layer records as descriptions.

The input is a ``ShapeTensor``: a tensor on the meta device (no data, free to
create) whose ``__torch_function__`` sees every operation the model performs. For
operations with a convlens rule the output shape comes from that rule and the
operation becomes a ``LayerSpec`` — so a module and its description are analysed
by the very same code. Only operations without a rule run PyTorch's meta kernel
(which costs a one-off import); they are recorded as ``opaque`` and the report says
its figures are partial. The user's model is not changed: no kernel touches its
weights, and its train/eval flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.core.analyze import run_rule
from convlens.core.records import LayerSpec, Network
from convlens.errors import ArgumentError, ConvlensError


class ShapeTensor(torch.Tensor):
    """A meta tensor that reports every operation on it to the active tracer."""

    @classmethod
    def __torch_function__(
        cls,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        tracer = Tracer.active
        if tracer is None:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        return tracer.on_call(func, tuple(args), dict(kwargs or {}))


def _meta(shape: Sequence[int], dtype: torch.dtype) -> ShapeTensor:
    return torch.empty(tuple(int(d) for d in shape), dtype=dtype, device="meta").as_subclass(
        ShapeTensor
    )  # type: ignore[return-value]


# Operations that only re-index the same data: recorded as zero-cost views.
RESHAPES = {
    "transpose",
    "permute",
    "unsqueeze",
    "squeeze",
    "flatten",
    "reshape",
    "view",
    "swapaxes",
    "movedim",
    "contiguous",
    "unflatten",
}

# Operations that only move axes (and unsqueeze, which adds one): where the batch axis
# goes is asked of PyTorch (``_follow_batch``), so one that leaves axis 0 is never taken
# for a per-sample reshape.
AXIS_MOVES = {
    torch.transpose,
    torch.Tensor.transpose,
    torch.permute,
    torch.Tensor.permute,
    torch.swapaxes,
    torch.Tensor.swapaxes,
    torch.swapdims,
    torch.Tensor.swapdims,
    torch.movedim,
    torch.Tensor.movedim,
    torch.moveaxis,
    torch.Tensor.moveaxis,
    torch.t,
    torch.Tensor.t,
    torch.adjoint,
    torch.Tensor.adjoint,
    torch.unsqueeze,
    torch.Tensor.unsqueeze,
    torch.Tensor.T.__get__,
    torch.Tensor.mT.__get__,  # type: ignore[attr-defined]
    torch.Tensor.H.__get__,
    torch.Tensor.mH.__get__,
}  # type: ignore[attr-defined]

# Tensor methods that make a new tensor from sizes alone (x only names dtype and device):
# without a batch axis in front, the result is a constant, like a model's own tensors.
CONSTANT_MAKERS = {
    torch.Tensor.new_zeros,
    torch.Tensor.new_ones,
    torch.Tensor.new_empty,
    torch.Tensor.new_full,
    torch.Tensor.new_tensor,
}

Handler = Callable[["Tracer", tuple, dict], Any]
HANDLERS: dict[Any, Handler] = {}


def handles(*funcs: Any) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        for func in dict.fromkeys(funcs):  # F.conv2d is torch.conv2d: name it once
            if func in HANDLERS:
                raise RuntimeError(f"two trace handlers for {func}")
            HANDLERS[func] = fn
        return fn

    return decorator


# Operations that only read metadata or do nothing to data: run as they are.
PASSTHROUGH = {
    torch.Tensor.size,
    torch.Tensor.dim,
    torch.Tensor.numel,
    torch.Tensor.__len__,
    torch.Tensor.shape.__get__,
    torch.Tensor.dtype.__get__,  # type: ignore[attr-defined]
    torch.Tensor.device.__get__,
    torch.Tensor.ndim.__get__,  # type: ignore[attr-defined]
    torch.Tensor.requires_grad.__get__,
    torch.Tensor.is_cuda.__get__,  # type: ignore[attr-defined]
    torch.Tensor.get_device,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
    torch.Tensor.is_contiguous,
    torch.Tensor.dim_order,
    torch.Tensor.__hash__,
    torch.Tensor.data_ptr,
    torch.Tensor.is_floating_point,
    torch.Tensor.type,
    torch.Tensor.layout.__get__,
}  # type: ignore[attr-defined]


@dataclass
class Tracer:
    """Collects one ``LayerSpec`` per operation, attributed to the innermost module."""

    active: Any = None  # class-level: the tracer of the running trace (set in ``trace``)

    model: nn.Module = field(default_factory=nn.Module)
    names: dict[int, str] = field(default_factory=dict)  # id(module) → qualified name
    stack: list[nn.Module] = field(default_factory=list)
    layers: list[LayerSpec] = field(default_factory=list)
    shapes: dict[str, tuple] = field(default_factory=dict)  # node → per-sample shape
    node_of: dict[int, str] = field(default_factory=dict)  # id(tensor) → node
    keep_alive: list[Any] = field(default_factory=list)
    seen_params: set[int] = field(default_factory=set)
    owned: set[int] = field(default_factory=set)  # ids of the model's parameters and buffers
    leaves: set[int] = field(default_factory=set)  # ids of modules without children
    called: set[int] = field(default_factory=set)  # id(module) of modules that ran
    counters: dict[str, itertools.count] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)  # layer → its rule's Cost
    outputs: dict[str, str] = field(default_factory=dict)  # module path → output text
    batch: int = 1
    dtype: torch.dtype = torch.float32
    device: str = "meta"  # "meta": shapes only; "cpu"/"cuda": every operation also runs
    pending: tuple[Any, tuple, dict] | None = None  # the call being recorded (real mode)
    context: Network | None = None  # what rule errors are reported against
    # Tensors whose axis 0 is not the batch: id → (where the batch axis is, if an axis
    # move put it there, else None; why). Every operation on one is an uncounted row.
    unbatched: dict[int, tuple[int | None, str]] = field(default_factory=dict)

    # -- nodes --------------------------------------------------------------------------
    def register(self, tensor: torch.Tensor, node: str) -> None:
        self.node_of[id(tensor)] = node
        self.keep_alive.append(tensor)

    def node(self, value: Any) -> str:
        if isinstance(value, ShapeTensor) and id(value) in self.node_of:
            return self.node_of[id(value)]
        if isinstance(value, torch.Tensor):
            raise ConvlensError(
                f"{self.where()}: a tensor that is not derived from the input "
                f"(shape {tuple(value.shape)}) takes part in the computation"
            )
        raise ConvlensError(f"{self.where()}: expected a tensor, got {type(value).__name__}")

    def where(self) -> str:
        if not self.stack:
            return "model"
        module = self.stack[-1]
        return f"module '{self.names.get(id(module), '?')}' ({type(module).__name__})"

    def layer_name(self, kind: str) -> tuple[str, str]:
        """(unique layer name, module type) from the innermost module."""
        module = self.stack[-1] if self.stack else None
        prefix = self.names.get(id(module), "") if module is not None else ""
        origin = type(module).__name__ if module is not None else "functional"
        leaf = module is not None and id(module) in self.leaves
        base = (
            prefix
            if leaf and prefix and prefix not in self.shapes
            else (f"{prefix}.{kind}" if prefix else kind)
        )
        counter = self.counters.setdefault(base, itertools.count(1))
        name = base
        while name in self.shapes or name.startswith("input"):
            name = f"{base}_{next(counter)}"
        return name, origin

    # -- recording ----------------------------------------------------------------------
    def record(
        self,
        kind: str,
        args: dict[str, Any],
        inputs: Sequence[Any],
        weights: Sequence[Any] = (),
        inplace: bool = False,
        own_buffers: bool = True,
        value: torch.Tensor | None = None,
    ) -> ShapeTensor:
        """One row; its output is a tensor of the rule's shape (a view keeps its source's
        strides), or ``value``, PyTorch's own result, when axis 0 is not the batch."""
        names = tuple(self.node(t) for t in inputs)
        name, origin = self.layer_name(kind)
        params = [w for w in weights if isinstance(w, torch.Tensor)]
        # A weight computed from parameters (LeNet-5's partial C3 table) is not itself a
        # parameter: the real ones are counted where they live (a params_only record).
        derived = any(id(w) not in self.owned for w in params)
        reuses = bool(params) and (derived or all(id(w) in self.seen_params for w in params))
        if not derived:
            self.seen_params.update(id(w) for w in params)
            if params and self.stack and own_buffers:  # its rule counts the module's buffers
                self.seen_params.update(
                    id(b) for b in self.stack[-1]._buffers.values() if b is not None
                )
        trainable = any(w.requires_grad for w in params)
        if derived and not trainable and self.stack:  # computed under no_grad: taken to come
            trainable = any(
                p is not None and p.requires_grad  # from the running module's
                for p in self.stack[-1]._parameters.values()
            )  # parameters
        frozen = bool(params) and not trainable
        spec = LayerSpec(
            name=name,
            kind=kind,
            args=args,
            inputs=names,
            frozen=frozen,
            origin=origin,
            reuses_params=reuses,
            inplace=inplace,
        )
        try:
            cost = run_rule(spec, self.context, self.shapes)
        except ConvlensError as err:
            raise ConvlensError(
                f"{self.where()}: {kind} on input shape(s) {[self.shapes[n] for n in names]}: {err}"
            ) from None
        self.layers.append(spec)
        self.costs[name] = cost
        self.shapes[name] = tuple(cost.output_shape)
        if value is not None:
            out = value.as_subclass(ShapeTensor)  # type: ignore[assignment]
        elif self.device == "meta":
            out = _meta((self.batch, *cost.output_shape), self.dtype)
            if cost.alias:  # a view keeps its source's strides (whether a later reshape
                out = self.view_like(out)  # copies depends on them, and autograd keeps it)
        else:  # run it for real and hold the rule to what PyTorch computed
            func, args, kwargs = self.pending  # type: ignore[misc]
            with torch._C.DisableTorchFunctionSubclass():
                real = func(*args, **kwargs)
            if tuple(real.shape[1:]) != tuple(cost.output_shape):
                raise ConvlensError(
                    f"{self.where()}: {kind} gave {tuple(real.shape[1:])} in a "
                    f"real forward but the rule says {cost.output_shape}"
                )
            out = real.as_subclass(ShapeTensor)
        self.register(out, name)
        return out

    def view_like(self, out: ShapeTensor) -> ShapeTensor:
        """``out`` with the strides the pending view really has (run on meta tensors)."""
        try:
            func, args, kwargs = self.pending  # type: ignore[misc]
            with torch._C.DisableTorchFunctionSubclass():
                real = func(*args, **kwargs)
        except Exception:  # strides are a refinement: the shape is already known
            return out
        if not isinstance(real, torch.Tensor) or real.shape != out.shape:
            return out
        return torch.empty_strided(
            tuple(real.shape), real.stride(), dtype=self.dtype, device="meta"
        ).as_subclass(ShapeTensor)  # type: ignore

    def on_call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        if func in PASSTHROUGH:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        handler = HANDLERS.get(func)
        if self.unbatched and any(
            id(v) in self.unbatched for v in _flatten(args, kwargs) if isinstance(v, ShapeTensor)
        ):
            handler = None  # rules count per sample along axis 0: not this tensor's
        if handler is not None:
            self.pending = (func, args, kwargs)
            result = handler(self, args, kwargs)
            if result is not NotImplemented:
                return result
        return self.fallback(func, args, kwargs)

    def fallback(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """No rule: PyTorch's meta kernel gives the shape; nothing is counted."""

        def to_meta(value: Any) -> Any:  # the model's own tensors join the meta world
            if self.device != "meta":
                return value
            if (
                isinstance(value, torch.Tensor)
                and not isinstance(value, ShapeTensor)
                and value.device.type != "meta"
            ):
                return torch.empty_like(value, device="meta")
            if isinstance(value, list | tuple):
                return type(value)(to_meta(v) for v in value)
            return value

        with torch._C.DisableTorchFunctionSubclass():
            result = func(*to_meta(args), **{k: to_meta(v) for k, v in kwargs.items()})
        tensors = [t for t in _flatten(args, kwargs) if isinstance(t, ShapeTensor)]
        outputs = [t for t in _flatten((result,), {}) if isinstance(t, torch.Tensor)]
        if not outputs or not tensors:
            return result
        name = _op_name(func)
        axes = [self.batch_axis(t) for t in tensors]  # 0: batched; k or None: not
        if func in AXIS_MOVES and len(tensors) == 1 and len(outputs) == 1:
            axis = (
                None if axes[0] is None else _follow_batch(func, args, kwargs, tensors[0], axes[0])
            )
            if axis != 0:  # the batch axis left axis 0 (or was not there)
                moved = f"'{name}' in {self.where()} moved the batch axis to axis {axis}"
                return self.record_unbatched(
                    name, tensors, outputs[0], axis, moved if axis is not None else None
                )
            self.pending = (func, args, kwargs)
            return self.record("view", {"shape": tuple(outputs[0].shape[1:])}, tensors)

        def batched(value: torch.Tensor) -> bool:
            """Axis 0 of ``value`` is the batch: its size is N, a batched input has it, and
            no input whose axis 0 is something else lines up with it."""
            if (
                value.dim() == 0
                or value.shape[0] != self.batch
                or 0 not in axes
                or (func is torch.Tensor.__getitem__ and _indexes_batch(args[1]))
                or _joins_batch(func, args, kwargs)
            ):
                return False
            return all(
                a == 0 or t.dim() < value.dim() or t.shape[0] == 1
                for t, a in zip(tensors, axes, strict=True)
            )

        def traced(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and not batched(value):
                if func in CONSTANT_MAKERS:  # x.new_ones(1): a constant, no activation
                    return value
                return self.record_unbatched(name, tensors, value, None)
            if isinstance(value, torch.Tensor):
                if len(outputs) == 1:
                    self.pending = (func, args, kwargs)
                else:
                    self.pending = (lambda *a, **k: value, (), {})
                shape = tuple(value.shape[1:])
                if (
                    len(outputs) == 1
                    and name in RESHAPES
                    and len(tensors) == 1
                    and value.numel() == tensors[0].numel()
                ):
                    return self.record("view", {"shape": shape}, tensors)  # same data
                return self.record("opaque", {"op": name, "shape": shape}, tensors)
            if isinstance(value, list | tuple):  # several outputs (chunk, split, unbind):
                return type(value)(traced(v) for v in value)  # one row each
            return value

        return traced(result)

    def batch_axis(self, tensor: torch.Tensor) -> int | None:
        """0 for a traced tensor whose axis 0 is the batch, else where its batch axis is
        (known after an axis move), or None."""
        return self.unbatched[id(tensor)][0] if id(tensor) in self.unbatched else 0

    def record_unbatched(
        self,
        op: str,
        inputs: Sequence[Any],
        value: torch.Tensor,
        axis: int | None,
        origin: str | None = None,
    ) -> ShapeTensor:
        """A result whose axis 0 is not the batch. Rules count per sample along axis 0, so
        it is an ``opaque`` row that counts nothing (not even its bytes) and says why, and
        so is every operation computed from it — except a pure axis move whose batch axis
        is known, a ``view`` row (no cost, no new storage)."""
        full = tuple(int(d) for d in value.shape)
        # where the batch axis was lost: an input's origin, else here
        cause = next((self.unbatched[id(t)][1] for t in inputs if id(t) in self.unbatched), None)
        if axis is not None:  # an axis move: its input's batch axis is known too
            args: dict[str, Any] = {"shape": full[:axis] + full[axis + 1 :]}
            out = self.record("view", args, inputs, value=value)
        else:
            args = {"op": op, "shape": full, "batched": False, "note": cause}
            out = self.record("opaque", args, inputs, value=value)
        here = origin or (f"'{op}' in {self.where()} gave {'×'.join(map(str, full)) or 'a scalar'}")
        self.unbatched[id(out)] = (axis, cause or here)
        return out

    def describe(self, value: Any) -> str:
        """Per-sample shapes of a module's output, tuples, lists and dicts included; a
        tensor whose axis 0 is not the batch shows its whole shape (N where the batch is)."""
        if isinstance(value, torch.Tensor) and id(value) in self.unbatched:
            axis = self.unbatched[id(value)][0]
            dims = [str(d) for d in value.shape]
            if axis is None:
                return "×".join(dims) + " (no batch axis)" if dims else "scalar (no batch axis)"
            return "×".join([*dims[:axis], "N", *dims[axis + 1 :]])
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.describe(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list | tuple):
            return "(" + ", ".join(self.describe(v) for v in value) + ")"
        return describe_output(value)


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    if name == "__get__" and hasattr(getattr(func, "__self__", None), "__name__"):
        return func.__self__.__name__  # a property: x.T, x.mT
    return name


def _follow_batch(func: Any, args: tuple, kwargs: dict, x: torch.Tensor, axis: int) -> int | None:
    """Where an axis move sends axis ``axis`` of ``x``: the same call on a meta tensor
    whose axes all have different sizes (≥ 2), the marked one found again in the result."""
    sizes = [2 + i for i in range(x.dim())]
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty(sizes, device="meta")
        try:
            out = func(
                *(probe if a is x else a for a in args),
                **{k: probe if v is x else v for k, v in kwargs.items()},
            )
        except Exception:
            return None
    found = [i for i, d in enumerate(out.shape) if d == sizes[axis]]
    return found[0] if len(found) == 1 else None


def _joins_batch(func: Any, args: tuple, kwargs: dict) -> bool:
    """torch.stack along axis 0 (a new axis in front of the batch), or torch.cat of
    several tensors along it: axis 0 is not the batch even where its size says so."""
    if func not in (torch.stack, torch.cat, torch.concat, torch.concatenate):
        return False
    tensors = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    if not isinstance(tensors, list | tuple) or not tensors or not isinstance(dim, int):
        return False
    rank = tensors[0].dim() + (func is torch.stack)
    return dim % max(rank, 1) == 0 and (func is torch.stack or len(tensors) > 1)


def _indexes_batch(key: Any) -> bool:
    """``x[key]`` picks, slices or adds an axis in front (x[0], x[:1], x[None], x[idx]):
    the result's axis 0 is not the whole batch even where its size says so."""
    first = key[0] if isinstance(key, tuple) and key else key
    return not (first is Ellipsis or (isinstance(first, slice) and first == slice(None)))


def _flatten(args: Any, kwargs: Mapping[str, Any]) -> Iterator[Any]:
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, list | tuple):
            yield from _flatten(value, {})
        elif isinstance(value, dict):
            yield from _flatten((), value)
        else:
            yield value


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


# -- handlers: PyTorch functions → convlens rules ------------------------------------------
def _expect_channels(t: Tracer, x: Any, expected: int, what: str, axis: int = 1) -> None:
    """A layer's weights fix its input size: say so rather than count a wrong input."""
    got = int(x.shape[axis]) if x.dim() > axis else None
    if got != expected:
        raise ConvlensError(
            f"{t.where()} expects {expected} {what} but its input has shape "
            f"{tuple(x.shape)} (check --input or the layer before it)"
        )


def _computed(t: Tracer, weight: torch.Tensor) -> bool:
    """A weight that is no storage of the model's (computed in the forward, like LeNet-5's
    dense C3 kernel, or a constant): backward keeps it, so it counts as an activation. A
    view of a parameter (``self.weight.view(…)``) shares the parameter's storage: not one."""
    base = weight._base
    return id(weight) not in t.owned and (base is None or id(base) not in t.owned)


@handles(F.conv2d, torch.conv2d)
def _conv2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    padding = _arg(args, kwargs, 4, "padding", 0)
    groups = int(_arg(args, kwargs, 6, "groups", 1))
    _expect_channels(t, x, int(weight.shape[1]) * groups, "input channels")
    spec = {
        "out_channels": int(weight.shape[0]),
        "kernel_size": _pair(weight.shape[2:]),
        "stride": _pair(_arg(args, kwargs, 3, "stride", 1)),
        "padding": padding if isinstance(padding, str) else _pair(padding),
        "dilation": _pair(_arg(args, kwargs, 5, "dilation", 1)),
        "groups": int(_arg(args, kwargs, 6, "groups", 1)),
        "bias": bias is not None,
        "derived_weight": _computed(t, weight),
    }
    return t.record("conv2d", spec, [x], [weight, bias])


@handles(F.conv_transpose2d, torch.conv_transpose2d)
def _conv_transpose2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    groups = int(_arg(args, kwargs, 6, "groups", 1))
    _expect_channels(t, x, int(weight.shape[0]), "input channels")
    spec = {
        "out_channels": int(weight.shape[1]) * groups,
        "kernel_size": _pair(weight.shape[2:]),
        "stride": _pair(_arg(args, kwargs, 3, "stride", 1)),
        "padding": _pair(_arg(args, kwargs, 4, "padding", 0)),
        "output_padding": _pair(_arg(args, kwargs, 5, "output_padding", 0)),
        "groups": groups,
        "dilation": _pair(_arg(args, kwargs, 7, "dilation", 1)),
        "bias": bias is not None,
        "derived_weight": _computed(t, weight),
    }
    return t.record("conv_transpose2d", spec, [x], [weight, bias])


@handles(F.linear, torch._C._nn.linear)
def _linear(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, weight, bias = args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    _expect_channels(t, x, int(weight.shape[1]), "input features", axis=x.dim() - 1)
    # F.linear folds a ≥ 3-D input into rows with reshape: a strided one (after a
    # transpose) is copied, and backward keeps that copy instead of the input. A
    # contiguous or 2-D input is kept as it is: no need to ask PyTorch (which would load
    # its meta decompositions, ~0.8 s on first use).
    copies = (
        x.dim() >= 3
        and not _is_contiguous(x)
        and _keeps_copy(
            x,
            lambda probe: F.linear(
                probe,
                torch.empty(tuple(weight.shape), device="meta", requires_grad=True),
                None if bias is None else torch.empty(tuple(bias.shape), device="meta"),
            ),
        )
    )
    return t.record(
        "linear",
        {
            "out_features": int(weight.shape[0]),
            "bias": bias is not None,
            "copies_input": copies,
            "derived_weight": _computed(t, weight),
        },
        [x],
        [weight, bias],
    )


@handles(F.batch_norm)
def _batch_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    mean, var = _arg(args, kwargs, 1, "running_mean"), _arg(args, kwargs, 2, "running_var")
    weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
    if x.dim() != 4:
        return NotImplemented
    stats = weight if weight is not None else mean
    if stats is not None:
        _expect_channels(t, x, int(stats.shape[0]), "channels")
    spec = {
        "affine": weight is not None,
        "track_running_stats": mean is not None,
        "eps": float(_arg(args, kwargs, 7, "eps", 1e-5)),
    }
    return t.record("batchnorm2d", spec, [x], [weight, bias, mean, var])


def _activation(kind: str, extra: Callable[[tuple, dict], dict] | None = None) -> Handler:
    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        inplace = bool(kwargs.get("inplace", False))
        return t.record(kind, extra(args, kwargs) if extra else {}, [args[0]], inplace=inplace)

    return handler


handles(F.relu, torch.relu)(_activation("relu"))
handles(torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid)(_activation("sigmoid"))
handles(torch.tanh, torch.Tensor.tanh, F.tanh)(_activation("tanh"))
handles(F.gelu)(_activation("gelu"))
handles(F.silu)(_activation("silu"))
handles(F.hardswish)(_activation("hardswish"))
handles(F.hardsigmoid)(_activation("hardsigmoid"))
handles(F.elu)(_activation("elu", lambda a, k: {"alpha": float(_arg(a, k, 1, "alpha", 1.0))}))
handles(F.leaky_relu)(
    _activation(
        "leaky_relu", lambda a, k: {"negative_slope": float(_arg(a, k, 1, "negative_slope", 0.01))}
    )
)


@handles(F.relu_, torch.relu_, torch.Tensor.relu_)
def _relu_inplace(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record("relu", {}, [args[0]], inplace=True)


@handles(F.hardtanh)
def _hardtanh(t: Tracer, args: tuple, kwargs: dict) -> Any:
    low, high = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
    if (low, high) != (0.0, 6.0):
        return NotImplemented
    return t.record("relu6", {}, [args[0]], inplace=bool(_arg(args, kwargs, 3, "inplace")))


@handles(F.softmax, torch.softmax, torch.Tensor.softmax)
def _softmax(t: Tracer, args: tuple, kwargs: dict) -> Any:
    dim = _arg(args, kwargs, 1, "dim")
    if dim is None or dim < 0:
        dim = args[0].dim() + (dim if dim is not None else -1)
    if dim == 0:
        return NotImplemented
    return t.record("softmax", {"dim": int(dim)}, [args[0]])


@handles(F.dropout, F.dropout2d)
def _dropout(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return t.record(
        "dropout",
        {"p": float(_arg(args, kwargs, 1, "p", 0.5))},
        [args[0]],
        inplace=bool(_arg(args, kwargs, 3, "inplace", False)),
    )


@handles(F.max_pool2d, torch.max_pool2d)
def _max_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    if _arg(args, kwargs, 6, "return_indices", False):
        return NotImplemented
    kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
    stride = _arg(args, kwargs, 2, "stride")
    spec = {
        "kernel_size": kernel,
        "stride": _pair(stride) if stride else kernel,
        "padding": _pair(_arg(args, kwargs, 3, "padding", 0)),
        "dilation": _pair(_arg(args, kwargs, 4, "dilation", 1)),
        "ceil_mode": bool(_arg(args, kwargs, 5, "ceil_mode", False)),
    }
    return t.record("maxpool2d", spec, [args[0]])


@handles(F.avg_pool2d)
def _avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
    stride = _arg(args, kwargs, 2, "stride")
    spec = {
        "kernel_size": kernel,
        "stride": _pair(stride) if stride else kernel,
        "padding": _pair(_arg(args, kwargs, 3, "padding", 0)),
        "ceil_mode": bool(_arg(args, kwargs, 4, "ceil_mode", False)),
        "count_include_pad": bool(_arg(args, kwargs, 5, "count_include_pad", True)),
    }
    return t.record("avgpool2d", spec, [args[0]])


@handles(F.adaptive_avg_pool2d)
def _adaptive_avg_pool2d(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    size = _arg(args, kwargs, 1, "output_size")
    size = (size, size) if isinstance(size, int) else tuple(size)
    size = tuple(int(x.shape[2 + i]) if s is None else int(s) for i, s in enumerate(size))
    if size == (1, 1):
        return t.record("global_avgpool", {}, [x])
    return t.record("adaptive_avgpool2d", {"output_size": size}, [x])


def _reduce(op: str) -> Handler:
    """x.sum(dim) or x.mean(dim) over axes other than the batch; a mean over H and W of a
    (N, C, H, W) map is global average pooling."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else kwargs.get("input")
        dims, keepdim = _arg(args, kwargs, 1, "dim"), bool(_arg(args, kwargs, 2, "keepdim", False))
        if not isinstance(x, ShapeTensor) or dims is None or kwargs.get("dtype") is not None:
            return NotImplemented  # no dim: the batch is reduced too
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        axes = [_dim(x, d) for d in dims]
        if not axes or None in axes or len(set(axes)) != len(axes):
            return NotImplemented  # the batch axis, or PyTorch's own error
        if op == "mean" and x.dim() == 4 and set(axes) == {2, 3}:
            return t.record("global_avgpool", {"keepdim": keepdim}, [x])
        return t.record("reduce", {"op": op, "dim": tuple(sorted(axes)), "keepdim": keepdim}, [x])

    return handler


handles(torch.mean, torch.Tensor.mean)(_reduce("mean"))
handles(torch.sum, torch.Tensor.sum)(_reduce("sum"))


@handles(F.interpolate)
def _interpolate(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    size, scale = _arg(args, kwargs, 1, "size"), _arg(args, kwargs, 2, "scale_factor")
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    align = bool(_arg(args, kwargs, 4, "align_corners", False) or False)
    if mode not in ("nearest", "bilinear") or x.dim() != 4:
        return NotImplemented
    if scale is None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return t.record(
            "upsample", {"size": (int(h), int(w)), "mode": mode, "align_corners": align}, [x]
        )
    if isinstance(scale, tuple | list):
        if len(set(scale)) != 1:
            return NotImplemented
        scale = scale[0]
    return t.record("upsample", {"scale_factor": scale, "mode": mode, "align_corners": align}, [x])


@handles(torch.cat, torch.concat)
def _cat(t: Tracer, args: tuple, kwargs: dict) -> Any:
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    if dim % tensors[0].dim() != 1 or not all(isinstance(x, ShapeTensor) for x in tensors):
        return NotImplemented
    return t.record("concat", {}, tensors)


def _binary(op: str, inplace: bool = False, reflected: bool = False) -> Handler:
    """x ∘ y for ∘ in + − · /: with a number (``scalar_op``), with a tensor the model holds
    or a constant (``tensor_op``), or of two outputs (``add``, ``mul``). ``reflected``:
    ``x.__rsub__(y)`` is y − x."""

    def handler(t: Tracer, args: tuple, kwargs: dict) -> Any:
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if reflected:
            a, b = b, a
        tensors = [v for v in (a, b) if isinstance(v, ShapeTensor)]
        if len(tensors) == 1 and isinstance(b if tensors[0] is a else a, int | float):
            if op == "div" and tensors[0] is b:
                return NotImplemented  # c / x is a reciprocal, which keeps its result
            return t.record("scalar_op", {}, tensors, inplace=inplace)  # x·0.5, x + 1
        if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode"):
            return NotImplemented
        if len(tensors) == 1 and isinstance(b if tensors[0] is a else a, torch.Tensor):
            x = tensors[0]
            return _tensor_op(t, op, x, b if x is a else a, x is b, inplace)
        if (
            len(tensors) != 2
            or op in ("sub", "div")
            or (op == "add" and tuple(a.shape) != tuple(b.shape))
        ):
            return NotImplemented
        return t.record(op, {}, [a, b], inplace=inplace)

    return handler


def _tensor_op(
    t: Tracer, op: str, x: ShapeTensor, w: torch.Tensor, first: bool, inplace: bool
) -> Any:
    """x ∘ w (w ∘ x if ``first``) with w a parameter, a buffer, a whole view of one
    (``self.weight.view(1, -1, 1, 1)``) or a constant, broadcast so that the batch stays on
    axis 0; its parameters are counted here, once."""
    if (
        w.dtype != x.dtype
        or w.dim() > x.dim()
        or (w.dim() == x.dim() and w.shape[0] != 1)
        or (inplace and first)
    ):
        return NotImplemented  # promoted, broadcast over the batch, or w overwritten
    owner = _owned(t, w)
    if owner is None and w._base is not None and id(w._base) in t.owned:
        return NotImplemented  # a part of a model tensor: its parameters live elsewhere
    kind = (
        "constant"
        if owner is None
        else ("parameter" if isinstance(owner, nn.Parameter) else "buffer")
    )
    return t.record(
        "tensor_op",
        {
            "op": op,
            "weight": tuple(int(d) for d in w.shape),
            "weight_first": first,
            "weight_kind": kind,
        },
        [x],
        [owner] if owner is not None else [],
        inplace=inplace,
        own_buffers=False,
    )


handles(torch.add, torch.Tensor.add, torch.Tensor.__add__)(_binary("add"))
handles(torch.Tensor.__radd__)(_binary("add", reflected=True))
handles(torch.Tensor.add_, torch.Tensor.__iadd__)(_binary("add", inplace=True))
handles(torch.mul, torch.Tensor.mul, torch.Tensor.__mul__)(_binary("mul"))
handles(torch.Tensor.__rmul__)(_binary("mul", reflected=True))
handles(torch.Tensor.mul_, torch.Tensor.__imul__)(_binary("mul", inplace=True))
handles(torch.sub, torch.Tensor.sub, torch.Tensor.__sub__)(_binary("sub"))
handles(torch.Tensor.__rsub__)(_binary("sub", reflected=True))
handles(torch.Tensor.sub_, torch.Tensor.__isub__)(_binary("sub", inplace=True))
handles(torch.div, torch.Tensor.div, torch.Tensor.__truediv__)(_binary("div"))
handles(torch.Tensor.__rtruediv__)(_binary("div", reflected=True))
handles(torch.Tensor.div_, torch.Tensor.__itruediv__)(_binary("div", inplace=True))


@handles(torch.flatten, torch.Tensor.flatten)
def _flatten_op(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    start = _arg(args, kwargs, 1, "start_dim", 0)
    end = _arg(args, kwargs, 2, "end_dim", -1)
    if start % x.dim() != 1 or end % x.dim() != x.dim() - 1:
        return NotImplemented
    return t.record("flatten", {}, [x])


@handles(torch.Tensor.contiguous)
def _contiguous(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """A no-op on a contiguous tensor; a copy (an identity row) of a strided view."""
    x = args[0]
    with torch._C.DisableTorchFunctionSubclass():
        if x.is_contiguous(memory_format=kwargs.get("memory_format", torch.contiguous_format)):
            return x
    return t.record("identity", {}, [x])


@handles(torch.Tensor.view, torch.Tensor.reshape, torch.reshape)
def _view(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    shape = (
        args[1:]
        if len(args) > 2 or (len(args) == 2 and isinstance(args[1], int))
        else (args[1] if len(args) > 1 else kwargs.get("shape"))
    )
    shape = list(shape)
    if shape and shape[0] in (x.shape[0], -1) and shape.count(-1) <= 1:
        known = 1
        for d in shape[1:]:
            known *= d if d != -1 else 1
        rest = [d if d != -1 else x[0].numel() // known for d in shape[1:]]
        if shape[0] == -1 and x.numel() != x.shape[0] * known:
            return NotImplemented  # -1 is not the batch (x.reshape(-1, W)): PyTorch's shape
        if len(rest) == 1:
            return t.record("flatten", {}, [x])
        return t.record("view", {"shape": tuple(int(d) for d in rest)}, [x])
    return NotImplemented


@handles(F.layer_norm)
def _layer_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, shape = args[0], tuple(int(d) for d in _arg(args, kwargs, 1, "normalized_shape"))
    weight, bias = _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")
    return t.record(
        "layer_norm",
        {
            "normalized_shape": shape,
            "elementwise_affine": weight is not None,
            "bias": bias is not None,
            "eps": float(_arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
    )


@handles(F.group_norm)
def _group_norm(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, groups = args[0], int(_arg(args, kwargs, 1, "num_groups"))
    weight, bias = _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")
    if weight is not None:
        _expect_channels(t, x, int(weight.shape[0]), "channels")
    return t.record(
        "group_norm",
        {
            "num_groups": groups,
            "affine": weight is not None,
            "eps": float(_arg(args, kwargs, 4, "eps", 1e-5)),
        },
        [x],
        [weight, bias],
    )


def _owned(t: Tracer, tensor: torch.Tensor) -> torch.Tensor | None:
    """The model's parameter or buffer that ``tensor`` is (or is a whole view of, like
    ``self.weight.t()``), or None."""
    if id(tensor) in t.owned:
        return tensor
    base = tensor._base
    if base is not None and id(base) in t.owned and base.numel() == tensor.numel():
        return base
    return None


@handles(
    torch.matmul,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.bmm,
    torch.mm,
    torch.Tensor.mm,
    torch.mv,
    torch.Tensor.mv,
)
def _matmul(t: Tracer, args: tuple, kwargs: dict) -> Any:
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2", kwargs.get("vec")))
    if isinstance(a, ShapeTensor) and isinstance(b, ShapeTensor):
        if a.dim() < 3 or b.dim() < 3 or a.dim() != b.dim():
            return NotImplemented  # the product would reach the batch axis
        return t.record("matmul", {}, [a, b])
    x, weight = (a, b) if isinstance(a, ShapeTensor) else (b, a)
    if not isinstance(weight, torch.Tensor) or isinstance(weight, ShapeTensor) or weight.dim() > 2:
        return NotImplemented  # a batched weight is expanded and copied: no rule yet
    first, rank = x is b, x.dim() - 1  # per-sample rank of the traced operand
    if (rank < 2 or weight.dim() > rank) if first else (rank < 1 or weight.dim() > max(rank, 2)):
        return NotImplemented  # the product would reach the batch axis: not per sample
    owner = _owned(t, weight)
    kind = (
        "constant"
        if owner is None
        else ("parameter" if isinstance(owner, nn.Parameter) else "buffer")
    )
    return t.record(
        "matmul",
        {
            "weight": tuple(int(d) for d in weight.shape),
            "weight_first": first,
            "weight_kind": kind,
            "copies_input": _copies_input(x, weight, first),
        },
        [x],
        [owner] if owner is not None else [],
        own_buffers=False,
    )


def _copies_input(x: torch.Tensor, weight: torch.Tensor, first: bool) -> bool:
    """Whether autograd keeps a copy of ``x`` rather than ``x`` in ``weight @ x`` or
    ``x @ weight`` (torch.matmul folds a non-contiguous operand into a matrix with a copy)."""

    def product(probe: torch.Tensor) -> Any:
        w = torch.empty(tuple(weight.shape), device="meta", requires_grad=True)
        return torch.matmul(w, probe) if first else torch.matmul(probe, w)

    if not first and _is_contiguous(x):  # folded by a view: x itself is kept
        return False
    return _keeps_copy(x, product)


def _is_contiguous(x: torch.Tensor) -> bool:
    with torch._C.DisableTorchFunctionSubclass():
        return x.is_contiguous()


def _keeps_copy(x: torch.Tensor, op: Callable[[torch.Tensor], Any]) -> bool:
    """Whether autograd keeps a copy of ``x`` rather than ``x`` (or a view of it) when
    ``op`` runs on it with a weight that needs a gradient: asked of PyTorch itself, on a
    meta tensor with ``x``'s strides."""
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty_strided(tuple(x.shape), x.stride(), device="meta", requires_grad=True)
        kept: list[torch.Tensor] = []
        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(lambda s: kept.append(s) or s, lambda s: s),
        ):
            op(probe)
        own = probe.untyped_storage()._cdata
        return not any(s.untyped_storage()._cdata == own for s in kept)


@handles(F.scaled_dot_product_attention)
def _attention(t: Tracer, args: tuple, kwargs: dict) -> Any:
    q, k, v = (_arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
    mask = _arg(args, kwargs, 3, "attn_mask")
    if not all(isinstance(z, ShapeTensor) for z in (q, k, v)) or kwargs.get("enable_gqa"):
        return NotImplemented
    spec: dict[str, Any] = {
        "is_causal": bool(_arg(args, kwargs, 5, "is_causal", False)),
        "dropout_p": float(_arg(args, kwargs, 4, "dropout_p", 0.0)),
        # sdpa_kernel(...) and enable_flash_sdp(False) switch the CPU flash kernel off too
        "flash": torch.backends.cuda.flash_sdp_enabled(),
    }
    if mask is not None:
        if (
            isinstance(mask, ShapeTensor)
            or not isinstance(mask, torch.Tensor)
            or mask.dtype not in (torch.bool, q.dtype)
        ):
            return NotImplemented  # a mask computed from the input: no rule yet
        if mask.dim() > q.dim() or (mask.dim() == q.dim() and mask.shape[0] != 1):
            return NotImplemented  # a mask per sample: not a fixed operand
        spec.update(
            attn_mask=tuple(int(d) for d in mask.shape),
            mask_dtype="bool" if mask.dtype == torch.bool else "float",
            mask_is_buffer=id(mask) in t.owned
            or (mask._base is not None and id(mask._base) in t.owned),
        )
    return t.record("attention", spec, [q, k, v])


def _part(
    t: Tracer, x: Any, dim: int, start: int, length: int, keepdim: bool = True
) -> ShapeTensor:
    """One contiguous part of axis ``dim`` (counted with the batch) as a ``narrow`` row."""
    t.pending = (
        (torch.narrow, (x, dim, start, length), {})
        if keepdim
        else (torch.select, (x, dim, start), {})
    )
    return t.record(
        "narrow", {"dim": dim, "start": start, "length": length, "keepdim": keepdim}, [x]
    )


def _dim(x: Any, dim: Any) -> int | None:
    """``dim`` as a non-negative axis, or None for the batch axis or a non-integer."""
    if not isinstance(dim, int) or isinstance(dim, bool) or not -x.dim() <= dim < x.dim():
        return None
    return dim % x.dim() or None


@handles(torch.narrow, torch.Tensor.narrow)
def _narrow(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x = args[0] if args else kwargs["input"]
    dim = _dim(x, _arg(args, kwargs, 1, "dim"))
    start, length = _arg(args, kwargs, 2, "start"), _arg(args, kwargs, 3, "length")
    if dim is None or not isinstance(start, int) or not isinstance(length, int):
        return NotImplemented
    begin = start + int(x.shape[dim]) if start < 0 else start
    if begin < 0 or length < 0 or begin + length > int(x.shape[dim]):
        return NotImplemented  # PyTorch's own error, from its meta kernel
    return _part(t, x, dim, begin, length)


def _sections(
    t: Tracer, func: Any, args: tuple, kwargs: dict, dim: Any, keepdim: bool = True
) -> Any:
    """chunk, split, unbind: PyTorch's own kernel on a bare meta tensor gives the parts'
    sizes (so its rules, and errors, hold); each part becomes a ``narrow`` row."""
    x = args[0] if args else kwargs.get("input", kwargs.get("tensor", kwargs.get("self")))
    axis = _dim(x, dim)
    if axis is None or not isinstance(x, ShapeTensor):
        return NotImplemented
    with torch._C.DisableTorchFunctionSubclass():
        probe = torch.empty(tuple(x.shape), device="meta")
        rest = {k: v for k, v in kwargs.items() if k not in ("input", "tensor", "self")}
        pieces = func(probe, *args[1:], **rest)
    parts, start = [], 0
    for piece in pieces:
        length = int(piece.shape[axis]) if keepdim else 1
        parts.append(_part(t, x, axis, start, length, keepdim))
        start += length
    return tuple(parts)


@handles(torch.chunk, torch.Tensor.chunk)
def _chunk(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.chunk, args, kwargs, _arg(args, kwargs, 2, "dim", 0))


@handles(torch.split, torch.Tensor.split)
def _split(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.split, args, kwargs, _arg(args, kwargs, 2, "dim", 0))


@handles(torch.unbind, torch.Tensor.unbind)
def _unbind(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _sections(t, torch.unbind, args, kwargs, _arg(args, kwargs, 1, "dim", 0), keepdim=False)


def _index_parts(x: Any, key: Any) -> list[tuple[int, int, int, bool]] | None:
    """``x[key]`` as (dim, start, length, keepdim) parts, for keys of unit-step slices and
    integers that leave the batch axis whole; None for anything else."""
    key = key if isinstance(key, tuple) else (key,)
    if sum(k is Ellipsis for k in key) > 1:
        return None
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (x.dim() - len(key) + 1) + key[at + 1 :]
    if len(key) > x.dim() or not key:
        return None
    key = key + (slice(None),) * (x.dim() - len(key))
    parts = []
    for dim, k in enumerate(key):
        size = int(x.shape[dim])
        if (
            isinstance(k, slice)
            and k.step in (None, 1)
            and all(isinstance(v, int | None) for v in (k.start, k.stop))
        ):
            start, stop, _ = k.indices(size)
            length = max(stop - start, 0)
            if (start, length) != (0, size) or (dim == 0 and size == 0):
                parts.append((dim, min(start, size), length, True))
        elif isinstance(k, int) and not isinstance(k, bool) and -size <= k < size:
            parts.append((dim, k % size, 1, False))
        else:
            return None
    if any(dim == 0 for dim, *_ in parts):
        return None  # the batch axis: not a per-sample operation
    return parts


@handles(torch.Tensor.__getitem__)
def _getitem(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """x[:, :, a:b, c:d] is a crop; other unit-step slices and integer indices (x[:, a:b],
    x[:, i]) are ``narrow`` rows, one per axis; other indexing falls back to meta kernels."""
    x, key = args
    parts = _index_parts(x, key)
    if parts is None:
        return NotImplemented
    if (
        x.dim() == 4
        and parts
        and all(dim >= 2 and keep and length > 0 for dim, _, length, keep in parts)
    ):
        box = {dim: (start, length) for dim, start, length, _ in parts}
        offset = tuple(box.get(d, (0, 0))[0] for d in (2, 3))
        size = tuple(box.get(d, (0, int(x.shape[d])))[1] for d in (2, 3))
        return t.record("crop", {"size": size, "offset": offset}, [x])
    if not parts:  # x[:] or x[...]: the same tensor
        return _part(t, x, 1, 0, int(x.shape[1])) if x.dim() > 1 else NotImplemented
    out = x
    for dim, start, length, keepdim in sorted(parts, reverse=True):  # later axes first:
        out = _part(t, out, dim, start, length, keepdim)  # the earlier ones keep their place
    return out


def describe_output(value: Any) -> str:
    """Per-sample shapes of a module's output, tuples, lists and dicts included."""
    if isinstance(value, torch.Tensor):
        return "×".join(str(d) for d in value.shape[1:]) or "scalar"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_output(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(describe_output(v) for v in value) + ")"
    return type(value).__name__


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
            return _meta(shape, dtype)
        return torch.randn(tuple(shape), dtype=dtype, device=device).as_subclass(ShapeTensor)

    if device == "meta":
        x = _meta(input_size, dtype)
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
    Tracer.active = tracer
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
        Tracer.active = None
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
