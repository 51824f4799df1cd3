"""Which input pixels one output position of a layer reads: the rectangle the page draws.

The report keeps each layer's receptive-field size, jump and start (the largest field
and where output 0's is centred). Drawing the field of a chosen position needs that
position's own interval, so it is found directly: walking the graph backwards from the
position, each layer maps the positions it must produce to the input positions it reads
(its rule's ``taps``, or ``lo … hi``), merges pass them to every input, and what reaches
the network's input is the field, on an unbounded input as in the report (so padding
counts). Exact for every layer kind, strided transposed and upsampling ones included.
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.core.analyze import run_rule
from convlens.core.records import Network, Shape
from convlens.core.registry import AxisMap, Cost

WHOLE_INPUT = "whole input"
UNAVAILABLE = "unavailable"  # a layer no receptive field follows (a transpose of H and W)


@dataclass(frozen=True)
class Span:
    """Input positions ``lo … hi`` (inclusive, may reach into the padding) on one axis."""

    lo: int
    hi: int


def layer_costs(network: Network) -> dict[str, Cost]:
    """Each layer's rule result (its index maps among them), as the analyser computes it."""
    shapes: dict[str, Shape] = {network.input_name: tuple(network.input_shape)}
    costs: dict[str, Cost] = {}
    for spec in network.layers:
        costs[spec.name] = run_rule(spec, network, shapes)
        shapes[spec.name] = tuple(costs[spec.name].output_shape)
    return costs


def _reads(axis_map: AxisMap, positions: set[int]) -> set[int]:
    read: set[int] = set()
    for o in positions:
        if axis_map.taps is not None:
            read.update(int(i) for i in axis_map.taps(o))
        else:
            read.update(range(int(axis_map.lo(o)), int(axis_map.hi(o)) + 1))
    return read


def input_positions(
    network: Network, costs: dict[str, Cost], layer: str, axis: int, position: int
) -> set[int] | str:
    """The network-input positions along ``axis`` (0: rows, 1: columns) that output
    ``position`` of ``layer`` depends on; ``WHOLE_INPUT`` after a global layer,
    ``UNAVAILABLE`` after one no receptive field follows."""
    names = [spec.name for spec in network.layers]
    needed: dict[str, set[int]] = {layer: {position}}
    for spec in reversed(network.layers[: names.index(layer) + 1]):
        positions = needed.pop(spec.name, None)
        if not positions:
            continue
        cost = costs[spec.name]
        if cost.rf_unavailable:
            return UNAVAILABLE
        fits = cost.rf_axes in (None, len(network.input_shape) - 1)  # see Cost.rf_axes
        if cost.rf_global if fits else cost.rf_otherwise_global:
            return WHOLE_INPUT
        maps = cost.rf if fits else None
        read = positions if maps is None else _reads(maps[axis], positions)
        for name in spec.inputs:
            needed.setdefault(name, set()).update(read)
    return needed.get(network.input_name, set())


def position_spans(
    network: Network, costs: dict[str, Cost], layer: str, y: int, x: int
) -> tuple[Span, Span] | str | None:
    """The rows and columns output ``(y, x)`` of ``layer`` reads; ``WHOLE_INPUT``; or None
    when it reads no input position (a gap of a strided transposed convolution) or none
    can be said (``UNAVAILABLE``)."""
    spans = []
    for axis, position in enumerate((y, x)):
        found = input_positions(network, costs, layer, axis, position)
        if found == UNAVAILABLE:
            return None
        if isinstance(found, str):
            return WHOLE_INPUT
        if not found:
            return None
        spans.append(Span(min(found), max(found)))
    return spans[0], spans[1]
