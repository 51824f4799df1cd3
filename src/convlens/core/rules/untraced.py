"""Rows the tracer makes where no layer rule applies: an operation without a rule
(``opaque``: its shape from PyTorch's meta kernel, nothing counted, and the report says
so) and parameters no rule consumed (``params_only``, so the totals stay complete). Neither
has a PyTorch lowering: no model is built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convlens.core.args import Arg, Schema
from convlens.core.registry import Cost, Shape, register_rule

OPAQUE = Schema(
    (
        Arg("op", "name", positional=True, help="the operation"),
        Arg(
            "shape",
            "names",
            help="per-sample output shape (from a meta kernel); with batched=false the whole shape",
        ),
        Arg(
            "batched",
            "bool",
            True,
            help="false: axis 0 of the result is not the "
            "batch (a statistic, a moved or split batch axis), so not even its bytes "
            "are counted",
        ),
        Arg("note", "name", None, help="why the result has no batch axis"),
        Arg(
            "refused",
            "name",
            None,
            help="what the rule of the operation's kind said of this call, which PyTorch "
            "runs but the rule does not cover",
        ),
        Arg(
            "itemsize",
            "int",
            None,
            minimum=1,
            help="bytes per element of a result not in the activations' dtype (a "
            "comparison's bool: 1, an argmax's int64: 8)",
        ),
    )
)


@register_rule(
    "opaque",
    OPAQUE,
    "an operation without a rule: shape from PyTorch's meta "
    "kernel, nothing counted (the report says so)",
    inputs=-1,
)
def opaque(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    if args["batched"]:
        refused = args["refused"]
        said = (
            f"'{args['op']}': its rule does not cover this call ({refused}), "
            "so this row counts nothing"
        )
        return Cost(
            output_shape=tuple(args["shape"]),
            rf_global=True,
            output_itemsize=args["itemsize"],
            args=dict(args),
            unsupported=str(args["op"]),
            warnings=(said,) if refused else (),
        )
    # Figures are per sample; this result has no batch, so its size is not a per-sample
    # one: its whole shape is shown, its bytes are not counted, and the row says why.
    shape = "×".join(str(d) for d in args["shape"]) or "a scalar"
    why = (
        f"it is computed from a tensor whose axis 0 is not the batch ({args['note']})"
        if args["note"]
        else "it has no batch axis at axis 0"
    )
    return Cost(
        output_shape=tuple(args["shape"]),
        batched=False,
        rf_global=True,
        args=dict(args),
        unsupported=f"{args['op']} (no batch axis)",
        warnings=(
            f"'{args['op']}' gives {shape}, but {why}: convlens counts per "
            "sample, so this row counts nothing, not even its activation bytes, "
            "and neither does any later result without a batch axis",
        ),
    )


PARAMS_ONLY = Schema(
    (
        Arg("params", "int", positional=True, minimum=0, help="its parameters"),
        Arg("buffers", "int", 0, minimum=0, help="its buffer values"),
        Arg("tensors", "int", 1, minimum=0, help="how many parameter tensors hold them"),
        Arg(
            "used",
            "bool",
            True,
            help="false: the forward never used them (a module that did not run), so "
            "training gives them no gradient",
        ),
    )
)


@register_rule(
    "params_only",
    PARAMS_ONLY,
    "parameters no rule consumed: a module that did not "
    "run, or one whose operations have no rule (listed so the totals are complete)",
    inputs=0,
)
def params_only(inputs: Sequence[Shape], args: Mapping[str, Any]) -> Cost:
    return Cost(
        output_shape=(0,),
        params=args["params"],
        param_tensors=args["tensors"],
        unused_params=not args["used"],
        buffers=args["buffers"],
        rf_global=True,
        args=dict(args),
    )
