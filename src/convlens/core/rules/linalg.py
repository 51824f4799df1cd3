"""Layer and group normalisation, matrix products and attention (transformer-style blocks).

What autograd keeps was measured on torch 2.13 (CPU) with saved_tensors_hooks:
layer_norm and group_norm keep their input plus a mean and 1/std per normalised group (in
the input's dtype); a product of two outputs keeps both, a product with a trainable weight keeps the
input (a constant operand is kept instead of it). Scaled-dot-product attention keeps
what its kernel needs, and the CPU dispatcher picks the kernel from shapes and options
alone (``attention_kernel``): the flash kernel keeps q, k, v, the output, one
log-sum-exp per query (float32, float64 for float64 inputs) and a float form of the mask;
the math kernel keeps scaled copies of q and k, the attention weights (three tensors of
them with dropout) and v. Every attention row says which kernel it counted, as CUDA's
kernels keep other tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.numbers import Dim, known_divides, known_equal, normalize, product
from convlens.core.registry import Cost, RuleError, Saved, Shape, register_rule
from convlens.core.rules.common import elements, fmt_shape
from convlens.core.steps import step

LAYER_NORM = Schema(
    (
        Arg("normalized_shape", "names", positional=True, help="trailing axes to normalise"),
        Arg("eps", "float", 1e-5, help="added to the variance"),
        Arg("elementwise_affine", "bool", True, help="learn a scale and a shift per element"),
        Arg("bias", "bool", True, help="learn the shift (with elementwise_affine)"),
    )
)


@register_rule(
    "layer_norm",
    LAYER_NORM,
    "layer normalisation over the trailing axes (nn.LayerNorm)",
    has_weights=True,
)
def layer_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, normalized = tuple(inputs[0]), tuple(args["normalized_shape"])
    if len(normalized) > len(shape) or any(
        known_equal(a, b) is False
        for a, b in zip(shape[-len(normalized) :], normalized, strict=True)
    ):
        raise RuleError(
            f"layer_norm over {fmt_shape(normalized)} does not match the trailing "
            f"axes of the input {fmt_shape(shape)}"
        )
    size = product(normalized)
    affine = args["elementwise_affine"]
    params = normalize(size * (1 + (1 if args["bias"] else 0))) if affine else 0
    n, rows = elements(shape), product(shape[: len(shape) - len(normalized)])
    work = normalize(5 * n + (2 * n if affine else 0))
    return Cost(
        output_shape=shape,
        params=params,
        param_tensors=(2 if args["bias"] else 1) if affine else 0,
        other_flops=work,
        # the input, and a mean and 1/std per row in the input's dtype (CPU autograd)
        saves=(Saved("input"), Saved("extra", elements=normalize(2 * rows))),
        steps=(
            step(
                "params",
                "parameters",
                "params",
                "2·{D}" if affine and args["bias"] else ("{D}" if affine else "0"),
                {"D": size},
                params,
            ),
            step(
                "flops",
                "normalisation FLOPs",
                "FLOPs",
                "{k}·{N}",
                {"k": 7 if affine else 5, "N": n},
                work,
                note="mean and variance 3, normalise 2, scale and shift 2 per element",
            ),
        ),
        args=dict(args),
    )


GROUP_NORM = Schema(
    (
        Arg("num_groups", "int", positional=True, help="channel groups normalised together"),
        Arg("eps", "float", 1e-5, help="added to the variance"),
        Arg("affine", "bool", True, help="learn a scale and a shift per channel"),
    )
)


@register_rule("group_norm", GROUP_NORM, "group normalisation (nn.GroupNorm)", has_weights=True)
def group_norm(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    shape, groups = tuple(inputs[0]), args["num_groups"]
    divides = known_divides(groups, shape[0])
    if divides is False:
        raise RuleError(f"num_groups={groups} must divide the channels ({shape[0]})")
    assumed = () if divides else (f"assumes num_groups={groups} divides the channels ({shape[0]})",)
    params = normalize(2 * shape[0]) if args["affine"] else 0
    n = elements(shape)
    if known_equal(n, groups) is True:  # PyTorch refuses to normalise a single value
        raise RuleError(
            f"num_groups={groups} leaves one value per group in {fmt_shape(shape)}; "
            "PyTorch needs more than one value per group"
        )
    work = normalize(5 * n + (2 * n if args["affine"] else 0))
    return Cost(
        output_shape=shape,
        params=params,
        param_tensors=2 if args["affine"] else 0,
        other_flops=work,
        saves=(Saved("input"), Saved("extra", elements=normalize(2 * groups))),
        warnings=assumed,
        steps=(
            step(
                "params",
                "parameters",
                "params",
                "2·{C}" if args["affine"] else "0",
                {"C": shape[0]},
                params,
            ),
        ),
        args=dict(args),
    )


def _batch(kind: str, a: Shape, b: Shape) -> Shape:
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if known_equal(x, y) is False and 1 not in (x, y):
            raise RuleError(
                f"{kind} cannot broadcast the batch axes of {fmt_shape(a)} and {fmt_shape(b)}"
            )
        out.append(y if x == 1 else x)
    return tuple(out)


def matmul_shape(a: Shape, b: Shape) -> tuple[Shape, Dim, Dim, Dim, Dim]:
    """(output shape, batch, n, k, m) of ``a @ b`` by torch.matmul's rules: a 1-D left
    operand is a row (its axis removed again), a 1-D right one a column; the axes before
    the last two broadcast. MACs = batch · n · k · m."""
    if not a or not b:
        raise RuleError(
            f"matmul needs operands with at least one axis; got {fmt_shape(a)} and {fmt_shape(b)}"
        )
    a2 = (1, *a) if len(a) == 1 else tuple(a)  # (k,) → (1, k)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)  # (k,) → (k, 1)
    if known_equal(a2[-1], b2[-2]) is False:
        raise RuleError(
            f"matmul needs (…, n, k) @ (…, k, m); got {fmt_shape(a)} and {fmt_shape(b)}"
        )
    batch = _batch("matmul", a2[:-2], b2[:-2])
    out = (*batch, *a2[-2:-1][: len(a) - 1], *b2[-1:][: len(b) - 1])
    return out, product(batch), a2[-2], a2[-1], b2[-1]


MATMUL = Schema(
    (
        Arg(
            "weight",
            "names",
            None,
            help="shape of a fixed operand (a parameter or a constant) instead of a second input",
        ),
        Arg("weight_first", "bool", False, help="the fixed operand is on the left: weight @ x"),
        Arg(
            "weight_kind",
            "choice",
            "parameter",
            choices=("parameter", "buffer", "constant"),
            help="what the fixed operand is: a learned parameter, a buffer, or a constant "
            "tensor (counted as neither)",
        ),
        Arg(
            "copies_input",
            "bool",
            False,
            help="PyTorch folds the input into a matrix with a "
            "copy (a non-contiguous view), which backward keeps instead of the input",
        ),
        Arg(
            "copies_other",
            "bool",
            False,
            help="of two outputs: PyTorch folds the second one's broadcast axes into one "
            "with a copy (a strided view, e.g. k.transpose(-2, -1)), which backward keeps "
            "instead of it (copies_input: the same for the first)",
        ),
    )
)


@register_rule(
    "matmul",
    MATMUL,
    "matrix product (torch.matmul, @) of two outputs, or of one output and a fixed weight=SHAPE",
    inputs=-1,
    has_weights=True,
)
def matmul(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    weight = None if args["weight"] is None else tuple(args["weight"])
    if len(inputs) != (1 if weight is not None else 2):
        raise RuleError(
            "matmul takes two inputs, or one input and weight=SHAPE; got "
            f"{len(inputs)} input(s)" + (" and a weight" if weight else "")
        )
    x = tuple(inputs[0])
    if weight is not None and not 1 <= len(weight) <= 2:
        raise RuleError(
            f"matmul weight must be a vector or a matrix, got {fmt_shape(weight)} "
            "(a batched weight is expanded over the batch and copied, which no "
            "rule describes yet)"
        )
    # Per-sample shapes: the batch axis stays a broadcast axis in front only when neither
    # operand reaches it — then the product of the samples is the product of the batch.
    if weight is None:
        a, b = x, tuple(inputs[1])
        if len(a) < 2 or len(b) < 2 or len(a) != len(b):
            raise RuleError(
                f"matmul of two outputs needs per-sample operands of the same "
                f"rank, at least 2 (so the batch axes line up); got "
                f"{fmt_shape(a)} and {fmt_shape(b)}"
            )
    elif args["weight_first"]:
        a, b = weight, x
        if len(x) < 2 or len(weight) > len(x):
            raise RuleError(
                f"weight {fmt_shape(weight)} @ x needs x with per-sample rank "
                f"≥ 2 and ≥ the weight's rank (else the product reaches the "
                f"batch axis); x is {fmt_shape(x)}"
            )
    else:
        a, b = x, weight
        if not x or len(weight) > max(len(x), 2):
            raise RuleError(
                f"x @ weight {fmt_shape(weight)} needs x with a per-sample axis "
                f"and a weight of rank ≤ max(2, rank of x) (else the product "
                f"reaches the batch axis); x is {fmt_shape(x)}"
            )
    out, batch, n, k, m = matmul_shape(a, b)
    macs = normalize(batch * n * k * m)
    size = product(weight) if weight is not None else 0
    kind = args["weight_kind"]
    if weight is None:  # each operand's gradient needs the other, as bmm received it: the
        # operand itself, or the copy torch.matmul made to fold its batch axes into one
        saves: tuple[Saved, ...] = (
            Saved("extra", elements=normalize(batch * n * k))
            if args["copies_input"]
            else Saved("input", index=0),
            Saved("extra", elements=normalize(batch * k * m))
            if args["copies_other"]
            else Saved("input", index=1),
        )
    elif kind == "parameter":  # x serves ∂L/∂W only; the weight is not an activation
        saves = (
            Saved("extra", elements=product(x), needs="weight")
            if args["copies_input"]
            else Saved("input", needs="weight"),
        )
    elif kind == "constant":  # x's gradient needs the constant, kept once per batch
        saves = (Saved("extra", elements=size, per_batch=True),)
    else:  # a buffer needs no gradient and is no activation
        saves = ()
    steps = [
        step(
            "macs",
            "multiply-accumulates",
            "MACs",
            "{B}·{n}·{k}·{m}",
            {"B": batch, "n": n, "k": k, "m": m},
            macs,
        )
    ]
    if weight is not None and kind == "parameter":
        steps.insert(
            0,
            step(
                "params",
                "parameters",
                "params",
                "·".join(f"{{D{i}}}" for i in range(len(weight))),
                {f"D{i}": d for i, d in enumerate(weight)},
                size,
            ),
        )
    warnings = (
        (
            "the fixed operand is not held by the model, so it is counted as a "
            "constant; if it is computed from trainable parameters, training also keeps "
            "the input",
        )
        if kind == "constant"
        else ()
    )
    return Cost(
        output_shape=out,
        macs=macs,
        rf_global=weight is not None,
        warnings=warnings,
        params=size if kind == "parameter" else 0,
        param_tensors=1 if kind == "parameter" else 0,
        buffers=size if kind == "buffer" else 0,
        saves=saves,
        steps=tuple(steps),
        args=dict(args),
    )


ATTENTION = Schema(
    (
        Arg(
            "attn_mask",
            "names",
            None,
            help="shape of a fixed mask (not an output), broadcast against (…, L, S)",
        ),
        Arg(
            "mask_dtype",
            "choice",
            "bool",
            choices=("bool", "float"),
            help="bool: True keeps a score; float: added to the scores",
        ),
        Arg("mask_is_buffer", "bool", False, help="the mask is a model buffer, not an activation"),
        Arg("is_causal", "bool", False, help="query i sees keys 0 … i only"),
        Arg("dropout_p", "float", 0.0, help="dropout on the attention weights"),
        Arg(
            "flash",
            "bool",
            True,
            help="PyTorch may pick its CPU flash kernel (false: "
            "sdpa_kernel(MATH), flash disabled, or q, k or v strided along its last axis)",
        ),
        Arg(
            "copies_value",
            "bool",
            False,
            help="the math kernel folds a strided v (timm's qkv.unbind(0) parts) with a copy, "
            "which backward keeps instead of v",
        ),
        Arg(
            "batch_merged",
            "bool",
            False,
            help="the batch is merged into q's first axis (N·m, with m per sample: Swin's "
            "windows), so q, k and v have as many axes per sample as PyTorch sees",
        ),
    )
)


def attention_kernel(q: Shape, k: Shape, v: Shape, args: Mapping[str, Any]) -> str:
    """The kernel PyTorch's CPU dispatcher picks (sdp_utils_cpp.cpp, torch 2.13): flash
    for 4-D q, k, v with equal batch and heads, one head size and no dropout, with no mask
    or a 2-D or 4-D one; the math kernel otherwise."""
    mask = args["attn_mask"]
    merged = args["batch_merged"]  # the per-sample shapes then keep every axis
    lead = 2 if merged else 1  # batch and heads must agree; per sample, what is left of them
    flash = (
        args["flash"]
        and args["dropout_p"] == 0
        and len(q) == len(k) == len(v) == (4 if merged else 3)
        and q[:lead] == k[:lead] == v[:lead]
        and q[-1] == k[-1] == v[-1]
        and (mask is None or len(mask) in (2, 4))
    )
    return "flash" if flash else "math"


@register_rule(
    "attention",
    ATTENTION,
    "scaled dot-product attention softmax(QKᵀ/√d + mask)·V (F.scaled_dot_product_attention)",
    inputs=3,
)
def attention(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    q, k, v = (tuple(s) for s in inputs)
    if (
        len(q) < 2
        or len(k) < 2
        or len(v) < 2
        or known_equal(q[-1], k[-1]) is False
        or known_equal(k[-2], v[-2]) is False
    ):
        raise RuleError(
            f"attention needs q (…, L, E), k (…, S, E), v (…, S, Ev); got "
            f"{fmt_shape(q)}, {fmt_shape(k)}, {fmt_shape(v)}"
        )
    dropout, mask = args["dropout_p"], args["attn_mask"]
    if not 0 <= dropout < 1:
        raise RuleError(f"dropout_p must be in [0, 1), got {dropout}")
    if mask is not None and args["is_causal"]:
        raise RuleError(
            "attn_mask and is_causal=true together: PyTorch's math kernel "
            "refuses them (put the causal pattern into the mask)"
        )
    batch = _batch("attention", _batch("attention", q[:-2], k[:-2]), v[:-2])
    length, source, e, ev = q[-2], k[-2], q[-1], v[-1]
    if mask is not None:
        mask = tuple(mask)
        if not mask or any(
            known_equal(d, want) is False and d != 1
            for d, want in zip(mask[-2:][::-1], (source, length), strict=False)
        ):
            raise RuleError(
                f"attn_mask {fmt_shape(mask)} does not broadcast to the scores "
                f"(…, {length}, {source})"
            )
        inner = mask  # the mask's axes before (L, S) broadcast with the per-sample ones
        while len(inner) > len(batch) + 2 and inner[0] == 1:
            inner = inner[1:]
        if len(inner) > len(batch) + 2:
            raise RuleError(
                f"attn_mask {fmt_shape(mask)} reaches the batch axis of q "
                f"(per sample {fmt_shape(q)}): give it at most {len(batch) + 3} "
                "axes, the first of size 1"
            )
        batch = _batch("attention", batch, inner[:-2])
    heads = product(batch)
    scores = normalize(heads * length * source)
    macs = normalize(scores * (e + ev))  # QKᵀ, then weights · V
    # scale, and softmax's exp, sum, divide; one more for a mask (or the causal one) and
    # one for dropout's scaled mask
    work = normalize(scores * (4 + (mask is not None or args["is_causal"]) + (dropout > 0)))
    kernel = attention_kernel(q, k, v, args)
    if kernel == "flash":  # q, k, v as given, the output and a log-sum-exp per query
        saves: tuple[Saved, ...] = (
            Saved("input", index=0),
            Saved("input", index=1),
            Saved("input", index=2),
            Saved("output"),
            Saved("extra", elements=normalize(heads * length), min_itemsize=4),
        )
        if mask is not None and (args["mask_dtype"] == "bool" or not args["mask_is_buffer"]):
            # a bool mask becomes a float copy; a float one is kept as it is
            saves += (Saved("extra", elements=product(mask), per_batch=True),)
        kept = "q, k, v, the output and a log-sum-exp per query"
    else:  # q·√scale and k·√scale (copies), the weights (with dropout: the softmax, the
        # scaled random mask and the dropped weights), and v (a copy where it broadcasts)
        saves = (
            Saved("extra", elements=normalize(heads * length * e)),
            Saved("extra", elements=normalize(heads * source * e)),
            *[Saved("extra", elements=scores)] * (3 if dropout > 0 else 1),
            Saved("input", index=2)
            if tuple(v[:-2]) == tuple(batch) and not args["copies_value"]
            else Saved("extra", elements=normalize(heads * source * ev)),
        )
        kept = (
            "scaled copies of q and k, the attention weights"
            + (", the dropout mask and the dropped weights" if dropout > 0 else "")
            + (" and a contiguous copy of v" if args["copies_value"] else " and v")
        )
    steps = [
        step(
            "macs",
            "multiply-accumulates",
            "MACs",
            "{H}·{L}·{S}·({E} + {Ev})",
            {"H": heads, "L": length, "S": source, "E": e, "Ev": ev},
            macs,
        )
    ]
    return Cost(
        output_shape=(*batch, length, ev),
        macs=macs,
        other_flops=work,
        rf_global=True,
        saves=saves,
        warnings=(
            f"saved activations counted as PyTorch's CPU {kernel} attention kernel "
            f"keeps them: {kept}; CUDA kernels keep other tensors",
        ),
        steps=tuple(steps),
        args={**args, "kernel": kernel},
    )
