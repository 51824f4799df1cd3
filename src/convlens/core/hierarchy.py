"""Per-module rows at a chosen depth (like torchinfo's ``depth``), summed from layer records.

Layer names are dotted paths (``layer1.0.conv1`` for traced modules, ``block_1.conv2d_1``
for description blocks); cutting them at ``depth`` components groups consecutive layers
into their enclosing module. The rows' sums equal the report's totals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from convlens.core.analyze import Report
from convlens.core.numbers import Dim, normalize


@dataclass(frozen=True)
class ModuleRow:
    name: str
    module_type: str
    layers: int
    output_shape: tuple[Dim, ...]
    params: Dim
    macs: Dim
    flops: Dim
    activation_bytes: Dim
    output_text: str = ""  # a traced module's own output (tuples and dicts too), if known


def module_rows(report: Report, depth: int) -> list[ModuleRow]:
    types = dict(report.network.module_types)
    outputs = dict(report.network.module_outputs)
    rows: list[ModuleRow] = []
    for record in report.layers:
        key = ".".join(record.name.split(".")[:depth]) if depth else ""
        if rows and rows[-1].name == key:
            last = rows[-1]
            rows[-1] = ModuleRow(
                key,
                last.module_type,
                last.layers + 1,
                record.output_shape if record.kind != "params_only" else last.output_shape,
                normalize(last.params + record.params),
                normalize(last.macs + record.macs),
                normalize(last.flops + record.flops),
                normalize(last.activation_bytes + record.activation_bytes),
            )
        else:
            kind = types.get(key) or (record.origin if key == record.name else "")
            if not kind or ":" in kind:
                kind = record.kind if key == record.name else "block"
            rows.append(
                ModuleRow(
                    key,
                    kind,
                    1,
                    record.output_shape,
                    record.params,
                    record.macs,
                    record.flops,
                    record.activation_bytes,
                )
            )
    return [replace(r, output_text=outputs[r.name]) if r.name in outputs else r for r in rows]
