"""The analyser: runs the registered rules over a network and collects the numbers.

One pass in topological order computes, for every layer, its shape, parameters,
MACs/FLOPs, receptive field, activation bytes and what autograd would keep for
backward; a second pass over the same records computes peak inference memory.
No rendering here: renderers read the ``Report``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from convlens.core.args import ArgValueError, coerce_args
from convlens.core.conventions import (
    DESCRIPTIONS,
    DTYPE_BYTES,
    MACS_DEFINITION,
    OPTIMIZER_STATES,
    OPTIMIZER_TENSOR_BYTES,
    Convention,
    flops,
)
from convlens.core.frozen import quick
from convlens.core.memo import RF_RESULTS, RULE_RESULTS, rule_key
from convlens.core.numbers import Dim, is_numeric, maximum, normalize, product, total
from convlens.core.receptive_field import OTHER_INPUT_RF, NodeRF, RFStatus, input_rf, node_rf
from convlens.core.records import LayerRecord, LayerSpec, Network, Shape, Totals
from convlens.core.registry import Cost, RuleError, Saved, get_rule
from convlens.core.rules.common import axis_names
from convlens.core.steps import Step, step
from convlens.errors import ArgumentError, SourcePosition, SpecError


@dataclass(frozen=True)
class Options:
    batch: Dim = 1
    dtype: str = "float32"
    optimizer: str = "adam"
    convention: Convention = Convention.FULL
    frozen: tuple[str, ...] = ()  # name patterns (fnmatch) of layers whose params are frozen
    # BatchNorm kept in eval mode while the rest trains (fine-tuning): it normalises with
    # its running statistics, so backward keeps no batch mean and 1/std
    freeze_bn: bool = False


@dataclass(frozen=True)
class Report:
    """Per-layer records and totals of one analysis; renderers only read it.

    ``convlens.analyze`` returns an ``AnalysisReport``: this with ``to_json()`` & co."""

    network: Network
    options: Options
    layers: tuple[LayerRecord, ...]
    totals: Totals
    memory_steps: tuple[Step, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def convention(self) -> str:
        return f"{MACS_DEFINITION}; {DESCRIPTIONS[self.options.convention]}"

    def layer(self, key: int | str) -> LayerRecord:
        for record in self.layers:
            if key in (record.index, record.name) or str(record.index) == str(key):
                return record
        from convlens.core.args import suggest

        raise KeyError(f"no layer {key!r}{suggest(str(key), [r.name for r in self.layers])}")


def _position(spec: LayerSpec, network: Network) -> SourcePosition | None:
    if spec.line is None:
        return None
    return SourcePosition(network.source or network.name, spec.line, spec.column or 1)


def _error(spec: LayerSpec, network: Network, message: str) -> SpecError:
    return SpecError(message, _position(spec, network), layer=spec.name)


def run_rule(spec: LayerSpec, network: Network, shapes: Mapping[str, Shape]) -> Cost:
    try:
        rule = get_rule(spec.kind)
    except KeyError as err:
        raise _error(spec, network, str(err.args[0])) from None
    try:
        args = coerce_args(spec.kind, rule.schema, spec.args)
    except ArgValueError as err:
        raise _error(spec, network, str(err)) from None
    if args.get("like"):  # crop to the size of another output
        target = shapes.get(args["like"])
        if target is None:
            raise _error(spec, network, f"crop like={args['like']}: no output of that name")
        args = {**args, "size": tuple(target[1:3])}
    if rule.inputs >= 0 and len(spec.inputs) != rule.inputs:
        raise _error(
            spec, network, f"{spec.kind} takes {rule.inputs} input(s), got {len(spec.inputs)}"
        )
    try:
        return rule.fn([shapes[name] for name in spec.inputs], args)
    except RuleError as err:
        raise _error(spec, network, str(err)) from None


def remembered_rule(spec: LayerSpec, network: Network, shapes: Mapping[str, Shape]) -> Cost:
    """``run_rule``, answered from the process's memo (``core/memo.py``) when the same kind,
    arguments and input shapes were analysed before."""
    key = rule_key(spec.kind, spec.args, [shapes.get(name) for name in spec.inputs])
    cost = RULE_RESULTS.get(key) if key is not None else None
    if cost is None:
        cost = run_rule(spec, network, shapes)
        if key is not None:
            RULE_RESULTS.put(key, cost)
    return cost


def analyze_network(
    network: Network, options: Options = Options(), costs: Mapping[str, Cost] | None = None
) -> Report:
    """``costs``: rule results a front-end already computed for these very layers (the
    tracer runs each rule to learn shapes), so they are not computed twice."""
    _check_frozen_patterns(network, options.frozen)
    itemsize = DTYPE_BYTES[options.dtype]
    batch = options.batch
    shapes: dict[str, Shape] = {network.input_name: tuple(network.input_shape)}
    rfs: dict[str, NodeRF] = {network.input_name: input_rf(len(network.input_shape) - 1)}
    needs_grad: dict[str, bool] = {network.input_name: False}
    storage: dict[str, str] = {network.input_name: network.input_name}  # node → storage owner
    storage_bytes: dict[str, Dim] = {
        network.input_name: normalize(product(network.input_shape) * batch * itemsize)
    }
    for name, shape in network.extra_inputs:
        shapes[name], rfs[name], needs_grad[name], storage[name] = (
            tuple(shape),
            OTHER_INPUT_RF,
            False,
            name,
        )
        storage_bytes[name] = normalize(product(shape) * batch * itemsize)
    saved_storages: set[str] = set()
    buffer_bytes: Dim = 0  # float buffers in the dtype, integer counters 8 bytes each
    tensors = Tensors()
    records: list[LayerRecord] = []
    rf_texts: dict[int, tuple[dict[str, Any], tuple[Step, ...]]] = {}  # id(NodeRF) → …
    for index, spec in enumerate(network.layers, start=1):
        known = costs.get(spec.name) if costs is not None else None
        cost = rule_cost = known if known is not None else remembered_rule(spec, network, shapes)
        has_weights = cost.params != 0  # even when reused: autograd needs them again
        if spec.reuses_params:  # a shared module: its parameters were counted at first use
            cost = replace(
                cost, params=0, param_tensors=0, buffers=0, int64_buffers=0, bool_buffers=0
            )
        buffer_bytes = (
            buffer_bytes
            + (cost.buffers - cost.int64_buffers - cost.bool_buffers) * itemsize
            + 8 * cost.int64_buffers
            + cost.bool_buffers
        )
        frozen = spec.frozen or (
            bool(options.frozen) and any(fnmatch.fnmatchcase(spec.name, p) for p in options.frozen)
        )
        trainable = 0 if frozen else cost.params
        tensors.add(cost, frozen)
        in_graph = spec.kind != "params_only" and (
            any([needs_grad[name] for name in spec.inputs]) or (not frozen and has_weights)
        )
        out_bytes = (
            normalize(product(cost.output_shape) * batch * (cost.output_itemsize or itemsize))
            if cost.batched
            else 0
        )
        shares = (cost.alias or spec.inplace) and bool(spec.inputs)
        storage[spec.name] = storage[spec.inputs[0]] if shares else spec.name
        if not shares:
            storage_bytes[spec.name] = out_bytes
        # What training keeps for backward: unique storages, so a tensor saved by two
        # layers (ReLU keeps its output, the next conv keeps it as input) counts once.
        new_saved: Dim = 0
        if in_graph:
            for saved in cost.saves:
                if saved.batch_statistics and options.freeze_bn:
                    continue
                if saved.needs == "weight" and (frozen or not has_weights):
                    continue
                if saved.needs == "input" and not needs_grad[spec.inputs[saved.index]]:
                    continue
                if saved.what == "extra":
                    count = saved.elements if saved.per_batch else saved.elements * batch
                    new_saved = new_saved + count * _saved_itemsize(saved, itemsize)
                elif saved.copied_in_place and spec.inplace:  # copied before overwriting
                    copied = product(shapes[spec.inputs[saved.index]]) * batch
                    new_saved = new_saved + copied * _saved_itemsize(saved, itemsize)
                else:
                    node = spec.inputs[saved.index] if saved.what == "input" else spec.name
                    owner = storage[node]
                    if owner not in saved_storages:
                        saved_storages.add(owner)
                        new_saved = new_saved + storage_bytes[owner]
        shapes[spec.name] = tuple(cost.output_shape)
        needs_grad[spec.name] = in_graph
        input_rfs = [rfs[name] for name in spec.inputs]
        rf_key = (id(rule_cost), network.input_shape, *[id(r) for r in input_rfs])
        remembered = RF_RESULTS.get(rf_key)
        if remembered is not None:
            rf, rf_fields, rf_steps = remembered[2:]
        else:
            rf = node_rf(
                input_rfs,
                cost.rf,
                cost.rf_global,
                cost.rf_axes,
                cost.rf_otherwise_global,
                cost.rf_unavailable,
            )
            # element-wise layers pass their input's NodeRF on: its fields and steps once
            known_rf = rf_texts.get(id(rf))
            if known_rf is None:
                known_rf = rf_texts[id(rf)] = (
                    _rf_fields(rf, network.input_shape),
                    _rf_steps(rf),
                )
            rf_fields, rf_steps = known_rf
            RF_RESULTS.put(rf_key, (rule_cost, input_rfs, rf, rf_fields, rf_steps))
        rfs[spec.name] = rf
        macs = normalize(cost.macs * batch)
        bias_flops = normalize(cost.bias_flops * batch)
        other_flops = normalize(cost.other_flops * batch)
        records.append(
            quick(
                LayerRecord,
                index=index,
                name=spec.name,
                kind=spec.kind,
                line=spec.line,
                inputs=spec.inputs,
                input_shapes=tuple([shapes[name] for name in spec.inputs]),
                output_shape=tuple(cost.output_shape),
                params=cost.params,
                trainable_params=trainable,
                frozen_params=normalize(cost.params - trainable),
                buffers=cost.buffers,
                macs=macs,
                bias_flops=bias_flops,
                other_flops=other_flops,
                flops=flops(options.convention, macs, bias_flops, other_flops),
                connections=cost.connections,
                **rf_fields,
                activation_bytes=out_bytes,
                saved_bytes=normalize(new_saved),
                warnings=cost.warnings,
                steps=cost.steps + rf_steps + _batch_steps(cost, batch),
                args=cost.args,
                origin=spec.origin,
                unsupported=cost.unsupported,
            )
        )
    return _with_totals(
        network,
        options,
        records,
        storage,
        storage_bytes,
        itemsize,
        normalize(buffer_bytes),
        tensors,
    )


def layer_warnings(records: Iterable[LayerRecord], shown: int = 4) -> tuple[str, ...]:
    """One line per distinct warning, naming the layers that have it: ResNet-50's three
    1×1 stride-2 shortcuts share one line. Each layer keeps its own in ``warnings``."""
    layers: dict[str, list[str]] = {}
    for record in records:
        for warning in record.warnings:
            layers.setdefault(warning, []).append(record.name)
    lines = []
    for warning, names in layers.items():
        named = (
            ", ".join(names[:shown])
            if len(names) <= shown
            else (f"{', '.join(names[: shown - 1])} and {len(names) - shown + 1} more layers")
        )
        lines.append(f"{named}: {warning}")
    return tuple(lines)


def _check_frozen_patterns(network: Network, patterns: tuple[str, ...]) -> None:
    """A pattern that freezes nothing is a typo, refused like an unused ``--set`` name."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(spec.name, pattern) for spec in network.layers):
            from convlens.core.args import suggest

            names = [spec.name for spec in network.layers]
            shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
            raise ArgumentError(
                f"--frozen '{pattern}' matches no layer{suggest(pattern, names)}; "
                f"layer names are like {shown or 'nothing (no layers)'}"
            )


@dataclass
class Tensors:
    """Parameter tensors, and the trainable ones the forward uses: those get a gradient,
    and an optimizer keeps state for each (Adam also a step count per tensor)."""

    params: int = 0
    grad_params: Dim = 0
    grad_tensors: int = 0

    def add(self, cost: Cost, frozen: bool) -> None:
        self.params += cost.param_tensors
        if not frozen and not cost.unused_params:
            self.grad_params = normalize(self.grad_params + cost.params)
            self.grad_tensors += cost.param_tensors


def _saved_itemsize(saved: Saved, itemsize: int) -> int:
    """Bytes per element of a kept extra: its own, else the activations' (at least
    ``min_itemsize``)."""
    return saved.itemsize or max(itemsize, saved.min_itemsize)


def _input_names(network: Network) -> tuple[str, ...]:
    return (network.input_name, *(name for name, _ in network.extra_inputs))


def _rf_fields(rf: NodeRF, input_shape: Shape) -> dict[str, Any]:
    axes = None if rf.independent or rf.whole_input else rf.axes
    if axes is None:
        size = tuple(input_shape[1:]) if rf.whole_input and not rf.independent else None
        return {
            "rf": size,
            "jump": None,
            "start": None,
            "rf_status": rf.status,
            "rf_period": None,
            "rf_reason": rf.unavailable,
        }
    return {
        "rf": tuple([a.size for a in axes]),
        "jump": tuple([a.jump for a in axes]),
        "start": tuple([a.start for a in axes]),
        "rf_status": rf.status,
        "rf_period": tuple([a.period for a in axes]),
        "rf_reason": rf.unavailable,
    }


def _rf_steps(rf: NodeRF) -> tuple[Step, ...]:
    """RF = hi − lo + 1 at the widest output position; jump; start = centre of output 0."""
    if rf.axes is None:
        return ()
    out: list[Step] = []
    for axis, name in enumerate(axis_names(len(rf.axes))):
        a = rf.axes[axis]
        if a.period == 1:  # the common case: every output sees the same span
            lo, hi = a.lo[0], a.hi[0]
            if lo is None:
                continue
            note = f"output 0 sees input positions {lo} … {hi}"
        else:
            spans = [
                (h - lo + 1, o)
                for o, (lo, h) in enumerate(zip(a.lo, a.hi, strict=True))
                if lo is not None
            ]
            if not spans:
                continue
            o = max(
                range(len(spans)), key=lambda i: spans[i][0] if isinstance(spans[i][0], int) else 0
            )
            lo, hi = a.lo[spans[o][1]], a.hi[spans[o][1]]
            note = (
                f"the pattern repeats every {a.period} outputs; output {spans[o][1]} sees "
                f"the most: positions {lo} … {hi}"
            )
        out.append(
            step(
                "rf",
                f"receptive field {name}",
                "RF",
                "{hi} − {lo} + 1",
                {"hi": hi, "lo": lo},
                a.size,
                note=note,
            )
        )
    return tuple(out)


def _batch_steps(cost: Cost, batch: Dim) -> tuple[Step, ...]:
    if batch == 1 or not cost.macs:
        return ()
    return (
        step(
            "macs",
            "multiply-accumulates for the batch",
            "MACs",
            "{N}·{M}",
            {"N": batch, "M": cost.macs},
            normalize(batch * cost.macs),
        ),
    )


def peak_activation_bytes(
    records: Iterable[LayerRecord],
    input_names: tuple[str, ...],
    storage: Mapping[str, str],
    storage_bytes: Mapping[str, Dim],
) -> Dim:
    """Largest sum of live tensors during an inference pass in layer order.

    A tensor lives from the layer that makes it until its last reader has run; views
    (flatten, crop) share their source's storage and add nothing.
    """
    records = [r for r in records if r.kind != "params_only"]
    last_use: dict[str, int] = dict.fromkeys(input_names, 0)
    for record in records:
        for name in record.inputs:
            last_use[storage[name]] = record.index
    final = storage[records[-1].name] if records else input_names[0]
    last_use[final] = len(records) + 1
    # A tensor leaves when the layer that reads it last has run (at once if none does).
    leaves: dict[int, list[str]] = {}
    first = records[0].index if records else 0
    for name in input_names:
        leaves.setdefault(max(last_use.get(name, 0), first), []).append(name)
    live: dict[str, Dim] = {name: storage_bytes[name] for name in input_names}
    numeric = all(is_numeric(b) for b in storage_bytes.values())
    running = sum(live.values()) if numeric else 0  # the live sum, kept as it changes
    peak_candidates: list[Dim] = [running if numeric else total(live.values())]
    for record in records:
        owner = storage[record.name]
        if owner == record.name and owner in storage_bytes:
            live[owner] = storage_bytes[owner]
            running += storage_bytes[owner] if numeric else 0
            leaves.setdefault(max(last_use.get(owner, 0), record.index), []).append(owner)
        peak_candidates.append(running if numeric else total(live.values()))
        for name in leaves.pop(record.index, ()):
            gone = live.pop(name)
            running -= gone if numeric else 0
    return maximum(*peak_candidates)


def _with_totals(
    network: Network,
    options: Options,
    records: list[LayerRecord],
    storage: Mapping[str, str],
    storage_bytes: Mapping[str, Dim],
    itemsize: int,
    buffer_bytes: Dim,
    tensors: Tensors,
) -> Report:
    def sum_of(attr: str) -> Dim:
        return total(map(attrgetter(attr), records))

    params, trainable = sum_of("params"), sum_of("trainable_params")
    # Connections in LeNet-5's sense: the weighted edges of convolutions and linear layers.
    # None when a layer with parameters defines none (batch norm): a partial sum would
    # look complete (docs/conventions.md, "Connections").
    counted = all(r.connections is not None for r in records if r.params != 0)
    connections = total(r.connections for r in records if r.connections is not None)
    connections = connections if counted else None
    param_bytes = normalize(params * itemsize)
    # .grad exists for the trainable parameters the forward used, in their dtype
    grad_bytes = normalize(tensors.grad_params * itemsize)
    states = OPTIMIZER_STATES[options.optimizer]
    per_tensor = OPTIMIZER_TENSOR_BYTES[options.optimizer]
    optimizer_bytes = normalize(states * grad_bytes + per_tensor * tensors.grad_tensors)
    saved = sum_of("saved_bytes")
    training = normalize(param_bytes + buffer_bytes + grad_bytes + optimizer_bytes + saved)
    ran = [r for r in records if r.kind != "params_only"]
    last = ran[-1] if ran else None
    totals = Totals(
        params=params,
        trainable_params=trainable,
        frozen_params=sum_of("frozen_params"),
        buffers=sum_of("buffers"),
        macs=sum_of("macs"),
        flops=sum_of("flops"),
        connections=connections,
        rf=last.rf if last else None,
        jump=last.jump if last else None,
        start=last.start if last else None,
        rf_status=last.rf_status if last else RFStatus.OK,
        rf_reason=last.rf_reason if last else "",
        activation_bytes=sum_of("activation_bytes"),
        peak_activation_bytes=peak_activation_bytes(
            records, _input_names(network), storage, storage_bytes
        ),
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        grad_bytes=grad_bytes,
        optimizer_bytes=optimizer_bytes,
        saved_activation_bytes=saved,
        training_bytes=training,
        unsupported=tuple(dict.fromkeys(r.unsupported for r in records if r.unsupported)),
        param_tensors=tensors.params,
        grad_params=tensors.grad_params,
        grad_tensors=tensors.grad_tensors,
    )
    values = {
        "P": param_bytes,
        "B": buffer_bytes,
        "G": grad_bytes,
        "O": optimizer_bytes,
        "A": saved,
    }
    memory_steps = (
        step(
            "memory", "parameter bytes", "P", "{N}·{b}", {"N": params, "b": itemsize}, param_bytes
        ),
        step(
            "memory",
            "gradient bytes",
            "G",
            "{N}·{b}",
            {"N": tensors.grad_params, "b": itemsize},
            grad_bytes,
            note="one gradient per trainable parameter the forward uses",
        ),
        step(
            "memory",
            "optimizer bytes",
            "O",
            "{k}·{G} + {s}·{n}",
            {"k": states, "G": grad_bytes, "s": per_tensor, "n": tensors.grad_tensors},
            optimizer_bytes,
            note=f"{options.optimizer} keeps {states} copies per parameter"
            + (f" and a {per_tensor}-byte step count per parameter tensor" if per_tensor else ""),
        ),
        step(
            "memory",
            "training bytes",
            "T",
            "{P} + {B} + {G} + {O} + {A}",
            values,
            training,
            note="parameters + buffers + gradients + optimizer state + saved activations",
        ),
    )
    warnings = layer_warnings(records)
    if totals.unsupported:
        unbatched = any(r.kind == "opaque" and not r.args.get("batched", True) for r in records)
        warnings += (
            f"partial figures: no rule for {', '.join(totals.unsupported)} — their "
            "MACs, FLOPs and saved activations are not counted"
            + (", nor the activation bytes of results without a batch axis" if unbatched else ""),
        )
    return Report(network, options, tuple(records), totals, memory_steps, warnings)
