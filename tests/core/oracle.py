"""PyTorch as the oracle: measure a described network by building and running it."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from convlens.api import load_network
from convlens.core.records import Network, SampleShape
from convlens.torch.build import build_module


def network(text: str) -> Network:
    return load_network(text)


BATCH = 2


def traced_input(net: Network, batch: int = BATCH) -> tuple[int, ...]:
    """``input_size`` for tracing the module built from ``net``: one sample's shape with the
    batch in front (a ``SampleShape``, so a signal's (C, L) is not read as (C, H, W))."""
    return SampleShape(int(d) for d in net.input_shape)


def measure(net: Network, batch: int = BATCH) -> dict:
    """Shapes (of the output and of every layer), parameter and buffer counts and MACs
    from a real CPU forward."""
    torch.manual_seed(0)
    module = build_module(net).eval()
    x = torch.randn(batch, *[int(d) for d in net.input_shape])
    layer_shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):  # type: ignore[no-untyped-def]
        def hook(_module, _inputs, output) -> None:  # type: ignore[no-untyped-def]
            layer_shapes[name] = tuple(output.shape[1:])

        return hook

    # DescribedNetwork.layers holds one module per described layer, in the same order.
    hooks = [
        layer.register_forward_hook(record(spec.name))
        for spec, layer in zip(net.layers, module.layers.values(), strict=True)
    ]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = module(x)
    finally:
        for handle in hooks:
            handle.remove()
    return {
        "shape": tuple(out.shape[1:]),
        "layer_shapes": layer_shapes,
        "params": sum(p.numel() for p in module.parameters()),
        "buffers": sum(b.numel() for b in module.buffers()),
        "macs": counter.get_total_flops() // 2,
    }


def saved_activation_bytes(net: Network, batch: int = 2) -> int:
    """Unique storages (not parameters or buffers) autograd keeps in a training forward."""
    from tests.torch.saved import saved_bytes

    torch.manual_seed(0)
    module = build_module(net).train()
    return saved_bytes(module, torch.rand(batch, *[int(d) for d in net.input_shape]))


def gradient_extents(net: Network, axis: int) -> list[tuple[int, int, int]]:
    """(output position, first, last input position it depends on) along ``axis``,
    for the outputs on the middle line of the described network."""
    shape = tuple(int(d) for d in net.input_shape)
    return impulse_extents(build_module(net), shape, axis)  # type: ignore[arg-type]


def impulse_extents(
    model: torch.nn.Module, shape: tuple[int, ...], axis: int
) -> list[tuple[int, int, int]]:
    """The gradient method, batched: with positive weights, zero biases and BatchNorm as
    a positive scale, the gradient of an output with respect to the input is non-zero
    exactly where the response to an impulse is, so one forward over a batch of impulse
    planes (one per input position along spatial ``axis``) finds every output's
    dependencies. ``shape`` is one sample's, (C, L), (C, H, W) or (C, D, H, W); the
    outputs are read along ``axis`` through the middle of every other spatial axis."""
    import copy

    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(0.0 if name.endswith("bias") else 1.0)
        size = shape[1 + axis]
        planes = torch.zeros(size, *shape, dtype=torch.float64)
        for i in range(size):
            planes.select(2 + axis, i).select(0, i).fill_(1.0)
        out = model(planes) - model(torch.zeros(1, *shape, dtype=torch.float64))
    middle = out[:, 0]  # (impulse, *spatial outputs)
    for other in reversed(range(out.dim() - 2)):
        if other != axis:
            middle = middle.select(1 + other, middle.shape[1 + other] // 2)
    rows = []
    for o in range(middle.shape[1]):
        response = middle[:, o].abs()
        hit = (response > 1e-9 * response.max()).nonzero().flatten()
        if len(hit):  # e.g. a stride-3, 1×1 transposed conv leaves outputs with no input
            rows.append((o, int(hit.min()), int(hit.max())))
    return rows
