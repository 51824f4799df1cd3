"""The field of each output position (what the page draws) against PyTorch gradients.

``tests/core`` checks each layer's RF size, jump and start; here every output position's
interval ``lo … hi`` is checked: with positive weights, the input positions an output's
gradient reaches are exactly those it reads (away from the border, where padding cuts it).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings

import convlens
from convlens.web.limits import Limits
from convlens.web.parse import parse_description
from convlens.web.receptive import WHOLE_INPUT, layer_costs, position_spans
from tests.core.oracle import gradient_extents
from tests.core.test_receptive_field import rf_networks
from tests.web.conftest import EXAMPLES

MARGIN = 8  # positions whose field comes this close to the border may be cut by it


def check_positions(text: str) -> int:
    """Compare every interior position of the last layer; return how many were compared."""
    network = parse_description(text, {}, Limits()).network
    costs = layer_costs(network)
    last = network.layers[-1].name
    _, height, width = costs[last].output_shape
    size_in = network.input_shape[1:]
    compared = 0
    for axis in (0, 1):
        measured = {o: (lo, hi) for o, lo, hi in gradient_extents(network, axis)}
        for o in range((height, width)[axis]):
            y, x = (o, width // 2) if axis == 0 else (height // 2, o)
            spans = position_spans(network, costs, last, y, x)
            if spans is None:  # reads no input: no gradient reaches it either
                assert o not in measured, (text, axis, o)
                continue
            span = spans[axis]
            if span.lo >= MARGIN and span.hi <= size_in[axis] - 1 - MARGIN:
                assert measured[o] == (span.lo, span.hi), (text, axis, o)
                compared += 1
    return compared


@given(rf_networks())
@settings(max_examples=25)
def test_each_output_position_reads_what_its_gradient_reaches(text: str) -> None:
    check_positions(text)


def test_neighbouring_outputs_of_a_dilated_transposed_convolution() -> None:
    """Output 24 of the pool reads transposed-conv outputs 24 and 25, which read inputs 8
    and 7: the span is 7 … 8 (an order that composing interval ends alone gets wrong)."""
    text = "input 1x48x48\nconv_transpose2d 1 k=3 s=3 d=2\navgpool2d 2 s=1"
    assert check_positions(text) > 40
    network = parse_description(text, {}, Limits()).network
    spans = position_spans(network, layer_costs(network), "avgpool2d_1", 24, 24)
    assert spans[0].lo == 7 and spans[0].hi == 8


def test_upsampled_outputs_alternate_between_two_fields() -> None:
    """After pooling and upsampling, neighbouring outputs read 4 and 2 input rows: each is
    drawn as it is, and the report's RF is the larger."""
    text = "input 1x64x64\navgpool2d 2\nupsample 2\nconv2d 1 k=2 p=1"
    assert check_positions(text) > 40
    network = parse_description(text, {}, Limits()).network
    costs = layer_costs(network)
    spans = [position_spans(network, costs, "conv2d_1", y, 0)[0] for y in (20, 21)]
    assert [(s.lo, s.hi) for s in spans] == [(18, 21), (20, 21)]
    assert convlens.analyze(text).layers[-1].rf[0] == 4


def test_the_examples_fields_agree_with_the_report() -> None:
    """For every layer of the examples: the largest field over a period of positions is
    the report's RF, output 0's centre its start, and a period on moves it by jump·period."""
    for path in sorted(EXAMPLES.rglob("*.cnn")):
        text = path.read_text()
        values = {"k": 3, "NF": 8, "NC": 4} if "colour" in path.name else {}
        network = parse_description(text, values, Limits()).network
        costs = layer_costs(network)
        for record in convlens.analyze(text, **values).layers:
            if len(record.output_shape) != 3:
                continue
            if record.rf_status == "whole input":
                assert position_spans(network, costs, record.name, 0, 0) == WHOLE_INPUT
                continue
            for axis in (0, 1):
                period = record.rf_period[axis]
                spans = [
                    position_spans(network, costs, record.name, *((o, 0) if axis == 0 else (0, o)))[
                        axis
                    ]
                    for o in range(2 * period)
                ]
                where = (path.name, record.name, axis)
                assert max(s.hi - s.lo + 1 for s in spans) == record.rf[axis], where
                assert Fraction(spans[0].lo + spans[0].hi, 2) == record.start[axis], where
                assert spans[period].lo - spans[0].lo == record.jump[axis] * period, where


def test_no_field_is_drawn_across_a_transpose_of_h_and_w() -> None:
    """The report says 'unavailable' after the spatial axes move; the page draws nothing
    there rather than the positions of the wrong axes (what it drew before)."""
    text = "input 1x12x12\nconv2d 1 k=(1,5)\nview (1,8,12) order=(0,2,1)\nconv2d 1 k=(1,3)"
    network = parse_description(text, {}, Limits()).network
    costs = layer_costs(network)
    assert position_spans(network, costs, "conv2d_1", 3, 3) is not None  # before: drawn
    for layer in ("view_1", "conv2d_2"):
        assert position_spans(network, costs, layer, 3, 3) is None
    assert convlens.analyze(text).layers[-1].rf_status == "unavailable"
