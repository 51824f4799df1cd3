"""Build a runnable ``nn.Module`` from a described ``Network``.

This is how tests hold the engine to PyTorch itself (shapes from a real forward,
parameters from ``numel``, MACs from ``FlopCounterMode``, receptive fields from
gradients, saved activations from ``saved_tensors_hooks``), and how a user turns
a sketch into code. Each kind maps to the module PyTorch users would write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from convlens.core.args import coerce_args
from convlens.core.numbers import is_numeric
from convlens.core.records import LayerSpec, Network
from convlens.core.registry import get_rule
from convlens.errors import ConvlensError


def _int(value: Any) -> int:
    if not is_numeric(value):
        raise ConvlensError(f"cannot build a module with symbolic size {value}: use --set")
    return int(value)


def _pair(value: Any) -> tuple[int, int]:
    return (_int(value[0]), _int(value[1]))


def _padded(module: nn.Module, pads: tuple) -> nn.Module:
    """Symmetric padding goes to the layer; asymmetric ('same', even kernel) to ZeroPad2d."""
    top, bottom, left, right = (_int(p) for p in pads)
    if top == bottom and left == right:
        return module
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), module)


def _conv(args: Mapping[str, Any], channels: int) -> nn.Module:
    if args["padding"] == "same":  # PyTorch's own 'same' (it refuses strided ones itself)
        return nn.Conv2d(
            channels,
            _int(args["out_channels"]),
            _pair(args["kernel_size"]),
            _pair(args["stride"]),
            "same",
            _pair(args["dilation"]),
            _int(args["groups"]),
            bias=args["bias"],
        )
    top, bottom, left, right = args["padding"]
    symmetric = top == bottom and left == right
    conv = nn.Conv2d(
        channels,
        _int(args["out_channels"]),
        _pair(args["kernel_size"]),
        _pair(args["stride"]),
        (_int(top), _int(left)) if symmetric else 0,
        _pair(args["dilation"]),
        _int(args["groups"]),
        bias=args["bias"],
    )
    return _padded(conv, args["padding"])


class SqueezeExcitation(nn.Module):
    """torchvision's SqueezeExcitation: pool → 1×1 conv → ReLU → 1×1 conv → sigmoid → scale."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class Crop(nn.Module):
    """x[..., top:top + height, left:left + width] (centred unless an offset is given)."""

    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__()
        self.box = (top, left, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left, height, width = self.box
        return x[..., top : top + height, left : left + width]


class Merge(nn.Module):
    def __init__(self, kind: str, dim: int = 1):
        super().__init__()
        self.kind, self.dim = kind, dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.kind == "concat":
            return torch.cat(xs, dim=self.dim)
        if self.kind == "stack":
            return torch.stack(xs, dim=self.dim)
        if self.kind == "matmul":
            return torch.matmul(xs[0], xs[1])
        out = xs[0]
        for x in xs[1:]:
            out = out * x if self.kind == "mul" else out + x
        return out


class Pad(nn.Module):
    def __init__(self, args: Mapping[str, Any]):
        super().__init__()
        given = args["pad"]
        self.pad = (given,) * 4 if isinstance(given, int) else tuple(_int(p) for p in given)
        self.mode, self.value = args["mode"], float(args["value"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, value=self.value)
        return F.pad(x, self.pad, mode=self.mode)


class Roll(nn.Module):
    def __init__(self, shifts: Any, dims: Any):
        super().__init__()
        self.shifts = tuple(shifts) if isinstance(shifts, tuple | list) else (shifts,)
        self.dims = tuple(dims) if isinstance(dims, tuple | list) else (dims,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, self.shifts, self.dims)


class Narrow(nn.Module):
    """x.narrow(dim, start, length), or x.select(dim, start) when the axis is dropped."""

    def __init__(self, dim: int, start: int, length: int, keepdim: bool):
        super().__init__()
        self.dim, self.start, self.length, self.keepdim = dim, start, length, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keepdim:
            return x.narrow(self.dim, self.start, self.length)
        return x.select(self.dim, self.start)


class _HeldTensor(nn.Module):
    """A module holding one tensor the way ``kind`` says: a parameter, a buffer, or a plain
    attribute (a constant, which the model does not own)."""

    def __init__(self, value: torch.Tensor, kind: str):
        super().__init__()
        if kind == "parameter":
            self.weight = nn.Parameter(value)
        elif kind == "buffer":
            self.register_buffer("weight", value)
        else:
            self.constant = value

    def held(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight if hasattr(self, "weight") else self.constant.to(x.device)


class ConcatTensor(nn.Module):
    """``torch.cat((*before, x, *after), dim)`` with fixed tensors of one sample's shape
    expanded over the batch, as ViT's class token is (``cls.expand(N, -1, -1)``)."""

    def __init__(self, args: Mapping[str, Any], shape: tuple):
        super().__init__()
        self.dim = _int(args["dim"])
        axis = self.dim - 1

        def part(size: Any) -> nn.Module:
            sample = (*shape[:axis], _int(size), *shape[axis + 1 :])
            return _HeldTensor(torch.randn(1, *sample), args["weight_kind"])

        sizes = {k: v if isinstance(v, tuple | list) else (v,) for k, v in args.items()}
        self.before = nn.ModuleList(part(s) for s in sizes["before"])
        self.after = nn.ModuleList(part(s) for s in sizes["after"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def expand(held: nn.Module) -> torch.Tensor:
            # before/after hold only the _HeldTensor parts __init__ made
            tensor = cast(_HeldTensor, held).held(x)
            return tensor.expand(x.shape[0], *tensor.shape[1:])

        parts = [*map(expand, self.before), x, *map(expand, self.after)]
        return torch.cat(parts, dim=self.dim)


class WeightMatmul(_HeldTensor):
    """x @ weight (or weight @ x) with a parameter, a buffer or a plain constant."""

    def __init__(self, shape: tuple[int, ...], first: bool, kind: str):
        super().__init__(torch.randn(shape) / max(shape[-1], 1) ** 0.5, kind)
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.held(x)
        return torch.matmul(weight, x) if self.first else torch.matmul(x, weight)


_BINARY_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
}


class WeightOp(_HeldTensor):
    """x ∘ weight (or weight ∘ x) for ∘ in + − · / with a parameter, a buffer or a constant."""

    def __init__(self, op: str, shape: tuple[int, ...], first: bool, kind: str):
        super().__init__(torch.rand(shape) + 0.5, kind)  # away from 0: a divisor
        self.op, self.first = op, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.held(x)
        a, b = (weight, x) if self.first else (x, weight)
        return _BINARY_OPS[self.op](a, b)


class Reduce(nn.Module):
    def __init__(self, op: str, dim: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.op, self.dim, self.keepdim = op, dim, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduce = torch.sum if self.op == "sum" else torch.mean
        return reduce(x, dim=self.dim, keepdim=self.keepdim)


class Attention(nn.Module):
    """F.scaled_dot_product_attention with a fixed mask (a buffer or a plain tensor)."""

    def __init__(self, args: Mapping[str, Any]):
        super().__init__()
        self.causal, self.dropout_p, self.flash = (
            args["is_causal"],
            float(args["dropout_p"]),
            args["flash"],
        )
        mask = None
        if args["attn_mask"] is not None:
            shape = tuple(_int(d) for d in args["attn_mask"])
            mask = torch.rand(shape) > 0.3 if args["mask_dtype"] == "bool" else torch.randn(shape)
            if mask.dtype == torch.bool:  # a row of False only would give NaN
                mask[..., 0] = True
        if args["mask_is_buffer"]:
            self.register_buffer("mask", mask)
        else:
            self.mask = mask

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = [SDPBackend.MATH] + ([SDPBackend.FLASH_ATTENTION] if self.flash else [])
        with sdpa_kernel(backends):
            mask = None if self.mask is None else self.mask.to(q.device)  # a plain tensor
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout_p, is_causal=self.causal
            )


def _batchnorm(args: Mapping[str, Any], shape: tuple, dims: int) -> nn.Module:
    """nn.BatchNorm1d/2d; with ``training=false`` one that stays in eval mode when the
    model trains (frozen BatchNorm, as fine-tuning keeps it); a channel axis other than 1
    (``dim``) normalised as LeViT does, ``bn(x.flatten(0, 1)).reshape_as(x)``."""
    dim = int(args.get("dim", 1))
    channels = _int(shape[dim - 1])
    cls: type[nn.Module] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    if not args["training"]:
        cls = type(f"Frozen{cls.__name__}", (cls,), {"train": _stay_in_eval})
    bn = cls(channels, args["eps"], args["momentum"], args["affine"], args["track_running_stats"])
    if not args["training"]:
        bn.eval()
    return bn if dim == 1 else ChannelsLast(bn, dim)


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


class ChannelsLast(nn.Module):
    """A BatchNorm over axis ``dim`` of each sample: that axis moved last, every other
    one merged with the batch (LeViT's ``bn(x.flatten(0, 1)).reshape_as(x)``)."""

    def __init__(self, bn: nn.Module, dim: int):
        super().__init__()
        self.bn, self.dim = bn, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(self.dim, -1)
        return self.bn(y.reshape(-1, y.shape[-1])).reshape(y.shape).movedim(-1, self.dim)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


class View(nn.Module):
    def __init__(self, shape: tuple[int, ...], copies: bool = False):
        super().__init__()
        self.shape, self.copies = shape, copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(x.shape[0], *self.shape)
        return y.clone() if self.copies else y


class ScalarOp(nn.Module):
    """x · a with a constant a: one operation per element, as the rule counts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5


class Upsample(nn.Module):
    def __init__(self, scale: float, mode: str, align_corners: bool):
        super().__init__()
        self.scale, self.mode = scale, mode
        self.align_corners = align_corners if mode in ("linear", "bilinear", "trilinear") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale, mode=self.mode, align_corners=self.align_corners
        )


def _stride(args: Mapping[str, Any]) -> tuple[int, int]:
    return _pair(args["stride"] if args["stride"] is not None else args["kernel_size"])


# -- 1-D and 3-D layers: the Nd module of PyTorch for a (C, L) signal or a (C, D, H, W)
# volume; the 2-D builders above stay as they were.
_ModuleClass = Callable[..., nn.Module]
_CONV: dict[int, _ModuleClass] = {1: nn.Conv1d, 3: nn.Conv3d}
_CONV_TRANSPOSE: dict[int, _ModuleClass] = {1: nn.ConvTranspose1d, 3: nn.ConvTranspose3d}
_MAXPOOL: dict[int, _ModuleClass] = {1: nn.MaxPool1d, 3: nn.MaxPool3d}
_AVGPOOL: dict[int, _ModuleClass] = {1: nn.AvgPool1d, 3: nn.AvgPool3d}
_ADAPTIVE: dict[int, _ModuleClass] = {
    1: nn.AdaptiveAvgPool1d,
    2: nn.AdaptiveAvgPool2d,
    3: nn.AdaptiveAvgPool3d,
}


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(_int(v) for v in values)


class ZeroPad(nn.Module):
    """Zeros before and after each spatial axis, ``pads`` as (before, after) per axis."""

    def __init__(self, pads: tuple[int, ...]):
        super().__init__()
        pairs = [pads[i : i + 2] for i in range(0, len(pads), 2)]
        self.pad = tuple(p for pair in reversed(pairs) for p in pair)  # last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


def _conv_nd(args: Mapping[str, Any], channels: int, axes: int) -> nn.Module:
    """nn.Conv1d/3d; asymmetric padding (as 'same' with an even kernel) padded first."""
    padding = args["padding"]
    pads = None if padding == "same" else _ints(padding)
    symmetric = pads is not None and all(pads[i] == pads[i + 1] for i in range(0, len(pads), 2))
    conv = _CONV[axes](
        channels,
        _int(args["out_channels"]),
        _ints(args["kernel_size"]),
        _ints(args["stride"]),
        "same" if pads is None else (pads[::2] if symmetric else 0),
        _ints(args["dilation"]),
        _int(args["groups"]),
        bias=args["bias"],
    )
    return conv if pads is None or symmetric else nn.Sequential(ZeroPad(pads), conv)


def _conv_transpose_nd(args: Mapping[str, Any], channels: int, axes: int) -> nn.Module:
    return _CONV_TRANSPOSE[axes](
        channels,
        _int(args["out_channels"]),
        _ints(args["kernel_size"]),
        _ints(args["stride"]),
        _ints(args["padding"]),
        _ints(args["output_padding"]),
        _int(args["groups"]),
        args["bias"],
        _ints(args["dilation"]),
    )


def _pool_stride(args: Mapping[str, Any]) -> tuple[int, ...]:
    return _ints(args["stride"] if args["stride"] is not None else args["kernel_size"])


def _maxpool_nd(args: Mapping[str, Any], axes: int) -> nn.Module:
    return _MAXPOOL[axes](
        _ints(args["kernel_size"]),
        _pool_stride(args),
        _ints(args["padding"]),
        _ints(args["dilation"]),
        ceil_mode=args["ceil_mode"],
    )


def _avgpool_nd(args: Mapping[str, Any], axes: int) -> nn.Module:
    return _AVGPOOL[axes](
        _ints(args["kernel_size"]),
        _pool_stride(args),
        _ints(args["padding"]),
        ceil_mode=args["ceil_mode"],
        count_include_pad=args["count_include_pad"],
    )


def _upsample_nd(args: Mapping[str, Any]) -> nn.Module:
    if args["size"] is None:
        return Upsample(float(args["scale_factor"]), args["mode"], args["align_corners"])
    return nn.Upsample(
        size=_ints(args["size"]), mode=args["mode"], align_corners=args["align_corners"] or None
    )


N_DIMENSIONAL: dict[str, Callable[[Mapping[str, Any], tuple], nn.Module]] = {
    "conv1d": lambda a, s: _conv_nd(a, _int(s[0]), 1),
    "conv3d": lambda a, s: _conv_nd(a, _int(s[0]), 3),
    "conv_transpose1d": lambda a, s: _conv_transpose_nd(a, _int(s[0]), 1),
    "conv_transpose3d": lambda a, s: _conv_transpose_nd(a, _int(s[0]), 3),
    "maxpool1d": lambda a, s: _maxpool_nd(a, 1),
    "maxpool3d": lambda a, s: _maxpool_nd(a, 3),
    "avgpool1d": lambda a, s: _avgpool_nd(a, 1),
    "avgpool3d": lambda a, s: _avgpool_nd(a, 3),
    "adaptive_avgpool1d": lambda a, s: nn.AdaptiveAvgPool1d(_ints(a["output_size"])),
    "adaptive_avgpool3d": lambda a, s: nn.AdaptiveAvgPool3d(_ints(a["output_size"])),
    "batchnorm3d": lambda a, s: _batchnorm(a, s, 3),
    "upsample1d": lambda a, s: _upsample_nd(a),
    "upsample3d": lambda a, s: _upsample_nd(a),
}


def _global_avgpool(args: Mapping[str, Any], shape: tuple) -> nn.Module:
    """nn.AdaptiveAvgPool1d/2d/3d(1) for a signal, an image or a volume."""
    return _ADAPTIVE.get(len(shape) - 1, nn.AdaptiveAvgPool2d)(1)


_Factory = Callable[[Mapping[str, Any], tuple], nn.Module]

FACTORIES: dict[str, _Factory] = {
    "conv2d": lambda a, s: _conv(a, _int(s[0])),
    "depthwise": lambda a, s: _conv(
        {**a, "out_channels": _int(s[0]) * _int(a["multiplier"]), "groups": _int(s[0])}, _int(s[0])
    ),
    "conv_transpose2d": lambda a, s: nn.ConvTranspose2d(
        _int(s[0]),
        _int(a["out_channels"]),
        _pair(a["kernel_size"]),
        _pair(a["stride"]),
        _pair(a["padding"]),
        _pair(a["output_padding"]),
        _int(a["groups"]),
        a["bias"],
        _pair(a["dilation"]),
    ),
    "maxpool2d": lambda a, s: nn.MaxPool2d(
        _pair(a["kernel_size"]),
        _stride(a),
        _pair(a["padding"]),
        _pair(a["dilation"]),
        ceil_mode=a["ceil_mode"],
    ),
    "avgpool2d": lambda a, s: nn.AvgPool2d(
        _pair(a["kernel_size"]),
        _stride(a),
        _pair(a["padding"]),
        ceil_mode=a["ceil_mode"],
        count_include_pad=a["count_include_pad"],
    ),
    "global_avgpool": _global_avgpool,
    "adaptive_avgpool2d": lambda a, s: nn.AdaptiveAvgPool2d(_pair(a["output_size"])),
    "batchnorm2d": lambda a, s: _batchnorm(a, s, 2),
    "batchnorm1d": lambda a, s: _batchnorm(a, s, 1),
    "relu": lambda a, s: nn.ReLU(),
    "relu6": lambda a, s: nn.ReLU6(),
    "leaky_relu": lambda a, s: nn.LeakyReLU(float(a["negative_slope"])),
    "elu": lambda a, s: nn.ELU(float(a["alpha"])),
    "sigmoid": lambda a, s: nn.Sigmoid(),
    "tanh": lambda a, s: nn.Tanh(),
    "gelu": lambda a, s: nn.GELU(),
    "silu": lambda a, s: nn.SiLU(),
    "hardswish": lambda a, s: nn.Hardswish(),
    "hardsigmoid": lambda a, s: nn.Hardsigmoid(),
    "softmax": lambda a, s: nn.Softmax(dim=_int(a["dim"])),
    "identity": lambda a, s: nn.Identity(),
    "dropout": lambda a, s: (
        {2: nn.Dropout1d, 3: nn.Dropout2d, 4: nn.Dropout3d}.get(len(s), nn.Dropout1d)(float(a["p"]))
        if a["channelwise"]
        else nn.Dropout(float(a["p"]))
    ),
    "flatten": lambda a, s: Flatten(),
    "linear": lambda a, s: nn.Linear(_int(s[-1]), _int(a["out_features"]), a["bias"]),
    "upsample": lambda a, s: (
        Upsample(float(a["scale_factor"]), a["mode"], a["align_corners"])
        if a["size"] is None
        else nn.Upsample(
            size=_pair(a["size"]), mode=a["mode"], align_corners=a["align_corners"] or None
        )
    ),
    "se": lambda a, s: SqueezeExcitation(_int(s[0]), _int(s[0]) // _int(a["r"])),
    "view": lambda a, s: View(tuple(_int(d) for d in a["shape"]), a["copies"]),
    "layer_norm": lambda a, s: nn.LayerNorm(
        tuple(_int(d) for d in a["normalized_shape"]), a["eps"], a["elementwise_affine"], a["bias"]
    ),
    "group_norm": lambda a, s: nn.GroupNorm(
        _int(a["num_groups"]), _int(s[0]), a["eps"], a["affine"]
    ),
    "matmul": lambda a, s: (
        Merge("matmul")
        if a["weight"] is None
        else WeightMatmul(tuple(_int(d) for d in a["weight"]), a["weight_first"], a["weight_kind"])
    ),
    "attention": lambda a, s: Attention(a),
    "narrow": lambda a, s: Narrow(
        _int(a["dim"]), _int(a["start"]), _int(a["length"]), a["keepdim"]
    ),
    "mul": lambda a, s: Merge("mul"),
    "tensor_op": lambda a, s: WeightOp(
        a["op"], tuple(_int(d) for d in a["weight"]), a["weight_first"], a["weight_kind"]
    ),
    "reduce": lambda a, s: Reduce(
        a["op"],
        tuple(_int(d) for d in (a["dim"] if isinstance(a["dim"], tuple | list) else (a["dim"],))),
        a["keepdim"],
    ),
    "scalar_op": lambda a, s: ScalarOp(),
    "add": lambda a, s: Merge("add"),
    "concat": lambda a, s: Merge("concat", _int(a["dim"])),
    "stack": lambda a, s: Merge("stack", _int(a["dim"])),
    "concat_tensor": lambda a, s: ConcatTensor(a, s),
    "pad": lambda a, s: Pad(a),
    "roll": lambda a, s: Roll(a["shifts"], a["dims"]),
    **N_DIMENSIONAL,
}


@runtime_checkable
class _HasInplace(Protocol):
    """A module that can run in place (``nn.ReLU(inplace=True)``, ``nn.Dropout``)."""

    inplace: bool


class DescribedNetwork(nn.Module):
    """Runs the layers of a ``Network`` in order; ``layers[name]`` is each module.

    Shapes between layers come from PyTorch itself (a forward on the meta device),
    never from convlens's rules, so the module can serve as an independent oracle.
    """

    def __init__(self, network: Network):
        super().__init__()
        self.network = network
        self.layers = nn.ModuleDict()
        meta = {network.input_name: torch.empty(1, *map(_int, network.input_shape), device="meta")}
        for spec in network.layers:
            args = coerce_args(spec.kind, get_rule(spec.kind).schema, spec.args)
            if args.get("like"):
                args = {**args, "size": tuple(meta[args["like"]].shape[2:4])}
            module = self._module(spec, args, tuple(meta[spec.inputs[0]].shape[1:]))
            if spec.inplace and isinstance(module, _HasInplace):
                module.inplace = True
            self.layers[_key(spec.name)] = module
            # eval: a BatchNorm on a 1×1 map with batch 1 is fine for a shape pass
            meta[spec.name] = module.to("meta").eval()(*(meta[i] for i in spec.inputs))
            module = self._module(spec, args, tuple(meta[spec.inputs[0]].shape[1:]))
            if spec.inplace and isinstance(module, _HasInplace):
                module.inplace = True
            if spec.frozen:
                module.requires_grad_(False)
            self.layers[_key(spec.name)] = module

    @staticmethod
    def _module(spec: LayerSpec, args: Mapping[str, Any], shape: tuple) -> nn.Module:
        if spec.kind == "crop":  # the rule's offsets: the given ones, or ⌊(I − O)/2⌋
            _c, h, w = shape
            oh, ow = (_int(v) for v in args["size"])
            top, left = (
                ((h - oh) // 2, (w - ow) // 2)
                if args["offset"] is None
                else (_pair(args["offset"]))
            )
            return Crop(top, left, oh, ow)
        factory = FACTORIES.get(spec.kind)
        if factory is None:
            raise ConvlensError(f"no PyTorch module for layer kind '{spec.kind}'")
        return factory(args, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {self.network.input_name: x}
        name = self.network.input_name
        for spec in self.network.layers:
            name = spec.name
            outputs[name] = self.layers[_key(name)](*(outputs[i] for i in spec.inputs))
        return outputs[name]


def _key(name: str) -> str:
    return name.replace(".", "__")


def build_module(network: Network) -> DescribedNetwork:
    return DescribedNetwork(network)
