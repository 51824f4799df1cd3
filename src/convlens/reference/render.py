"""Render a ``Worked`` result as text, Markdown or LaTeX (matrices as ``bmatrix``).

Only reads the numbers that ``explain`` collected; computes nothing new except
regrouping the transposed convolution's scattered copies by the element they land on.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from convlens.reference import explain as ex
from convlens.reference.writer import FULL_MATRIX_LIMIT, Writer, num
from convlens.render.text import shape_text


def _as4(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as is; a vector or a matrix (linear's (…, features)) as one plane."""
    a = np.asarray(a)
    if a.ndim == 4:
        return a
    return a.reshape(1, 1, -1, a.shape[-1]) if a.ndim else a.reshape(1, 1, 1, 1)


def _planes(a: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """(n, c) and the (H, W) plane, for every plane of an (N, C, H, W) array."""
    a = _as4(a)
    return [((n, c), a[n, c]) for n in range(a.shape[0]) for c in range(a.shape[1])]


def _plane_label(name: str, n: int, c: int, shape: tuple[int, ...]) -> str:
    parts = ([f"sample {n}"] if shape[0] > 1 else []) + ([f"channel {c}"] if shape[1] > 1 else [])
    return f"{name} ({', '.join(parts)})" if parts else name


class _Labels:
    """Index labels that drop the batch (and channel) when there is only one."""

    def __init__(self, w: Writer, shape: tuple[int, ...], name: str) -> None:
        self.w, self.shape, self.name = w, shape, name

    def __call__(self, n: int, c: int, r: int, col: int) -> str:
        index = ((n,) if self.shape[0] > 1 else ()) + ((c,) if self.shape[1] > 1 else ()) + (r, col)
        return self.w.sym(self.name, index)


def _span(ix: tuple[int, ...]) -> str:
    return f"{ix[0]}…{ix[-1]}" if len(ix) > 1 else str(ix[0])


def _products(w: Writer, window: np.ndarray, weight: np.ndarray) -> str:
    return " + ".join(
        f"{w.factor(a)}{w.times}{w.factor(b)}"
        for a, b in zip(window.ravel(), weight.ravel(), strict=True)
    )


def _describe(worked: ex.Worked) -> str:
    params = ", ".join(
        f"{k}=[{' '.join(num(x) for x in v.ravel())}]" if isinstance(v, np.ndarray) else f"{k}={v}"
        for k, v in worked.params.items()
    )
    call = f"{worked.operator}({params})" if params else worked.operator
    shapes = ", ".join(
        f"{k} {shape_text(v.shape)}" for k, v in worked.inputs.items() if k in ("input", "weight")
    )
    return f"{call} — {shapes} → output {shape_text(worked.output.shape)}"


def _conv_steps(w: Writer, worked: ex.Worked) -> None:
    y = _Labels(w, worked.output.shape, "y")
    names = worked.channel_names
    w.heading("Working: y = Σ over channels of Σ(window ⊙ filter) (+ bias)")
    w.para(w.text("Rows and columns outside the input are zero padding."))
    for step in worked.steps:
        assert isinstance(step, ex.ConvStep)
        first = step.channels[0]
        w.item(
            w.m(y(step.batch, step.out_channel, step.row, step.col))
            + w.text(f": window rows {_span(first.rows)}, cols {_span(first.cols)}")
        )
        for work in step.channels:
            name = names[work.channel] if work.channel < len(names) else f"channel {work.channel}"
            w.item(
                w.text(f"{name}: ")
                + w.m(
                    f"{w.inline(work.window)}{w.odot}{w.inline(work.weight)} = "
                    f"{_products(w, work.window, work.weight)} = {w.num(work.total)}"
                ),
                depth=1,
            )
        if len(step.channels) > 1 or step.bias is not None:
            terms = [w.num(work.total) for work in step.channels]
            if step.bias is not None:
                terms.append(w.factor(step.bias))
            label = "sum over channels" if len(step.channels) > 1 else "sum"
            extra = " (+ bias)" if step.bias is not None else ""
            w.item(
                w.text(f"{label}{extra}: ") + w.m(f"{' + '.join(terms)} = {w.num(step.value)}"),
                depth=1,
            )


def _scatter_lines(
    w: Writer,
    steps: tuple[ex.ScatterStep, ...],
    source: _Labels,
    target: str,
    limits: tuple[int, int],
) -> None:
    for step in steps:
        h, wd = limits
        kept_r = [r for r in step.rows if 0 <= r < h]
        kept_c = [c for c in step.cols if 0 <= c < wd]
        where = (
            f"rows {_span(tuple(kept_r))}, cols {_span(tuple(kept_c))}"
            if kept_r and kept_c
            else "nowhere (all cropped)"
        )
        cropped = (
            ""
            if len(kept_r) == len(step.rows) and len(kept_c) == len(step.cols)
            else (" (the rest falls in the cropped padding)")
        )
        w.item(
            w.m(f"{source(step.batch, step.source_channel, step.row, step.col)} = ")
            + w.m(w.num(step.value))
            + w.text(" → ")
            + w.m(f"{w.factor(step.value)}{w.times}{w.inline(step.weight)} = {w.inline(step.copy)}")
            + w.text(f" lands on {target} channel {step.target_channel}, {where}{cropped}")
        )


def _conv_transpose_steps(w: Writer, worked: ex.Worked) -> None:
    out = worked.output
    steps = tuple(s for s in worked.steps if isinstance(s, ex.ScatterStep))
    w.heading("Working: each input value scales a copy of the filter, placed at stride steps")
    _scatter_lines(w, steps, _Labels(w, worked.inputs["input"].shape, "x"), "output", out.shape[2:])
    terms: dict[tuple[int, int, int, int], list[str]] = defaultdict(list)
    for step in steps:
        for i, r in enumerate(step.rows):
            for j, c in enumerate(step.cols):
                if 0 <= r < out.shape[2] and 0 <= c < out.shape[3]:
                    key = (step.batch, step.target_channel, r, c)
                    terms[key].append(
                        f"{w.factor(step.value)}{w.times}{w.factor(step.weight[i, j])}"
                    )
    y = _Labels(w, out.shape, "y")
    bias = worked.inputs.get("bias")
    w.heading("Each output element is the sum of the copies that land on it")
    for n, o, r, c in np.ndindex(*out.shape):
        parts = list(terms.get((n, o, r, c), [])) or ["0"]
        if bias is not None:
            parts.append(w.factor(float(bias[o])))
        w.item(w.m(f"{y(n, o, r, c)} = {' + '.join(parts)} = {w.num(float(out[n, o, r, c]))}"))


def _pool_steps(w: Writer, worked: ex.Worked) -> None:
    y = _Labels(w, worked.output.shape, "y")
    x = _Labels(w, worked.inputs["input"].shape, "x")
    kind = worked.steps[0].kind  # type: ignore[union-attr]
    title = (
        "Working: the maximum of each window (ties: the first in row-major order)"
        if kind == "max"
        else "Working: the sum of each window divided by its cell count"
    )
    w.heading(title)
    for step in worked.steps:
        assert isinstance(step, ex.PoolStep)
        head = (
            w.m(y(step.batch, step.channel, step.row, step.col))
            + w.text(f": window rows {_span(step.rows)}, cols {_span(step.cols)} ")
            + w.m(w.inline(step.window))
        )
        if kind == "max":
            where = w.m(x(step.batch, step.channel, *step.arg)) if step.arg else "padding only"
            w.item(head + w.text(" → max ") + w.m(w.num(step.value)) + w.text(" at ") + where)
        else:
            total = " + ".join(w.factor(v) for v in step.window.ravel())
            w.item(
                head
                + w.text(" → ")
                + w.m(
                    f"({total}) / {step.divisor} = {w.num(step.total or 0)} / {step.divisor} "
                    f"= {w.num(step.value)}"
                )
            )


def _interp_steps(w: Writer, worked: ex.Worked) -> None:
    y = _Labels(w, worked.output.shape, "y")
    x = _Labels(w, worked.inputs["input"].shape, "x")
    w.heading("Working: each output pixel mixes input pixels with weights R[row, i] · C[col, j]")
    for step in worked.steps:
        assert isinstance(step, ex.InterpStep)
        terms = " + ".join(
            f"{w.num(weight)}{w.times}{x(step.batch, step.channel, i, j)}"
            for i, j, weight, _ in step.terms
        )
        values = " + ".join(
            f"{w.num(weight)}{w.times}{w.factor(value)}" for _, _, weight, value in step.terms
        )
        w.item(
            w.m(f"{y(step.batch, step.channel, step.row, step.col)} = {terms} = {values}")
            + w.m(f" = {w.num(step.value)}")
        )


def _relu_steps(w: Writer, worked: ex.Worked) -> None:
    y = _Labels(w, worked.output.shape, "y")
    w.heading("Working: y = max(x, 0) element by element")
    maximum = r"\max" if w.fmt == "latex" else "max"
    for step in worked.steps:
        assert isinstance(step, ex.ReluStep)
        label = y(step.batch, step.channel, step.row, step.col)
        w.item(w.m(f"{label} = {maximum}({w.num(step.x)}, 0) = {w.num(step.value)}"))


def _dot_steps(w: Writer, worked: ex.Worked) -> None:
    w.heading("Working: y[n, o] = x[n] · W[o] (+ b[o]), a row of x times a row of W")
    for step in worked.steps:
        assert isinstance(step, ex.DotStep)
        products = _products(w, step.x, step.weight)
        bias = "" if step.bias is None else f" + {w.factor(step.bias)}"
        w.item(
            w.m(
                f"{w.sym('y', (step.row, step.out_feature))} = "
                f"{w.inline(step.x[None])}{w.times}{w.inline(step.weight[None])}{bias} = "
                f"{products}{bias} = {w.num(step.value)}"
            )
        )


_GREEK_LATEX = {"μ": r"\mu", "σ²": r"\sigma^2", "γ": r"\gamma", "β": r"\beta", "ε": r"\varepsilon"}


def _greek(w: Writer, math: str) -> str:
    """Math with μ, σ², γ, β, ε in this format's spelling."""
    if w.fmt == "latex":
        for letter, command in _GREEK_LATEX.items():
            math = math.replace(letter, command + " ")
    return w.m(math)


def _norm_steps(w: Writer, worked: ex.Worked) -> None:
    w.heading("Working: per channel, y = γ · (x − μ) / √(σ² + ε) + β = scale · x + shift")
    names = worked.channel_names
    t, minus = w.times, "-" if w.fmt == "latex" else "−"
    for step in worked.steps:
        assert isinstance(step, ex.NormStep)
        name = names[step.channel] if step.channel < len(names) else f"channel {step.channel}"
        w.item(w.text(f"{name}:"))
        count = step.values.size
        if step.training:
            total = " + ".join(w.factor(v) for v in step.values)
            w.item(
                w.text("batch mean ") + _greek(w, f"μ = ({total}) / {count} = {w.num(step.mean)}"),
                depth=1,
            )
            squares = " + ".join(f"({w.num(v)} - {w.factor(step.mean)})^2" for v in step.values)
            if w.fmt != "latex":
                squares = squares.replace("^2", "²").replace(" - ", " − ")
            w.item(
                w.text("batch variance (biased) ")
                + _greek(w, f"σ² = ({squares}) / {count} = {w.num(step.var)}"),
                depth=1,
            )
        else:
            w.item(
                w.text("running statistics ")
                + _greek(w, f"μ = {w.num(step.mean)}, σ² = {w.num(step.var)}"),
                depth=1,
            )
        root = (
            rf"\sqrt{{{w.num(step.var)} + {step.eps:g}}}"
            if w.fmt == "latex"
            else f"√({w.num(step.var)} + {step.eps:g})"
        )
        formula = r"\sqrt{σ² + ε}" if w.fmt == "latex" else "√(σ² + ε)"
        w.item(
            w.text("scale ")
            + _greek(w, f"= γ / {formula} = {w.num(step.gamma)} / {root} = {w.num(step.scale)}")
            + w.text(", shift ")
            + _greek(
                w,
                f"= β {minus} scale{t}μ = {w.num(step.beta)} {minus} {w.factor(step.scale)}{t}"
                f"{w.factor(step.mean)} = {w.num(step.shift)}",
            ),
            depth=1,
        )
        pairs = ", ".join(
            w.m(f"{w.num(v)} \\to {w.num(o)}" if w.fmt == "latex" else f"{w.num(v)} → {w.num(o)}")
            for v, o in zip(step.values, step.outputs, strict=True)
        )
        w.item(w.text("x → y = scale · x + shift: ") + pairs, depth=1)


def _route_steps(w: Writer, worked: ex.Worked) -> None:
    g = _Labels(w, worked.output.shape, "∂L/∂y")
    x = _Labels(w, worked.inputs["input"].shape, "∂L/∂x")
    w.heading("Backward: where each output gradient goes")
    for step in worked.backward_steps:
        assert isinstance(step, ex.RouteStep)
        src = w.m(f"{g(step.batch, step.channel, step.row, step.col)} = {w.num(step.grad)}")
        if worked.operator == "relu":
            target = w.m(x(step.batch, step.channel, step.row, step.col))
            if step.targets:
                w.item(src + w.text(" → all of it to ") + target + w.text(" (x > 0)"))
            else:
                w.item(src + w.text(" → stops: 0 to ") + target + w.text(" (x ≤ 0)"))
        elif not step.targets:
            w.item(src + w.text(" → nowhere (the window holds only padding)"))
        elif worked.operator == "upsample":
            parts = ", ".join(
                w.m(f"{w.num(weight)}{w.times}{w.factor(step.grad)} = {w.num(amount)}")
                + w.text(" to ")
                + w.m(x(step.batch, step.channel, r, c))
                for (r, c, amount), weight in zip(step.targets, step.weights, strict=True)
            )
            w.item(src + w.text(" → weight × gradient to each source: ") + parts)
        elif worked.operator == "max_pool2d":
            r, c, _ = step.targets[0]
            w.item(
                src
                + w.text(" → all of it to the window's arg-max ")
                + w.m(x(step.batch, step.channel, r, c))
            )
        else:
            share = step.targets[0][2]
            cells = ", ".join(f"({r}, {c})" for r, c, _ in step.targets)
            w.item(src + w.text(" → ") + w.m(w.num(share)) + w.text(f" to each input cell {cells}"))
    totals: dict[tuple[int, int, int, int], list[float]] = defaultdict(list)
    for step in worked.backward_steps:
        for r, c, amount in step.targets:  # type: ignore[union-attr]
            totals[(step.batch, step.channel, r, c)].append(amount)  # type: ignore[union-attr]
    shared = {k: v for k, v in totals.items() if len(v) > 1}
    if shared:
        w.heading("Inputs that receive from several windows add the amounts")
        for (n, c, r, col), amounts in sorted(shared.items()):
            w.item(
                w.m(
                    f"{x(n, c, r, col)} = {' + '.join(w.factor(a) for a in amounts)} "
                    f"= {w.num(sum(amounts))}"
                )
            )


def _conv_backward_steps(w: Writer, worked: ex.Worked) -> None:
    g = _Labels(w, worked.output.shape, "∂L/∂y")
    scatter = tuple(s for s in worked.backward_steps if isinstance(s, ex.ScatterStep))
    weights = tuple(s for s in worked.backward_steps if isinstance(s, ex.WeightGradStep))
    h, wd = worked.inputs["input"].shape[2:]
    w.heading("Backward, input: each output gradient scatters gradient × filter onto its window")
    _scatter_lines(w, scatter, g, "∂L/∂x", (h, wd))
    w.heading("Backward, weight: Σ over output positions of gradient × window")
    _weight_grad_lines(w, weights, "g")


def _weight_grad_lines(w: Writer, steps: tuple[ex.WeightGradStep, ...], factor: str) -> None:
    for step in steps:
        terms = " + ".join(f"{w.factor(t.grad)}{w.times}{w.inline(t.window)}" for t in step.terms)
        label = w.sym(
            "∂L/∂w",
            (step.in_channel, step.out_channel)
            if factor == "x"
            else (step.out_channel, step.in_channel),
        )
        w.item(w.m(f"{label} = {terms} = {w.inline(step.total)}"))


def _conv_transpose_backward_steps(w: Writer, worked: ex.Worked) -> None:
    g = _Labels(w, worked.inputs["input"].shape, "∂L/∂x")
    inputs = tuple(s for s in worked.backward_steps if isinstance(s, ex.ConvStep))
    weights = tuple(s for s in worked.backward_steps if isinstance(s, ex.WeightGradStep))
    w.heading("Backward, input: each input collects ∂L/∂y where its filter copy landed, ⊙ filter")
    w.para(w.text("Cells of the block outside the output (cropped) contribute 0."))
    for step in inputs:
        first = step.channels[0]
        w.item(
            w.m(g(step.batch, step.out_channel, step.row, step.col))
            + w.text(f": its copy landed on rows {_span(first.rows)}, cols {_span(first.cols)}")
        )
        for work in step.channels:
            w.item(
                w.text(f"output channel {work.channel}: ")
                + w.m(
                    f"{w.inline(work.window)}{w.odot}{w.inline(work.weight)} = "
                    f"{_products(w, work.window, work.weight)} = {w.num(work.total)}"
                ),
                depth=1,
            )
        if len(step.channels) > 1:
            terms = " + ".join(w.num(work.total) for work in step.channels)
            w.item(
                w.text("sum over output channels: ") + w.m(f"{terms} = {w.num(step.value)}"),
                depth=1,
            )
    w.heading("Backward, weight: Σ over input pixels of x × the ∂L/∂y block its copy landed on")
    _weight_grad_lines(w, weights, "x")


def _summary(w: Writer, worked: ex.Worked) -> None:
    out = worked.output
    plane = out.shape[-2] * out.shape[-1]
    w.heading("Summary")
    w.item(w.text(f"output shape {shape_text(out.shape)} (N×C×H×W), {out.size} elements"))
    w.item(w.text(f"min {num(out.min())}, max {num(out.max())}, mean {num(out.mean())}"))
    if worked.operator in ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"):
        w.item(
            w.text(
                f"working not shown: {plane} elements per output plane (shown up to "
                f"{ex.EXPLAIN_PER_PLANE} per plane and {ex.EXPLAIN_TOTAL} in all)"
            )
        )
    elif worked.operator == "upsample":
        w.item(w.text("y = R · x · Cᵀ per plane, R and C the row and column interpolation weights"))
    elif worked.operator == "global_avg_pool":
        w.item(w.text("y[n, c] = Σ x[n, c] / (H·W)"))
    elif worked.operator == "relu":
        w.item(w.text("y = max(x, 0); the gradient passes where x > 0"))
    elif worked.operator == "linear":
        w.item(w.text("y = x · Wᵀ + b; ∂L/∂x = g · W, ∂L/∂W = gᵀ · x, ∂L/∂b = Σ g"))
    elif worked.operator == "batch_norm":
        w.item(w.text("y = γ · (x − μ) / √(σ² + ε) + β per channel"))
    if worked.operator not in ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"):
        w.item(
            w.text(
                f"working not shown: {out.size} outputs (shown up to {ex.EXPLAIN_PER_PLANE} per "
                f"plane and {ex.EXPLAIN_TOTAL} in all)"
            )
        )


def render(
    worked: ex.Worked, fmt: str = "text", explain: bool = True, check: str | None = None
) -> str:
    """The result matrix; with ``explain``, the inputs, the working (or a summary) and grads."""
    w = Writer(fmt)
    w.para(w.text(_describe(worked)))
    small = ex.is_small(worked.output.shape) and worked.inputs["input"].size <= FULL_MATRIX_LIMIT
    if explain and small:
        w.heading("Inputs")
        x = _as4(worked.inputs["input"])
        for (n, c), plane in _planes(x):
            name = (
                worked.channel_names[c] if x.shape[0] == 1 and c < len(worked.channel_names) else ""
            )
            label = f"input {name}" if name else _plane_label("input", n, c, x.shape)
            if worked.operator == "linear":
                label = "input x (one sample per row)"
            w.matrix(label, plane)
        weight = worked.inputs.get("weight")
        if weight is not None and worked.operator == "linear":
            w.matrix("weight W (out_features × in_features)", weight)
        elif weight is not None and worked.operator == "batch_norm":
            w.para(w.text("weight γ: ") + w.m(w.inline(weight[None])))
        elif weight is not None:
            if np.all(weight == weight.reshape(-1, *weight.shape[-2:])[0]) and weight[0, 0].size:
                w.matrix("filter (every channel)", weight[0, 0])
            else:
                for (o, c), plane in _planes(weight):
                    w.matrix(f"filter [{o}, {c}]", plane)
        if "bias" in worked.inputs:
            label = "bias β: " if worked.operator == "batch_norm" else "bias: "
            w.para(w.text(label) + w.m(w.inline(worked.inputs["bias"][None])))
        for key in ("running_mean", "running_var"):
            if key in worked.inputs:
                w.para(w.text(f"{key}: ") + w.m(w.inline(worked.inputs[key][None])))
        if worked.operator == "upsample":
            w.matrix("row weights R", worked.inputs["rows"])
            w.matrix("column weights C", worked.inputs["cols"])
    if explain and worked.steps:
        {
            "conv2d": _conv_steps,
            "conv_transpose2d": _conv_transpose_steps,
            "max_pool2d": _pool_steps,
            "avg_pool2d": _pool_steps,
            "global_avg_pool": _pool_steps,
            "upsample": _interp_steps,
            "relu": _relu_steps,
            "linear": _dot_steps,
            "batch_norm": _norm_steps,
        }[worked.operator](w, worked)
    elif explain:
        _summary(w, worked)
    if explain and worked.backward_steps:
        {"conv2d": _conv_backward_steps, "conv_transpose2d": _conv_transpose_backward_steps}.get(
            worked.operator, _route_steps
        )(w, worked)
    if (
        explain
        and worked.operator in ("conv2d", "conv_transpose2d")
        and worked.inputs["input"].shape[1] > 1
    ):
        w.heading("Per input channel (before the channel sum)")
        for c, part in enumerate(worked.per_channel):
            for (n, o), plane in _planes(part):
                label = f"from {worked.channel_names[c]}"
                label += f", sample {n}" if part.shape[0] > 1 else ""
                label += f" → output channel {o}" if part.shape[1] > 1 else ""
                w.matrix(label, plane)
    w.heading("Result")
    for (n, c), plane in _planes(worked.output):
        w.matrix(_plane_label("output", n, c, _as4(worked.output).shape), plane)
    for key, value in worked.updated.items():
        w.para(w.text(f"updated {key}: ") + w.m(w.inline(value[None])))
    if worked.grad_output is not None:
        w.heading("Gradients")
        given = _as4(worked.grad_output)
        for (n, c), plane in _planes(given):
            w.matrix(_plane_label("∂L/∂output (given)", n, c, given.shape), plane)
        for name, grad in worked.grads.items():
            grad4 = _as4(grad)
            for (n, c), plane in _planes(grad4):
                w.matrix(_plane_label(f"∂L/∂{name}", n, c, grad4.shape), plane)
    if check:
        if w.fmt == "text":
            w.lines.append("")
        w.para(w.text(check))
    return w.render()
