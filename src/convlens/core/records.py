"""Frozen records that flow from front-ends through the analyser to renderers.

``Network`` and ``LayerSpec`` are what a front-end produces (text description or
traced module); ``LayerRecord``, ``Totals`` and ``Report`` are what the analyser
produces. Nothing downstream knows which front-end made a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from convlens.core.numbers import Dim
from convlens.core.steps import Step

Shape = tuple[Dim, ...]


class SampleShape(tuple[int, ...]):
    """One sample's shape as ``--input`` gives it, without the batch: (C, L), (C, H, W) or
    (C, D, H, W). A plain size of three is read as (C, H, W) too; this type says so for
    every rank, so a traced model puts the batch in front of a signal's (C, L)."""

    __slots__ = ()


@dataclass(frozen=True)
class LayerSpec:
    """One node as a front-end describes it: a kind, hyper-parameters and its inputs."""

    name: str
    kind: str
    args: Mapping[str, Any]
    inputs: tuple[str, ...]
    frozen: bool = False
    line: int | None = None
    column: int | None = None
    origin: str = ""  # "file:line" for descriptions, module type for traced models
    reuses_params: bool = False  # a module called again: its parameters are counted once
    inplace: bool = False  # writes into its input's storage (ReLU(inplace=True), +=)


@dataclass(frozen=True)
class Network:
    input_shape: Shape  # per sample: (C, L), (C, H, W) or (C, D, H, W)
    layers: tuple[LayerSpec, ...]  # in an order where inputs come first
    name: str = "network"
    source: str = ""  # file path or "zoo:NAME"
    input_name: str = "input"
    used_bindings: frozenset[str] = frozenset()  # which given symbol values were used
    module_types: tuple[tuple[str, str], ...] = ()  # traced models: module path → class
    # Traced models: module path → its output as text, tuples and dicts included,
    # e.g. "(255×13×13, 255×26×26, 255×52×52)" (per sample, for --depth rows).
    module_outputs: tuple[tuple[str, str], ...] = ()
    # Further inputs of a traced model (a second tensor, keyword tensors): name → shape.
    # Receptive fields are measured on the first input; the others count for memory.
    extra_inputs: tuple[tuple[str, Shape], ...] = ()


@dataclass(frozen=True)
class LayerRecord:
    index: int
    name: str
    kind: str
    line: int | None
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    params: Dim
    trainable_params: Dim
    frozen_params: Dim
    buffers: Dim
    macs: Dim
    bias_flops: Dim
    other_flops: Dim
    flops: Dim
    connections: Dim | None
    rf: tuple[Dim, ...] | None  # one per spatial axis of the network's input
    jump: tuple[Dim, ...] | None
    start: tuple[Dim, ...] | None
    rf_status: str  # an RFStatus; UNAVAILABLE with rf_reason saying why
    activation_bytes: Dim
    saved_bytes: Dim  # activations this layer adds to what training keeps for backward
    warnings: tuple[str, ...]
    steps: tuple[Step, ...]
    args: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""
    unsupported: str = ""  # non-empty: an operation without a rule (not counted)
    rf_period: tuple[int, ...] | None = None  # outputs after which the RF pattern repeats
    rf_reason: str = ""  # why the receptive field is unavailable


@dataclass(frozen=True)
class Totals:
    params: Dim
    trainable_params: Dim
    frozen_params: Dim
    buffers: Dim
    macs: Dim
    flops: Dim
    connections: Dim | None
    rf: tuple[Dim, ...] | None
    jump: tuple[Dim, ...] | None
    start: tuple[Dim, ...] | None
    rf_status: str  # an RFStatus, as the last layer's
    activation_bytes: Dim
    peak_activation_bytes: Dim
    param_bytes: Dim
    buffer_bytes: Dim
    grad_bytes: Dim
    optimizer_bytes: Dim
    saved_activation_bytes: Dim
    training_bytes: Dim
    unsupported: tuple[str, ...] = ()  # operations without a rule: figures are partial
    param_tensors: int = 0  # tensors that hold the parameters
    grad_params: Dim = 0  # trainable parameters the forward uses: they get a gradient
    grad_tensors: int = 0  # the tensors that hold them (each gets optimizer state)
    rf_reason: str = ""
