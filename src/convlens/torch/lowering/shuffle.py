"""Channel and sub-pixel shuffles in PyTorch: pixel_shuffle, pixel_unshuffle,
channel_shuffle (rules: core/rules/shuffle.py).

The handlers take the batched (N, C, H, W) map the rules describe (N, C, … for
channel_shuffle); any other rank, or a batch elsewhere, falls back to PyTorch's meta
kernel (an ``opaque`` row), as an unknown operation does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn
from torch.nn import functional as F

from convlens.torch.lowering.common import described, signal_or_volume, whole
from convlens.torch.registry import Choices, arg, calls, handles, lowering
from convlens.torch.shape_tensor import ShapeTensor

if TYPE_CHECKING:
    from convlens.torch.tracer import Tracer


def _shuffled(t: Tracer, kind: str, name: str, args: tuple, kwargs: dict, ranks: range) -> Any:
    """One row of ``kind`` for a call ``f(input, factor)`` whose factor PyTorch calls
    ``name``; the rule refuses a factor that does not fit the input, naming the module."""
    x = args[0] if args else kwargs.get("input", kwargs.get("self"))
    factor = arg(args, kwargs, 1, name)
    if not isinstance(x, ShapeTensor) or x.dim() not in ranks or type(factor) is not int:
        return NotImplemented
    return t.record(kind, {name: factor}, [x])


@handles(F.pixel_shuffle)  # (torch.pixel_shuffle is the same function)
def trace_pixel_shuffle(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _shuffled(t, "pixel_shuffle", "upscale_factor", args, kwargs, range(4, 5))


@handles(F.pixel_unshuffle)  # (torch.pixel_unshuffle is the same function)
def trace_pixel_unshuffle(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _shuffled(t, "pixel_unshuffle", "downscale_factor", args, kwargs, range(4, 5))


@handles(F.channel_shuffle)  # (torch.channel_shuffle is the same function)
def trace_channel_shuffle(t: Tracer, args: tuple, kwargs: dict) -> Any:
    return _shuffled(t, "channel_shuffle", "groups", args, kwargs, range(3, 6))


def _channels(pick: Choices, multiple: int) -> int:
    """Mostly a multiple of ``multiple``; sometimes any count, which PyTorch and the rule
    must refuse alike when it is not one."""
    if pick.integer(0, 4) == 0:
        return pick.integer(1, 2 * multiple)
    return multiple * pick.integer(1, 3)


def pixel_shuffle_examples(pick: Choices) -> str:
    r = pick.integer(1, 3)
    shape = (_channels(pick, r * r), pick.integer(1, 8), pick.integer(1, 8))
    return described(shape, f"pixel_shuffle {r}")


def pixel_unshuffle_examples(pick: Choices) -> str:
    r = pick.integer(1, 3)
    exact = pick.integer(0, 4) != 0  # else sizes r may not divide
    h, w = (
        (r * pick.integer(1, 6), r * pick.integer(1, 6))
        if exact
        else (pick.integer(1, 12), pick.integer(1, 12))
    )
    return described((pick.integer(1, 3), h, w), f"pixel_unshuffle {r}")


def channel_shuffle_examples(pick: Choices) -> str:
    groups = pick.integer(1, 4)
    channels = _channels(pick, groups)
    axes = pick.choice([1, 2, 2, 3])  # a signal, an image (most often) or a volume
    shape = (
        (channels, pick.integer(1, 8), pick.integer(1, 8))
        if axes == 2
        else signal_or_volume(pick, axes, channels)
    )
    return described(shape, f"channel_shuffle {groups}")


lowering(
    "pixel_shuffle",
    traced_by=[trace_pixel_shuffle],
    build=lambda a, s: nn.PixelShuffle(whole(a["upscale_factor"])),
    examples=pixel_shuffle_examples,
)
lowering(
    "pixel_unshuffle",
    traced_by=[trace_pixel_unshuffle],
    build=lambda a, s: nn.PixelUnshuffle(whole(a["downscale_factor"])),
    examples=pixel_unshuffle_examples,
)
lowering(
    "channel_shuffle",
    traced_by=[trace_channel_shuffle],
    build=lambda a, s: nn.ChannelShuffle(whole(a["groups"])),
    examples=channel_shuffle_examples,
)


# -- stock modules' one call (``registry.calls``) ------------------------------------------
calls(nn.PixelShuffle, how=lambda m, x: (F.pixel_shuffle, (x, m.upscale_factor), {}))
calls(nn.PixelUnshuffle, how=lambda m, x: (F.pixel_unshuffle, (x, m.downscale_factor), {}))
calls(nn.ChannelShuffle, how=lambda m, x: (F.channel_shuffle, (x, m.groups), {}))
