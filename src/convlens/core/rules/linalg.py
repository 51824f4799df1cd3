"""Layer and group normalisation, matrix products and attention (transformer-style blocks).

What autograd keeps was measured on torch 2.13 (CPU): layer_norm and group_norm keep
their input plus a float32 mean and 1/std per normalised group; matmul keeps both
operands; scaled-dot-product attention keeps what its kernel needs, and PyTorch picks
the kernel at run time: convlens counts the math path (a scaled copy of q, k, the
attention weights and v), which is what the modules in the tests used, and every
attention row carries a warning saying so (the flash kernel keeps q, k, v, the output and
one log-sum-exp per query row instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import known_divides, known_equal, normalize, product
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape
from convlens.core.steps import step

LAYER_NORM = Schema((
    Arg("normalized_shape", "names", positional=True, help="trailing axes to normalise"),
    Arg("eps", "float", 1e-5, help="added to the variance"),
    Arg("elementwise_affine", "bool", True, help="learn a scale and a shift per element"),
    Arg("bias", "bool", True, help="learn the shift (with elementwise_affine)"),
))


@register_rule("layer_norm", LAYER_NORM, "layer normalisation over the trailing axes "
               "(nn.LayerNorm)", has_weights=True)
def layer_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, normalized = tuple(inputs[0]), tuple(args["normalized_shape"])
    if len(normalized) > len(shape) or any(known_equal(a, b) is False for a, b in
                                           zip(shape[-len(normalized):], normalized,
                                               strict=True)):
        raise RuleError(f"layer_norm over {fmt_shape(normalized)} does not match the trailing "
                        f"axes of the input {fmt_shape(shape)}")
    size = product(normalized)
    affine = args["elementwise_affine"]
    params = normalize(size * (1 + (1 if args["bias"] else 0))) if affine else 0
    n, rows = elements(shape), product(shape[:len(shape) - len(normalized)])
    work = normalize(5 * n + (2 * n if affine else 0))
    return Cost(
        output_shape=shape, params=params, other_flops=work,
        saves=(Saved("input"), Saved("extra", elements=normalize(2 * rows), itemsize=4)),
        steps=(step("params", "parameters", "params", "2·{D}" if affine and args["bias"]
                    else ("{D}" if affine else "0"), {"D": size}, params),
               step("flops", "normalisation FLOPs", "FLOPs", "{k}·{N}",
                    {"k": 7 if affine else 5, "N": n}, work,
                    note="mean and variance 3, normalise 2, scale and shift 2 per element")),
        args=dict(args))


GROUP_NORM = Schema((
    Arg("num_groups", "int", positional=True, help="channel groups normalised together"),
    Arg("eps", "float", 1e-5, help="added to the variance"),
    Arg("affine", "bool", True, help="learn a scale and a shift per channel"),
))


@register_rule("group_norm", GROUP_NORM, "group normalisation (nn.GroupNorm)",
               has_weights=True)
def group_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, groups = tuple(inputs[0]), args["num_groups"]
    if known_divides(groups, shape[0]) is False:
        raise RuleError(f"num_groups={groups} must divide the channels ({shape[0]})")
    params = normalize(2 * shape[0]) if args["affine"] else 0
    n = elements(shape)
    work = normalize(5 * n + (2 * n if args["affine"] else 0))
    return Cost(
        output_shape=shape, params=params, other_flops=work,
        saves=(Saved("input"), Saved("extra", elements=normalize(2 * groups), itemsize=4)),
        steps=(step("params", "parameters", "params", "2·{C}" if args["affine"] else "0",
                    {"C": shape[0]}, params),),
        args=dict(args))


def _batch(kind: str, a: Shape, b: Shape) -> Shape:
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            raise RuleError(f"{kind} cannot broadcast the batch axes of {fmt_shape(a)} and "
                            f"{fmt_shape(b)}")
        out.append(y if x == 1 else x)
    return tuple(out)


@register_rule("matmul", Schema(), "matrix product of two outputs (torch.matmul, @)", inputs=2)
def matmul(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    a, b = tuple(inputs[0]), tuple(inputs[1])
    if len(a) < 2 or len(b) < 2 or known_equal(a[-1], b[-2]) is False:
        raise RuleError(f"matmul needs (…, n, k) @ (…, k, m); got {fmt_shape(a)} and "
                        f"{fmt_shape(b)}")
    batch = _batch("matmul", a[:-2], b[:-2])
    n, k, m = a[-2], a[-1], b[-1]
    macs = normalize(product(batch) * n * k * m)
    return Cost(output_shape=(*batch, n, m), macs=macs,
                saves=(Saved("input", index=0), Saved("input", index=1)),
                steps=(step("macs", "multiply-accumulates", "MACs", "{B}·{n}·{k}·{m}",
                            {"B": product(batch), "n": n, "k": k, "m": m}, macs),))


@register_rule("attention", Schema(), "scaled dot-product attention softmax(QKᵀ/√d)·V "
               "(F.scaled_dot_product_attention, no mask, no dropout)", inputs=3)
def attention(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    q, k, v = (tuple(s) for s in inputs)
    if len(q) < 2 or known_equal(q[-1], k[-1]) is False or known_equal(k[-2], v[-2]) is False:
        raise RuleError(f"attention needs q (…, L, E), k (…, S, E), v (…, S, Ev); got "
                        f"{fmt_shape(q)}, {fmt_shape(k)}, {fmt_shape(v)}")
    heads = product(q[:-2])
    length, source, e, ev = q[-2], k[-2], q[-1], v[-1]
    macs = normalize(heads * length * source * (e + ev))  # QKᵀ, then weights · V
    work = normalize(4 * heads * length * source)  # scale, and softmax's exp, sum, divide
    # Math path: q·scale (a copy), k, the softmax weights, v.
    saves = (Saved("extra", elements=normalize(heads * length * e)), Saved("input", index=1),
             Saved("extra", elements=normalize(heads * length * source)),
             Saved("input", index=2))
    return Cost(
        output_shape=(*q[:-1], ev), macs=macs, other_flops=work, rf_global=True,
        saves=saves,
        warnings=("saved activations counted as PyTorch's math attention path; its flash "
                  "kernel, when chosen at run time, keeps q, k, v, the output and a "
                  "log-sum-exp instead",),
        steps=(step("macs", "multiply-accumulates", "MACs", "{H}·{L}·{S}·({E} + {Ev})",
                    {"H": heads, "L": length, "S": source, "E": e, "Ev": ev}, macs),))
