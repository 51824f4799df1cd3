"""Padding and cyclic shifts in PyTorch: pad, roll (rules: core/rules/pad.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from convlens.torch.batch_axis import STANDARD
from convlens.torch.lowering.common import described, feature_map, whole
from convlens.torch.registry import Choices, arg, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


# -- pad ----------------------------------------------------------------------------------
def _sample_pads(
    t: Tracer, x: Any, pad: tuple[int, ...], trim: bool = True
) -> tuple[int, ...] | None:
    """F.pad's pads (last axis first) for one sample: the batch's axis must not be padded;
    its pair is dropped where the batch is the whole axis. ``trim`` drops trailing (0, 0)
    pairs, which only constant padding may: in the other modes the number of pairs says
    which axes PyTorch pads (and which shapes it accepts)."""
    layout = t.batch_axis(x)
    if layout is None or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]  # last axis first
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(pairs):
        if x.dim() - 1 - i == layout.axis:
            if pair != (0, 0):
                return None  # padding the batch
            if not layout.merged:
                continue
        out.append(pair)
    while trim and out and out[-1] == (0, 0) and len(out) > 1:
        out.pop()  # trailing unpadded axes need no entry
    return tuple(v for pair in out for v in pair)


@handles(F.pad, torch._C._nn.pad, any_layout=True)
def trace_pad(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """F.pad in every mode (timm's TensorFlow-style "same" padding, Swin's window padding,
    nn.ZeroPad2d); the shape comes from the rule, never from a meta kernel (whose first use
    imports PyTorch's decompositions)."""
    x, pad = args[0] if args else kwargs.get("input"), arg(args, kwargs, 1, "pad")
    mode, value = arg(args, kwargs, 2, "mode", "constant"), arg(args, kwargs, 3, "value")
    return _padded(t, x, pad, mode, value)


@handles(torch.constant_pad_nd, any_layout=True)
def trace_constant_pad_nd(t: Tracer, args: tuple, kwargs: dict) -> Any:
    x, pad = args[0] if args else kwargs.get("input"), arg(args, kwargs, 1, "pad")
    return _padded(t, x, pad, "constant", arg(args, kwargs, 2, "value"))


def _padded(t: Tracer, x: Any, pad: Any, mode: Any, value: Any) -> Any:
    if not isinstance(x, ShapeTensor) or not isinstance(pad, list | tuple):
        return NotImplemented
    pads = tuple(int(p) for p in pad)
    if mode != "constant" and (
        t.batch_axis(x) != STANDARD or not 1 <= len(pads) // 2 <= 3 or len(pads) % 2
    ):
        return NotImplemented  # PyTorch's own rules for these modes: from its kernel
    sample = _sample_pads(t, x, pads, trim=mode == "constant")
    if sample is None:
        return NotImplemented
    spec = {"pad": sample, "mode": mode, "value": float(value or 0.0)}
    return t.record("pad", spec, [x], layout=t.batched_layout(x))


class Pad(nn.Module):
    def __init__(self, args: Mapping[str, Any]):
        super().__init__()
        given = args["pad"]
        self.pad = (given,) * 4 if isinstance(given, int) else tuple(whole(p) for p in given)
        self.mode, self.value = args["mode"], float(args["value"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, value=self.value)
        return F.pad(x, self.pad, mode=self.mode)


def pad_examples(pick: Choices) -> str:
    mode = pick.choice(["constant", "reflect", "replicate", "circular"])
    # (circular crops: PyTorch fails or reads past the tensor, depending on the tensor —
    # convlens refuses what is not a crop then a wrap; tests/core/test_pad_modes.py)
    low = 0 if mode == "circular" else -2
    pads = ",".join(str(pick.integer(low, 3)) for _ in range(2 * pick.integer(1, 3)))
    line = pick.choice([f"pad ({pads}) mode={mode}", f"pad {pick.integer(0, 2)}"])
    return described(feature_map(pick), line)


lowering(
    "pad",
    traced_by=[trace_pad, trace_constant_pad_nd],
    build=lambda a, s: Pad(a),
    examples=pad_examples,
)


# -- roll ---------------------------------------------------------------------------------
@handles(torch.roll, torch.Tensor.roll, any_layout=True)
def trace_roll(t: Tracer, args: tuple, kwargs: dict) -> Any:
    """torch.roll along axes other than the batch's (Swin's shifted windows)."""
    x = args[0] if args else kwargs.get("input")
    shifts, dims = arg(args, kwargs, 1, "shifts"), arg(args, kwargs, 2, "dims")
    if not isinstance(x, ShapeTensor) or dims is None:
        return NotImplemented  # without dims the flattened tensor rolls across samples
    shifts = tuple(shifts) if isinstance(shifts, list | tuple) else (shifts,)
    dims = tuple(dims) if isinstance(dims, list | tuple) else (dims,)
    axes = [t.sample_axis(x, d) for d in dims]
    if None in axes or len(shifts) != len(dims):
        return NotImplemented
    spec = {"shifts": tuple(int(s) for s in shifts), "dims": tuple(axes)}
    return t.record("roll", spec, [x], layout=t.batched_layout(x))


class Roll(nn.Module):
    def __init__(self, shifts: Any, dims: Any):
        super().__init__()
        self.shifts = tuple(shifts) if isinstance(shifts, tuple | list) else (shifts,)
        self.dims = tuple(dims) if isinstance(dims, tuple | list) else (dims,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, self.shifts, self.dims)


def roll_examples(pick: Choices) -> str:
    dims = pick.choice(["1", "2", "3", "(2,3)", "(1,3)"])
    shifts = "1" if "," not in dims else f"(1,{pick.integer(-3, 3)})"
    return described(feature_map(pick), f"roll {shifts} dims={dims}")


lowering(
    "roll",
    traced_by=[trace_roll],
    build=lambda a, s: Roll(a["shifts"], a["dims"]),
    examples=roll_examples,
)
