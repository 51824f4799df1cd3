"""The tracer: one ``LayerSpec`` per operation on a shape tensor, attributed to the innermost
module; operations without a handler fall back to PyTorch's meta kernel (``opaque`` rows)."""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.core.analyze import remembered_rule
from convlens.core.frozen import quick
from convlens.core.records import LayerSpec, Network
from convlens.errors import ConvlensError
from convlens.torch.batch_axis import (
    AXIS_MOVES,
    CONSTANT_MAKERS,
    STANDARD,
    Layout,
    indexes_batch,
    joins_batch,
    moved_axes,
    sample_order,
)
from convlens.torch.probes import same_order_strides
from convlens.torch.registry import ANY_LAYOUT, HANDLERS
from convlens.torch.shape_tensor import ShapeTensor, meta_tensor

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

# Operations that only read metadata or do nothing to data: run as they are. (A property's
# getter is what ``__torch_function__`` receives for ``x.shape``; torch's stubs type the
# property as its value, hence the ignores.)
PASSTHROUGH = {
    torch.Tensor.size,
    torch.Tensor.dim,
    torch.Tensor.numel,
    torch.Tensor.__len__,
    torch.Tensor.shape.__get__,  # type: ignore[attr-defined]
    torch.Tensor.dtype.__get__,  # type: ignore[attr-defined]
    torch.Tensor.device.__get__,
    torch.Tensor.ndim.__get__,  # type: ignore[attr-defined]
    torch.Tensor.requires_grad.__get__,  # type: ignore[attr-defined]
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
    torch.Tensor.layout.__get__,  # type: ignore[attr-defined]
}


# PyTorch functions written in Python that hand themselves to ``__torch_function__`` as
# one operation: the trace runs their body instead, so each operation inside gets its row
# (``nn.MultiheadAttention``'s projections, products, softmax and output projection).
RUN_THROUGH: frozenset[Any] = frozenset({F.multi_head_attention_forward})
_SUBCLASS_CHECKS = ("has_torch_function", "has_torch_function_unary", "has_torch_function_variadic")


def run_through(func: Any, args: tuple, kwargs: dict) -> Any:
    """Call ``func``'s own body on traced tensors: a copy of the function whose check for
    tensor subclasses answers no (its globals copied at the call, so a patched module
    attribute is seen), while the functions it calls check as usual."""
    scope = dict(func.__globals__)
    scope.update(dict.fromkeys(_SUBCLASS_CHECKS, lambda *_: False))
    body = types.FunctionType(
        func.__code__, scope, func.__name__, func.__defaults__, func.__closure__
    )
    body.__kwdefaults__ = func.__kwdefaults__
    return body(*args, **kwargs)


class RuleRefused(ConvlensError):
    """A rule refused a traced call; ``reason`` is the rule's own words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Tracer:
    """Collects one ``LayerSpec`` per operation, attributed to the innermost module."""

    model: nn.Module = field(default_factory=nn.Module)
    names: dict[int, str] = field(default_factory=dict)  # id(module) → qualified name
    stack: list[nn.Module] = field(default_factory=list)
    layers: list[LayerSpec] = field(default_factory=list)
    shapes: dict[str, tuple] = field(default_factory=dict)  # node → per-sample shape
    node_of: dict[int, str] = field(default_factory=dict)  # id(tensor) → node
    keep_alive: list[Any] = field(default_factory=list)
    seen_params: set[int] = field(default_factory=set)
    touched: set[int] = field(default_factory=set)  # ids of tensors operations without a rule read
    owned: set[int] = field(default_factory=set)  # ids of the model's parameters and buffers
    leaves: set[int] = field(default_factory=set)  # ids of modules without children
    called: set[int] = field(default_factory=set)  # id(module) of modules that ran
    counters: dict[str, itertools.count] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)  # layer → its rule's Cost
    outputs: dict[str, str] = field(default_factory=dict)  # module path → output text
    shape_texts: dict[Any, str] = field(default_factory=dict)  # sample shape → its text
    batch: int = 1
    dtype: torch.dtype = torch.float32
    device: str = "meta"  # "meta": shapes only; "cpu"/"cuda": every operation also runs
    pending: tuple[Any, tuple, dict] | None = None  # the call being recorded (real mode)
    context: Network | None = None  # what rule errors are reported against
    # Tensors whose batch is not (only) axis 0: id → where it is (see ``batch_axis``).
    # Handlers that declared ``any_layout`` count them per sample; others fall back.
    layouts: dict[int, Layout] = field(default_factory=dict)
    # Tensors without a batch at all (a statistic of the batch, a split batch): id → why.
    # Every operation on one is an uncounted row.
    unbatched: dict[int, str] = field(default_factory=dict)
    training_step: bool = False  # the model runs as in training (it was in train mode)

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
        shapes = self.shapes
        if self.stack:
            module = self.stack[-1]
            key = id(module)
            prefix = self.names.get(key, "")
            origin = type(module).__name__
            if prefix and key in self.leaves and prefix not in shapes:
                base = prefix
            else:
                base = f"{prefix}.{kind}" if prefix else kind
        else:
            base, origin = kind, "functional"
        name = base
        if name in shapes or name.startswith("input"):  # taken: number it
            counter = self.counters.setdefault(base, itertools.count(1))
            while name in shapes or name.startswith("input"):
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
        layout: Layout = STANDARD,
        order: Sequence[int] | None = None,
        like: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> ShapeTensor:
        """One row; its output is a tensor of the rule's (per-sample) shape with the batch
        where ``layout`` says (a view keeps its source's strides), or ``value``, PyTorch's
        own result, when it has no batch. ``order``: the axis order the kernel stores the
        output in (the CPU flash attention kernel stores its output like its query, timm's
        as (N, L, H, E), and returns it as (N, H, L, E)), so later reshapes copy where
        PyTorch's do. ``like``: an element-wise operation's
        input, whose memory order PyTorch's output keeps (a strided input stays strided).
        ``dtype``: the output's, when it is not the activations' (a comparison's bool)."""
        try:  # every traced tensor is registered (and kept alive, so its id is its own)
            names = tuple([self.node_of[id(t)] for t in inputs])
        except KeyError:
            names = tuple(self.node(t) for t in inputs)  # says which input is not traced
        name, origin = self.layer_name(kind)
        spec = quick(
            LayerSpec,
            name=name,
            kind=kind,
            args=args,
            inputs=names,
            frozen=False,
            origin=origin,
            reuses_params=False,
            inplace=inplace,
        )
        if self.context is None:
            raise RuntimeError("Tracer.record before trace() set the input (Tracer.context)")
        try:  # each distinct layer's rule runs once per process (``core/memo.py``)
            cost = remembered_rule(spec, self.context, self.shapes)
        except ConvlensError as err:
            shapes = [self.shapes[n] for n in names]
            raise RuleRefused(
                f"{self.where()}: {kind} on input shape(s) {shapes}: {err}", str(err)
            ) from None
        if weights:  # noted as counted only once the row stands
            reuses, frozen = self.weight_use(weights, own_buffers)
            if reuses or frozen:
                spec = replace(spec, frozen=frozen, reuses_params=reuses)
        self.layers.append(spec)
        self.costs[name] = cost
        self.shapes[name] = tuple(cost.output_shape)
        if value is not None:
            out = value.as_subclass(ShapeTensor)
        elif self.device == "meta":
            out_dtype = dtype or self.dtype
            full = layout.full_shape(cost.output_shape, self.batch)
            if order is not None:  # a kernel that writes its output in another axis order
                stored = [int(full[i]) for i in order]
                steps = [math.prod(stored[k + 1 :]) for k in range(len(stored))]
                order_strides = tuple(steps[order.index(i)] for i in range(len(order)))
                out = torch.empty_strided(
                    tuple(int(d) for d in full), order_strides, dtype=out_dtype, device="meta"
                ).as_subclass(ShapeTensor)
            else:
                out = meta_tensor(full, out_dtype)
                if like is not None:  # an element-wise result keeps a strided input's order
                    with torch._C.DisableTorchFunctionSubclass():
                        strided = not like.is_contiguous() and like.shape == out.shape
                        strides = same_order_strides(full, like.stride()) if strided else None
                    if strides is not None:
                        out = torch.empty_strided(
                            tuple(int(d) for d in full), strides, dtype=out_dtype, device="meta"
                        ).as_subclass(ShapeTensor)
            if cost.alias:  # a view keeps its source's strides (whether a later reshape
                out = self.view_like(out)  # copies depends on them, and autograd keeps it)
        else:  # run it for real and hold the rule to what PyTorch computed
            if self.pending is None:
                raise RuntimeError(f"{self.where()}: {kind} recorded without its call")
            func, call_args, call_kwargs = self.pending
            with torch._C.DisableTorchFunctionSubclass():
                real = func(*call_args, **call_kwargs)
            expected = layout.full_shape(cost.output_shape, self.batch)
            if tuple(real.shape) != tuple(expected):
                raise ConvlensError(
                    f"{self.where()}: {kind} gave {tuple(real.shape)} in a "
                    f"real forward but the rule says {expected}"
                )
            out = real.as_subclass(ShapeTensor)
        if layout is not STANDARD and layout != STANDARD:
            self.layouts[id(out)] = layout
        self.register(out, name)
        return out

    def weight_use(self, weights: Sequence[Any], own_buffers: bool) -> tuple[bool, bool]:
        """(whether a row's weights were counted before — a shared module, a computed
        weight —, whether they are frozen), and note them as counted."""
        params = [w for w in weights if isinstance(w, torch.Tensor)]
        if not params:
            return False, False
        ids = [id(w) for w in params]
        seen = self.seen_params
        # A weight computed from parameters (LeNet-5's partial C3 table) is not itself a
        # parameter: the real ones are counted where they live (a params_only record).
        derived = not self.owned.issuperset(ids)
        trainable = any([w.requires_grad for w in params])
        reuses = derived or seen.issuperset(ids)
        if not derived:
            seen.update(ids)
            if self.stack and own_buffers:  # its rule counts the module's buffers
                seen.update([id(b) for b in self.stack[-1]._buffers.values() if b is not None])
        if derived and not trainable and self.stack:  # computed under no_grad: taken to come
            trainable = any(
                p is not None and p.requires_grad  # from the running module's
                for p in self.stack[-1]._parameters.values()
            )  # parameters
        return reuses, not trainable

    def view_like(self, out: ShapeTensor) -> ShapeTensor:
        """``out`` with the strides the pending view really has (run on meta tensors)."""
        if self.pending is None:
            return out
        try:
            func, args, kwargs = self.pending
            with torch._C.DisableTorchFunctionSubclass():
                real = func(*args, **kwargs)
        except Exception:  # strides are a refinement: the shape is already known
            return out
        if not isinstance(real, torch.Tensor) or real.shape != out.shape:
            return out
        return torch.empty_strided(
            tuple(real.shape), real.stride(), dtype=real.dtype, device="meta"
        ).as_subclass(ShapeTensor)

    def on_call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        if func in PASSTHROUGH:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        if func in RUN_THROUGH:
            return run_through(func, args, kwargs)
        handler = HANDLERS.get(func)
        if handler is not None and (self.unbatched or self.layouts):
            traced = [v for v in flatten_args(args, kwargs) if isinstance(v, ShapeTensor)]
            if any(id(v) in self.unbatched for v in traced) or (
                handler not in ANY_LAYOUT and any(id(v) in self.layouts for v in traced)
            ):
                handler = None  # rules count per sample: this tensor has no batch they see
        if handler is not None:
            self.pending = (func, args, kwargs)
            rows = len(self.layers)
            # A handler reads its tensors' shapes, strides and ranks (x.dim(), x.shape):
            # plain reads, not operations of the model to trace, so they skip the round
            # trip through __torch_function__ and this tracer.
            try:
                with torch._C.DisableTorchFunctionSubclass():
                    result = handler(self, args, kwargs)
            except RuleRefused as refused:
                if len(self.layers) != rows:  # the handler recorded part of its rows
                    raise ConvlensError(str(refused)) from None
                return self.refused_by_rule(func, args, kwargs, refused)
            except ConvlensError:
                raise
            except Exception as err:  # a handler's own fault: the call is not lost
                if len(self.layers) != rows:
                    raise
                reason = f"convlens's {op_name(func)} handler failed: {type(err).__name__}: {err}"
                return self.fallback(func, args, kwargs, refused=reason)
            if result is not NotImplemented:
                return result
        return self.fallback(func, args, kwargs)

    def refused_by_rule(self, func: Any, args: tuple, kwargs: dict, refused: RuleRefused) -> Any:
        """A rule refused a call. If PyTorch refuses it too, the model is wrong: the rule's
        words say where and why. If PyTorch runs it, the rule covers less than PyTorch
        does (``F.interpolate`` to a size that is no one scale of the input): the call
        becomes an ``opaque`` row that says what the rule said, and the report is partial,
        rather than a valid model refused."""
        try:
            return self.fallback(func, args, kwargs, refused=refused.reason)
        except Exception:  # PyTorch refuses it as well
            raise ConvlensError(str(refused)) from None

    def fallback(self, func: Any, args: tuple, kwargs: dict, refused: str | None = None) -> Any:
        """No rule: PyTorch's meta kernel gives the shape; nothing is counted. ``refused``:
        what the kind's rule said of this call, when it does not cover it."""

        with torch._C.DisableTorchFunctionSubclass():
            if self.device == "meta":  # the model's own tensors join the meta world
                result = func(*_to_meta(args), **{k: _to_meta(v) for k, v in kwargs.items()})
            else:
                result = func(*args, **kwargs)
        values = list(flatten_args(args, kwargs))
        tensors = [t for t in values if isinstance(t, ShapeTensor)]
        self.touched.update(id(t) for t in values if isinstance(t, torch.Tensor))
        outputs = [t for t in flatten_args((result,), {}) if isinstance(t, torch.Tensor)]
        if not outputs or not tensors:
            return result
        name = op_name(func)
        layouts = [self.batch_axis(t) for t in tensors]
        axes = [None if lay is None or lay.merged else lay.axis for lay in layouts]
        if func in AXIS_MOVES and len(tensors) == 1 and len(outputs) == 1:
            lay = layouts[0]
            mapping = None if lay is None else moved_axes(func, args, kwargs, tensors[0])
            if lay is None or mapping is None or mapping.count(lay.axis) != 1:  # no batch to follow
                return self.record_unbatched(name, tensors, outputs[0])
            moved = replace(lay, axis=mapping.index(lay.axis))
            self.pending = (func, args, kwargs)
            spec: dict[str, Any] = {"shape": moved.sample_shape(outputs[0].shape, self.batch)}
            order = sample_order(mapping, lay)
            if -1 not in order and list(order) != sorted(order):  # a permutation, not a no-op
                spec["order"] = order
            return self.record("view", spec, tensors, layout=moved)

        def batched(value: torch.Tensor) -> bool:
            """Axis 0 of ``value`` is the batch: its size is N, a batched input has it, and
            no input whose axis 0 is something else lines up with it."""
            if (
                value.dim() == 0
                or value.shape[0] != self.batch
                or 0 not in axes
                or (func is torch.Tensor.__getitem__ and indexes_batch(args[1]))
                or joins_batch(func, args, kwargs)
            ):
                return False
            return all(
                a == 0 or t.dim() < value.dim() or t.shape[0] == 1
                for t, a in zip(tensors, axes, strict=True)
            )

        def traced(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and func in CONSTANT_MAKERS:
                return value  # x.new_ones(1), x.new_empty(N, 1, 1, 1): a constant
            if isinstance(value, torch.Tensor) and not batched(value):
                return self.record_unbatched(name, tensors, value)
            if isinstance(value, torch.Tensor):
                if len(outputs) == 1:
                    self.pending = (func, args, kwargs)
                else:
                    self.pending = (lambda *a, **k: value, (), {})
                shape = tuple(value.shape[1:])
                dtype = None if value.dtype == self.dtype else value.dtype
                if (
                    len(outputs) == 1
                    and name in RESHAPES
                    and len(tensors) == 1
                    and value.numel() == tensors[0].numel()
                    and value.dtype == tensors[0].dtype
                ):
                    return self.record("view", {"shape": shape}, tensors, dtype=dtype)  # same data
                spec: dict[str, Any] = {"op": name, "shape": shape}
                if refused is not None:
                    spec["refused"] = refused
                if dtype is not None:  # a comparison's bool, an index's int64: its own bytes
                    spec["itemsize"] = value.element_size()
                return self.record("opaque", spec, tensors, dtype=dtype)
            if isinstance(value, list | tuple):  # several outputs (chunk, split, unbind):
                return type(value)(traced(v) for v in value)  # one row each
            return value

        return traced(result)

    def batch_axis(self, tensor: torch.Tensor) -> Layout | None:
        """Where the batch is in a traced tensor (``STANDARD``: axis 0), or None if it has
        none."""
        if id(tensor) in self.unbatched:
            return None
        return self.layouts.get(id(tensor), STANDARD)

    def batched_layout(self, tensor: torch.Tensor) -> Layout:
        """``batch_axis`` of a handler's input, which has a batch: ``on_call`` gives a
        tensor without one to no handler."""
        layout = self.batch_axis(tensor)
        if layout is None:
            raise RuntimeError(f"{self.where()}: a trace handler was given a batch-less tensor")
        return layout

    def sample_axis(self, tensor: torch.Tensor, dim: Any) -> int | None:
        """Axis ``dim`` of a traced tensor as a rule counts it: per sample, 1 for the first
        axis after the batch's (the rules' convention); None for the batch's axis."""
        layout = self.batch_axis(tensor)
        index = None if layout is None else layout.sample_axis(dim, tensor.dim())
        return None if index is None else index + 1

    def record_unbatched(self, op: str, inputs: Sequence[Any], value: torch.Tensor) -> ShapeTensor:
        """A result without a batch (a statistic of the batch, a split batch). Rules count
        per sample, so it is an ``opaque`` row that counts nothing (not even its bytes) and
        says why, and so is every operation computed from it."""
        full = tuple(int(d) for d in value.shape)
        # where the batch axis was lost: an input's origin, else an input whose batch is
        # elsewhere than axis 0 (the operation has no rule that follows it), else here
        cause = next((self.unbatched[id(t)] for t in inputs if id(t) in self.unbatched), None)
        moved = next((self.layouts[id(t)] for t in inputs if id(t) in self.layouts), None)
        if cause is None and moved is not None:
            where = "merged into" if moved.merged else "on"
            cause = (
                f"'{op}' in {self.where()} needs the batch on axis 0, but its input has it "
                f"{where} axis {moved.axis}"
            )
        args = {"op": op, "shape": full, "batched": False, "note": cause}
        out = self.record("opaque", args, inputs, value=value)
        here = f"'{op}' in {self.where()} gave {'×'.join(map(str, full)) or 'a scalar'}"
        self.unbatched[id(out)] = cause or here
        return out

    def describe(self, value: Any) -> str:
        """Per-sample shapes of a module's output, tuples, lists and dicts included; a
        tensor whose batch is not axis 0 shows its whole shape, N where the batch is (N·m
        where it is merged), or says it has none."""
        if type(value) is ShapeTensor and not self.layouts and not self.unbatched:
            node = self.node_of.get(id(value))  # the common case: one traced tensor, batch
            if node is not None:  # on axis 0, its per-sample shape known
                shape = self.shapes[node]
                text = self.shape_texts.get(shape)
                if text is None:
                    text = self.shape_texts[shape] = sample_text(shape)
                return text
        with torch._C.DisableTorchFunctionSubclass():  # shape reads, not traced operations
            return self._describe(value)

    def _describe(self, value: Any) -> str:
        if isinstance(value, torch.Tensor) and id(value) in self.unbatched:
            dims = [str(d) for d in value.shape]
            return "×".join(dims) + " (no batch axis)" if dims else "scalar (no batch axis)"
        if isinstance(value, torch.Tensor) and id(value) in self.layouts:
            layout = self.layouts[id(value)]
            dims = [str(d) for d in value.shape]
            a = layout.axis
            inner = value.shape[a] // (self.batch * layout.outer)
            factors = [str(layout.outer)] if layout.outer != 1 else []
            factors += ["N", str(inner)] if layout.merged and inner != 1 else ["N"]
            return "×".join([*dims[:a], "·".join(factors), *dims[a + 1 :]])
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self._describe(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list | tuple):
            return "(" + ", ".join(self._describe(v) for v in value) + ")"
        return describe_output(value)


def _to_meta(value: Any) -> Any:
    """``value`` with every real tensor in it (the model's own) replaced by a meta tensor
    like it. A module-level function, not a closure that calls itself: that would be a
    reference cycle keeping the whole trace alive until Python's cyclic collector ran."""
    if (
        isinstance(value, torch.Tensor)
        and not isinstance(value, ShapeTensor)
        and value.device.type != "meta"
    ):
        return torch.empty_like(value, device="meta")
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(v) for v in value)
    return value


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    if name == "__get__" and hasattr(getattr(func, "__self__", None), "__name__"):
        return func.__self__.__name__  # a property: x.T, x.mT
    return name


def flatten_args(args: Any, kwargs: Mapping[str, Any]) -> Iterator[Any]:
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, list | tuple):
            yield from flatten_args(value, {})
        elif isinstance(value, dict):
            yield from flatten_args((), value)
        else:
            yield value


def describe_output(value: Any) -> str:
    """Per-sample shapes of a module's output, tuples, lists and dicts included."""
    if isinstance(value, torch.Tensor):
        return sample_text(value.shape[1:])
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_output(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(describe_output(v) for v in value) + ")"
    return type(value).__name__


def sample_text(shape: Sequence[Any]) -> str:
    """One sample's shape as the report shows a module's output: ``16×112×112``."""
    return "×".join(map(str, shape)) or "scalar"
