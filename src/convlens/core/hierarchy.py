"""Per-module rows at a chosen depth (like torchinfo's ``depth``), summed from layer records.

Layer names are dotted paths (``layer1.0.conv1`` for traced modules, ``block_1.conv2d_1``
for description blocks); cutting them at ``depth`` components groups consecutive layers
into their enclosing module. The rows' sums equal the report's totals.
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.core.analyze import Report
from convlens.core.numbers import Dim, total
from convlens.core.records import LayerRecord


@dataclass(frozen=True)
class ModuleRow:
    name: str
    module_type: str
    layers: int
    first_layer: int  # index of its first and last layer in the report
    last_layer: int
    output_shape: tuple[Dim, ...]
    params: Dim
    trainable_params: Dim
    frozen_params: Dim
    buffers: Dim
    macs: Dim
    flops: Dim
    activation_bytes: Dim
    saved_bytes: Dim
    output_text: str = ""  # a traced module's own output (tuples and dicts too), if known


def module_key(name: str, depth: int) -> str:
    """The enclosing module of a layer at ``depth``: its first ``depth`` name parts."""
    return ".".join(name.split(".")[:depth]) if depth else ""


def module_rows(report: Report, depth: int) -> list[ModuleRow]:
    groups: list[tuple[str, list[LayerRecord]]] = []
    for record in report.layers:
        key = module_key(record.name, depth)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(record)
        else:
            groups.append((key, [record]))
    types = dict(report.network.module_types)
    outputs = dict(report.network.module_outputs)
    return [_row(key, records, types, outputs) for key, records in groups]


def _row(
    key: str, records: list[LayerRecord], types: dict[str, str], outputs: dict[str, str]
) -> ModuleRow:
    first = records[0]
    kind = types.get(key) or (first.origin if key == first.name else "")
    if not kind or ":" in kind:  # a description's "file:line" origin names no type
        kind = first.kind if key == first.name else "block"
    ran = [r for r in records if r.kind != "params_only"]

    def sum_of(attr: str) -> Dim:
        return total(getattr(r, attr) for r in records)

    return ModuleRow(
        name=key,
        module_type=kind,
        layers=len(records),
        first_layer=first.index,
        last_layer=records[-1].index,
        output_shape=(ran[-1] if ran else first).output_shape,
        params=sum_of("params"),
        trainable_params=sum_of("trainable_params"),
        frozen_params=sum_of("frozen_params"),
        buffers=sum_of("buffers"),
        macs=sum_of("macs"),
        flops=sum_of("flops"),
        activation_bytes=sum_of("activation_bytes"),
        saved_bytes=sum_of("saved_bytes"),
        output_text=outputs.get(key, ""),
    )
