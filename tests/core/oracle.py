"""PyTorch as the oracle: measure a described network by building and running it."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from convlens.api import load_network
from convlens.core.records import Network
from convlens.torch.build import build_module


def network(text: str) -> Network:
    return load_network(text)


BATCH = 2


def measure(net: Network, batch: int = BATCH) -> dict:
    """Shapes, parameter and buffer counts and MACs from a real CPU forward."""
    torch.manual_seed(0)
    module = build_module(net).eval()
    x = torch.randn(batch, *[int(d) for d in net.input_shape])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(x)
    return {
        "shape": tuple(out.shape[1:]),
        "params": sum(p.numel() for p in module.parameters()),
        "buffers": sum(b.numel() for b in module.buffers()),
        "macs": counter.get_total_flops() // 2,
    }


def saved_activation_bytes(net: Network, batch: int = 2) -> int:
    """Unique storages (not parameters or buffers) autograd keeps in a training forward."""
    torch.manual_seed(0)
    module = build_module(net).train()
    owned = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in owned and storage.nbytes() > 0:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.rand(batch, *[int(d) for d in net.input_shape])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


def gradient_extents(net: Network, axis: int) -> list[tuple[int, int, int]]:
    """(output position, first, last input position it depends on) along ``axis``.

    The test networks are linear (convolutions, average pooling, upsampling, crops,
    joins) with positive weights and zero biases, so the gradient of an output with
    respect to the input equals the network's response to input impulses: one batched
    forward, each sample lighting one whole input line across ``axis``, gives the
    gradient of every output on the middle line at once.
    """
    module = build_module(net).double().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.fill_(0.0 if name.endswith("bias") else 1.0)
        c, h, w = (int(d) for d in net.input_shape)
        size = (h, w)[axis]
        impulses = torch.zeros(size, c, h, w, dtype=torch.float64)
        for i in range(size):
            if axis == 0:
                impulses[i, :, i, :] = 1.0
            else:
                impulses[i, :, :, i] = 1.0
        out = module(impulses)  # (size, C_out, H_out, W_out)
    lines = out[:, 0, :, out.shape[3] // 2] if axis == 0 else out[:, 0, out.shape[2] // 2, :]
    rows = []
    for o in range(lines.shape[1]):
        response = lines[:, o]
        nonzero = (response > 1e-9 * response.max()).nonzero().flatten()
        if response.max() <= 0 or len(nonzero) == 0:
            continue  # e.g. a stride-3, 1×1 transposed conv leaves outputs with no input
        rows.append((o, int(nonzero.min()), int(nonzero.max())))
    return rows
