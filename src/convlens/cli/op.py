"""``convlens op``: run one reference operator on small matrices and show the working.

Only parses arguments and delegates to ``convlens.reference``; torch is imported lazily,
for the one-line check at the end, and its absence only skips that check.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import typer
from typer.core import TyperCommand

from convlens.cli.console import handle_errors, print_text
from convlens.errors import ArgumentError
from convlens.reference.operators import OPERATORS

# Options that take several values after one flag: `--input R.txt G.txt B.txt`.
MULTI_VALUE = {
    "--input": "--input",
    "-i": "--input",
    "--weight": "--weight",
    "-w": "--weight",
    "--backward": "--backward",
}
TOLERANCE = 1e-10


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    latex = "latex"
    json = "json"


# The choices: every registered reference operator, in registration order.
Operator = StrEnum("Operator", {name: name for name in OPERATORS})  # type: ignore[misc]


class MultiValueCommand(TyperCommand):
    """``--input a b c`` means ``--input a --input b --input c``: values run to the next flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        current: str | None = None
        for token in args:
            if token in MULTI_VALUE:
                current = MULTI_VALUE[token]
                continue
            if token.startswith("-") and not re.fullmatch(r"-[0-9.].*", token):
                current = None
            if current is not None:
                rewritten += [current, token]
            else:
                rewritten.append(token)
        return super().parse_args(ctx, rewritten)


def ints(text: str | None, option: str, sizes: tuple[int, ...] = (1, 2)) -> Any:
    """'2' → 2, '2,1' → (2, 1); the counts allowed are ``sizes``."""
    if text is None:
        return None
    try:
        values = [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        raise ArgumentError(
            f"{option} must be integers separated by commas, like 2 or 2,1; got {text!r}."
        ) from None
    if len(values) not in sizes:
        raise ArgumentError(
            f"{option} takes {' or '.join(map(str, sizes))} integers (got {len(values)}: {text!r})."
        )
    return values[0] if len(values) == 1 else tuple(values)


def floats(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        raise ArgumentError(
            f"{option} must be numbers separated by commas; got {text!r}."
        ) from None
    if not values:
        raise ArgumentError(f"{option} is empty; expected a number or numbers separated by commas.")
    return values[0] if len(values) == 1 else tuple(values)


def padding_arg(text: str | None) -> Any:
    """'1', '1,2' (rows, cols), '1,0,2,0' (top, bottom, left, right), 'same' or 'valid'."""
    if text is None or text.strip() in ("same", "valid"):
        return None if text is None else text.strip()
    value = ints(text, "--padding", (1, 2, 4))
    if isinstance(value, tuple) and len(value) == 4:
        return ((value[0], value[1]), (value[2], value[3]))
    return value


def _given(value: Any, default: Any) -> Any:
    """The value when the option was given (0 included, so the operator can refuse it)."""
    return default if value is None else value


def hyper_parameters(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``reference.run``; refuses options the operator does not take."""
    for option, value in given.items():
        if value not in (None, False) and option not in OPERATORS[name].options:
            flag = "--" + option.replace("_", "-")
            raise ArgumentError(f"{flag} does not apply to {name}.")
    params: dict[str, Any] = {}
    if name in ("conv2d", "conv_transpose2d"):
        params["stride"] = _given(ints(given["stride"], "--stride"), 1)
        params["padding"] = _given(padding_arg(given["padding"]), 0)
        params["dilation"] = _given(ints(given["dilation"], "--dilation"), 1)
        params["groups"] = _given(given["groups"], 1)
        if name == "conv_transpose2d":
            if isinstance(params["padding"], str) or (
                isinstance(params["padding"], tuple) and isinstance(params["padding"][0], tuple)
            ):
                raise ArgumentError("--padding for conv_transpose2d takes 1 or 2 integers.")
            params["output_padding"] = _given(ints(given["output_padding"], "--output-padding"), 0)
    elif name in ("max_pool2d", "avg_pool2d"):
        if given["kernel"] is None:
            raise ArgumentError(f"{name} needs --kernel, the window size (like 2 or 2,3).")
        params["kernel_size"] = ints(given["kernel"], "--kernel")
        params["stride"] = ints(given["stride"], "--stride")
        padding = padding_arg(given["padding"])
        if isinstance(padding, str) or (
            isinstance(padding, tuple) and isinstance(padding[0], tuple)
        ):
            raise ArgumentError(f"--padding for {name} takes 1 or 2 integers.")
        params["padding"] = _given(padding, 0)
        params["ceil_mode"] = bool(given["ceil_mode"])
        if name == "max_pool2d":
            params["dilation"] = _given(ints(given["dilation"], "--dilation"), 1)
        else:
            params["count_include_pad"] = given["count_include_pad"] is not False
    elif name == "upsample":
        if (given["size"] is None) == (given["scale"] is None):
            raise ArgumentError(
                "upsample needs exactly one of --size (like 4 or 4,6) or --scale (like 2)."
            )
        params["size"] = ints(given["size"], "--size")
        params["scale_factor"] = floats(given["scale"], "--scale")
        params["mode"] = given["mode"] or "nearest"
        params["align_corners"] = bool(given["align_corners"])
    elif name == "batch_norm":
        params["running_mean"] = floats(given["running_mean"], "--running-mean")
        params["running_var"] = floats(given["running_var"], "--running-var")
        params["training"] = bool(given["training"])
        if not params["training"] and (
            params["running_mean"] is None or params["running_var"] is None
        ):
            raise ArgumentError(
                "batch_norm needs --running-mean and --running-var (inference: normalise with "
                "the running statistics, one number per channel), or --training (normalise with "
                "the batch's own mean and variance)."
            )
        params["momentum"] = _given(floats(given["momentum"], "--momentum"), 0.1)
        params["eps"] = _given(floats(given["eps"], "--eps"), 1e-5)
        for key in ("momentum", "eps"):
            if isinstance(params[key], tuple):
                raise ArgumentError(f"--{key} takes one number; got {params[key]}.")
    return params


def numbers(values: list[str] | None, option: str) -> Any:
    """``--weight 1 2`` or ``--weight 1,2`` → (1.0, 2.0); one value → a number."""
    return floats(",".join(values), option) if values else None


def _plain(a: np.ndarray) -> Any:
    """Batch of one and lone channel dropped, as nested lists."""
    a = np.asarray(a)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    return a.tolist()


def torch_check(worked: Any) -> str:
    """One line: does torch.nn.functional (and autograd) give the same numbers?"""
    try:  # (I001 silenced: ruff's `src` includes tests/, so it takes torch as first-party)
        import torch
        import torch.nn.functional as F
    except ImportError:
        return "check against PyTorch skipped: torch is not installed."
    p = dict(worked.params)
    x = torch.tensor(worked.inputs["input"], dtype=torch.float64, requires_grad=True)
    leaves = {"input": x}
    for key in ("weight", "bias"):
        if key in worked.inputs:
            leaves[key] = torch.tensor(worked.inputs[key], dtype=torch.float64, requires_grad=True)
    w, b = leaves.get("weight"), leaves.get("bias")
    running = {  # batch norm's running statistics, updated in place
        key: torch.tensor(worked.inputs[key], dtype=torch.float64) if key in worked.inputs else None
        for key in ("running_mean", "running_var")
    }
    y, fn = OPERATORS[worked.operator].torch_equivalent(torch, F, x, w, b, p, running)
    diff = float(np.max(np.abs(y.detach().numpy() - worked.output)))
    for key, value in worked.updated.items():  # batch norm's updated running statistics
        statistic = running[key]
        if statistic is None:
            return f"check FAILED: PyTorch kept no {key} to compare with."
        diff = max(diff, float(np.max(np.abs(statistic.numpy() - value))))
    what = f"torch.nn.functional.{fn}"
    if worked.grad_output is not None:
        y.backward(torch.tensor(worked.grad_output, dtype=torch.float64))
        for key, grad in worked.grads.items():
            computed = leaves[key].grad
            if computed is None:
                return f"check FAILED: autograd gave no gradient for {key}."
            diff = max(diff, float(np.max(np.abs(computed.numpy() - grad))))
        what += " and autograd"
    if diff <= TOLERANCE:
        return f"check: agrees with {what} (max |difference| {diff:.1e} ≤ {TOLERANCE:.0e})."
    return f"check FAILED: differs from {what} by {diff:.3e} (tolerance {TOLERANCE:.0e})."


def register(app: typer.Typer) -> None:
    @app.command("op", cls=MultiValueCommand)
    @handle_errors
    def op(
        operator: Annotated[Operator, typer.Argument(help="The operator to run.")],
        input: Annotated[
            list[str] | None,
            typer.Option(
                "--input",
                "-i",
                help="One matrix per channel: inline [[1,2],[3,4]], a .txt/.csv/.npy "
                "file, or ones3x3 / eye3 / arange4x4. Several may follow one --input.",
            ),
        ] = None,
        weight: Annotated[
            list[str] | None,
            typer.Option(
                "--weight",
                "-w",
                help="The filter: one matrix for every channel (results summed), "
                "one per input channel, or a 4-D .npy weight.",
            ),
        ] = None,
        bias: Annotated[
            str | None,
            typer.Option(help="Bias: a number, or one per output channel, comma-separated."),
        ] = None,
        stride: Annotated[str | None, typer.Option(help="2 or 2,1 (rows, cols).")] = None,
        padding: Annotated[
            str | None,
            typer.Option(
                help="1, 1,2 (rows, cols), 1,0,2,0 (top, bottom, left, right), same or valid."
            ),
        ] = None,
        dilation: Annotated[str | None, typer.Option(help="2 or 2,1.")] = None,
        groups: Annotated[int | None, typer.Option(help="Channel groups (conv).")] = None,
        output_padding: Annotated[
            str | None, typer.Option(help="Extra rows/cols at the bottom/right (conv_transpose2d).")
        ] = None,
        kernel: Annotated[str | None, typer.Option(help="Pooling window: 2 or 2,3.")] = None,
        ceil_mode: Annotated[bool, typer.Option(help="Pooling: round the output size up.")] = False,
        count_include_pad: Annotated[
            bool | None,
            typer.Option(
                "--count-include-pad/--no-count-include-pad",
                help="avg_pool2d: count padding in the divisor (default: yes).",
            ),
        ] = None,
        size: Annotated[str | None, typer.Option(help="upsample: output size, 4 or 4,6.")] = None,
        scale: Annotated[
            str | None, typer.Option(help="upsample: scale factor, 2 or 2,1.5.")
        ] = None,
        mode: Annotated[str | None, typer.Option(help="upsample: nearest or bilinear.")] = None,
        align_corners: Annotated[
            bool, typer.Option(help="upsample: bilinear align_corners.")
        ] = False,
        running_mean: Annotated[
            str | None,
            typer.Option(help="batch_norm: running mean, one number per channel (1,2,…)."),
        ] = None,
        running_var: Annotated[
            str | None,
            typer.Option(help="batch_norm: running variance, one number per channel."),
        ] = None,
        training: Annotated[
            bool,
            typer.Option(help="batch_norm: normalise with the batch's statistics."),
        ] = False,
        momentum: Annotated[
            str | None, typer.Option(help="batch_norm: running-statistics momentum (0.1).")
        ] = None,
        eps: Annotated[str | None, typer.Option(help="batch_norm: ε added to σ² (1e-5).")] = None,
        backward: Annotated[
            list[str] | None,
            typer.Option(
                "--backward",
                help="The gradient of the output (one matrix per output channel): "
                "also compute the gradients of the input (and weight, bias).",
            ),
        ] = None,
        explain: Annotated[bool, typer.Option(help="Show the working for every element.")] = False,
        fmt: Annotated[
            OutputFormat, typer.Option("--format", help="Output format.")
        ] = OutputFormat.text,
        check: Annotated[bool, typer.Option(help="End with a check against PyTorch.")] = True,
    ) -> None:
        """Run a reference operator on small matrices; --explain shows every step.

        Example: convlens op conv2d --input R.txt G.txt B.txt --weight ones3x3 --padding 1 --explain
        """
        from convlens.reference import render, run
        from convlens.reference.parse import parse_channels

        name = operator.value
        given = dict(
            weight=weight or None,
            bias=bias,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            output_padding=output_padding,
            kernel=kernel,
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
            size=size,
            scale=scale,
            mode=mode,
            align_corners=align_corners,
            running_mean=running_mean,
            running_var=running_var,
            training=training,
            momentum=momentum,
            eps=eps,
        )
        params = hyper_parameters(name, given)
        x, names = parse_channels(input or [], "--input")
        takes = OPERATORS[name].weight
        if takes == "affine":  # γ: one number per channel, not a matrix
            w = numbers(weight, "--weight")
        else:
            w = parse_channels(weight, "--weight")[0] if weight else None
        if takes == "filter" and w is None:
            raise ArgumentError(
                f"{name} needs --weight, the filter (like ones3x3 or [[1,0],[0,1]])."
            )
        if takes == "matrix" and w is None:
            raise ArgumentError(
                "linear needs --weight, the matrix W of shape (out_features, in_features), "
                "like [[1,0,1],[0,1,0]]."
            )
        grad = parse_channels(backward, "--backward")[0] if backward else None
        worked = run(
            name,
            x,
            w,
            floats(bias, "--bias"),
            grad_output=grad,
            explain=explain,
            channel_names=names,
            **params,
        )
        line = torch_check(worked) if check else None
        if fmt is OutputFormat.json:
            payload: dict[str, Any] = {"operator": name, "output": _plain(worked.output)}
            if worked.per_channel:
                payload["per_channel"] = [_plain(part) for part in worked.per_channel]
            for key, value in worked.updated.items():
                payload[key] = value.tolist()
            if worked.grads:
                payload["gradients"] = {k: _plain(v) for k, v in worked.grads.items()}
            if line:
                payload["check"] = line
            print_text(json.dumps(payload, ensure_ascii=False))
            return
        print_text(render(worked, fmt.value, explain=explain, check=line))
