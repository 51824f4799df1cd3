"""Parser and expander of ``.cnn`` network descriptions.

One statement per line, ``#`` comments, indentation for block bodies::

    input 3x32x32
    block basic(planes, stride=1):
        conv2d planes k=3 s=stride p=1 bias=false
        batchnorm2d
        relu
        conv2d planes k=3 p=1 bias=false
        batchnorm2d
        add in
        relu
    repeat 2: basic 64

Statements: ``input CxHxW``; a layer kind with positional and ``key=value``
arguments; a block call; ``as NAME`` labels an output; ``add NAME…`` and
``concat NAME…`` (and ``mul NAME…``, a broadcasting product such as a
channel gate) join the current output with named ones (if the current output
is itself named in the list, the list gives the full order); ``from NAME``
continues from an earlier output; ``freeze`` freezes every layer so far
(``frozen=true`` one layer); ``inplace=true`` on an activation overwrites its input,
as ``ReLU(inplace=True)`` does;
``repeat N:`` repeats its body. Inside a block, ``in`` is the block's input.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlens.core.args import ALIASES, ArgValueError, coerce_args, coerce_one, suggest
from convlens.core.numbers import is_numeric, known_positive, symbol
from convlens.core.records import LayerSpec, Network
from convlens.core.registry import all_rules
from convlens.errors import SourcePosition, SpecError
from convlens.spec.expressions import Evaluator, ExpressionError
from convlens.spec.lexer import Statement, Token, read_statements, split_commas
from convlens.spec.prelude import PRELUDE

_KEY_VALUE = re.compile(r"^([A-Za-z_]\w*)=(.+)$")
_HEADER = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)\s*$")
STATEMENTS = (
    "input",
    "block",
    "repeat",
    "from",
    "add",
    "concat",
    "mul",
    "matmul",
    "attention",
    "freeze",
)
INPUT_FORMS = (
    "input must be channels x height x width, e.g. 'input 3x224x224' (or channels x "
    "length for a signal, 'input 1x16000'; channels x depth x height x width for a volume "
    "or clip, 'input 3x16x112x112')"
)
MAX_DEPTH = 50
# Expansion limits, checked by count before the work is done: far above any real network
# (the largest in the zoo has a few thousand layers) and above the 100,000-layer
# description of benchmarks/large_descriptions.py, yet small enough that a mistyped
# `repeat 1000000000:` fails at once instead of running until killed.
MAX_LAYERS = 200_000
MAX_STATEMENTS = 1_000_000
# Element-wise kinds that may overwrite their input (ReLU(inplace=True)): saves memory.
IN_PLACE_KINDS = (
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "hardswish",
    "hardsigmoid",
    "silu",
    "dropout",
    "identity",
    "unary",
)
PRELUDE_SOURCE = "<prelude>"


@dataclass
class BlockDef:
    name: str
    params: list[tuple[str, str | None]]  # (name, default text)
    body: list[Statement]
    line: int
    source: str


@dataclass
class Scope:
    prefix: str
    env: dict[str, Any]
    labels: dict[str, str]
    current: str
    counters: Counter[str] = field(default_factory=Counter)
    bound_at: dict[str, int] = field(default_factory=dict)  # label → line that bound it
    call_chain: tuple[str, ...] = ()
    call_site: Statement | None = None  # the user's line that called a built-in block


class Expander:
    """Walks statements, expanding blocks and repeats into a flat list of layers."""

    # A repeat's first pass tells what all its passes would cost, so one past MAX_LAYERS
    # or MAX_STATEMENTS is refused at its line before the rest is expanded. The web
    # workbench turns this off: it counts layers and statements as they expand, against
    # its own lower limits, and names the line that went over.
    bound_repeats_ahead = True

    def __init__(self, source: str, bindings: Mapping[str, Any]):
        self.source = source
        self.bindings = dict(bindings)
        self.used_bindings: set[str] = set()
        self.symbols: set[str] = set()
        self.blocks: dict[str, BlockDef] = {}
        self.layers: list[LayerSpec] = []
        self.taken: set[str] = {"input"}
        self.input_shape: tuple[Any, ...] | None = None
        self.input_line = 1
        self.frozen_until = 0
        self.statements_run = 0
        self.rules = all_rules()

    # -- errors -------------------------------------------------------------------------
    def error(
        self,
        statement: Statement,
        message: str,
        column: int | None = None,
        layer: str = "",
        scope: Scope | None = None,
    ) -> SpecError:
        chain = scope.call_chain if scope else ()
        if chain:
            message += " (in " + ", ".join(reversed(chain)) + ")"
        position = SourcePosition(
            statement.source or self.source, statement.line, column or statement.tokens[0].column
        )
        return SpecError(message, position, layer)

    def lookup(self, name: str) -> Any:
        if name in self.bindings:
            self.used_bindings.add(name)
            return self.bindings[name]
        self.symbols.add(name)
        return symbol(name)

    def evaluate(self, statement: Statement, token: Token, text: str, scope: Scope) -> Any:
        try:
            return Evaluator(scope.env, self.lookup)(text)
        except ZeroDivisionError:
            raise self.error(
                statement, f"division by zero in '{text}'", token.column, scope=scope
            ) from None
        except (ExpressionError, TypeError) as err:
            raise self.error(statement, str(err), token.column, scope=scope) from None

    # -- statements ---------------------------------------------------------------------
    def run(self, statements: list[Statement], scope: Scope, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise self.error(
                statements[0], "blocks nest too deeply (a block calls itself?)", scope=scope
            )
        for statement in statements:
            self.statement(statement, scope, depth)

    def statement(self, st: Statement, scope: Scope, depth: int) -> None:
        head = st.head
        self.statements_run += 1
        if head == "block":
            self.define_block(st, scope)
            return
        if head == "input":
            self.input_statement(st, scope)
            return
        if self.input_shape is None:
            raise self.error(
                st,
                "the description must start with 'input CxHxW' (e.g. 'input 3x224x224')",
                scope=scope,
            )
        if head == "repeat":
            self.repeat(st, scope, depth)
        elif head == "from":
            if len(st.tokens) != 2:
                raise self.error(st, "'from' takes one name: from NAME", scope=scope)
            scope.current = self.resolve(st, st.tokens[1], scope)
        elif head == "freeze":
            if len(st.tokens) != 1:
                raise self.error(
                    st, "'freeze' takes no arguments", st.tokens[1].column, scope=scope
                )
            self.frozen_until = len(self.layers)
        elif head in ("add", "concat", "mul", "matmul", "attention"):
            self.merge(st, scope)
        elif head in self.blocks:
            self.call_block(st, scope, depth)
        elif head in self.rules:
            self.layer(st, scope)
        else:
            known = [*self.rules, *self.blocks, *STATEMENTS]
            raise self.error(st, f"unknown layer kind '{head}'{suggest(head, known)}", scope=scope)

    def input_statement(self, st: Statement, scope: Scope) -> None:
        if scope.prefix or self.input_shape is not None or self.layers:
            raise self.error(st, "'input' must come once, before the first layer", scope=scope)
        parts = list(st.tokens[1:])
        # 3x32x32, or 3×32×32 as convlens itself prints shapes
        texts = re.split("[x×]", parts[0].text) if len(parts) == 1 else [t.text for t in parts]
        dims = [self.evaluate(st, parts[0] if parts else st.tokens[0], t, scope) for t in texts]
        if len(dims) not in (2, 3, 4) or any(
            isinstance(d, tuple | str | float | bool) for d in dims
        ):
            raise self.error(st, INPUT_FORMS, st.tokens[-1].column, scope=scope)
        for d in dims:
            if known_positive(d) is False:
                raise self.error(
                    st, f"input sizes must be positive, got {d}", st.tokens[1].column, scope=scope
                )
        self.input_shape = tuple(dims)
        self.input_line = st.line

    def define_block(self, st: Statement, scope: Scope) -> None:
        header = " ".join(t.text for t in st.tokens[1:]).rstrip(":").strip()
        match = _HEADER.match(header) or re.match(r"^([A-Za-z_]\w*)$", header)
        if not match or not st.tokens[-1].text.endswith(":"):
            raise self.error(
                st,
                "a block is defined as 'block NAME(param, param=default):' "
                "followed by indented lines",
                scope=scope,
            )
        name = match.group(1)
        if name in self.rules or name in STATEMENTS:
            raise self.error(
                st,
                f"block name '{name}' is already a layer kind or statement",
                st.tokens[1].column,
                scope=scope,
            )
        params: list[tuple[str, str | None]] = []
        inner = match.group(2) if match.lastindex and match.lastindex >= 2 else ""
        for part in split_commas(inner or ""):
            key, eq, default = part.partition("=")
            key = key.strip()
            if not key.isidentifier():
                raise self.error(
                    st, f"bad block parameter '{part}'", st.tokens[1].column, scope=scope
                )
            params.append((key, default.strip() if eq else None))
        if not st.body:
            raise self.error(st, f"block '{name}' has no indented body", scope=scope)
        self.blocks[name] = BlockDef(name, params, st.body, st.line, st.source)

    def repeat(self, st: Statement, scope: Scope, depth: int) -> None:
        if len(st.tokens) != 2 or not st.tokens[1].text.endswith(":"):
            raise self.error(
                st,
                "write 'repeat N:' followed by indented lines, or 'repeat N: LAYER …' on one line",
                scope=scope,
            )
        count = self.evaluate(st, st.tokens[1], st.tokens[1].text[:-1], scope)
        if not is_numeric(count) or isinstance(count, bool) or int(count) != count or count < 0:
            raise self.error(
                st,
                f"repeat count must be a whole number, got {count}",
                st.tokens[1].column,
                scope=scope,
            )
        if not st.body:
            raise self.error(st, "repeat has nothing to repeat", scope=scope)
        count = int(count)
        if not self.bound_repeats_ahead:  # the subclass counts as the passes expand
            for _ in range(count):
                self.run(st.body, scope, depth + 1)
            return
        if count > MAX_LAYERS:
            raise self.error(
                st,
                f"repeat {count:,} is more than the limit of {MAX_LAYERS:,} repetitions",
                st.tokens[1].column,
                scope=scope,
            )
        if count == 0:
            return
        # Every pass expands alike, so the first one tells what all of them will cost.
        layers_before, statements_before = len(self.layers), self.statements_run
        self.run(st.body, scope, depth + 1)
        layers = len(self.layers) + (len(self.layers) - layers_before) * (count - 1)
        statements = self.statements_run + (self.statements_run - statements_before) * (count - 1)
        for expected, limit, what in (
            (layers, MAX_LAYERS, "expand the description to {:,} layers"),
            (statements, MAX_STATEMENTS, "run {:,} statements"),
        ):
            if expected > limit:
                raise self.error(
                    st,
                    f"repeat {count:,} would {what.format(expected)}, "
                    f"more than the limit of {limit:,}",
                    st.tokens[1].column,
                    scope=scope,
                )
        for _ in range(count - 1):
            self.run(st.body, scope, depth + 1)

    # -- names --------------------------------------------------------------------------
    def resolve(self, st: Statement, token: Token, scope: Scope) -> str:
        name = token.text
        if name in scope.labels:
            return scope.labels[name]
        raise self.error(
            st,
            f"undefined name '{name}'{suggest(name, scope.labels)}; "
            "label an output with 'as NAME' first",
            token.column,
            scope=scope,
        )

    def node_name(self, scope: Scope, base: str) -> str:
        name = scope.prefix + base
        candidate, n = name, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{name}_{n}"
        self.taken.add(candidate)
        return candidate

    def split_label(self, st: Statement, scope: Scope) -> tuple[list[Token], str | None]:
        tokens = st.tokens[1:]
        if len(tokens) >= 2 and tokens[-2].text == "as":
            label = tokens[-1].text
            if not label.isidentifier() or label in ("in", "input"):
                raise self.error(
                    st, f"'{label}' cannot be used as a name", tokens[-1].column, scope=scope
                )
            first = scope.bound_at.setdefault(label, st.line)
            if first != st.line:  # a repeat binds it again from the same line: allowed
                raise self.error(
                    st,
                    f"'{label}' is bound twice, at line {first} and at line {st.line}; "
                    "give each output its own name",
                    tokens[-1].column,
                    scope=scope,
                )
            return tokens[:-2], label
        if tokens and tokens[-1].text == "as":
            raise self.error(st, "'as' needs a name after it", tokens[-1].column, scope=scope)
        return tokens, None

    def add_layer(
        self,
        st: Statement,
        scope: Scope,
        kind: str,
        args: dict[str, Any],
        inputs: tuple[str, ...],
        label: str | None,
        frozen: bool = False,
        inplace: bool = False,
    ) -> str:
        if len(self.layers) >= MAX_LAYERS:
            raise self.error(
                st, f"the description has more than the limit of {MAX_LAYERS:,} layers", scope=scope
            )
        scope.counters[kind] += 1
        name = self.node_name(scope, label or f"{kind}_{scope.counters[kind]}")
        where = scope.call_site if st.source == PRELUDE_SOURCE and scope.call_site else st
        self.layers.append(
            LayerSpec(
                name=name,
                kind=kind,
                args=args,
                inputs=inputs,
                frozen=frozen,
                inplace=inplace,
                line=where.line,
                column=where.tokens[0].column,
                origin=f"{where.source or self.source}:{where.line}",
            )
        )
        scope.current = name
        if label:
            scope.labels[label] = name
        return name

    # -- layers, merges and calls -------------------------------------------------------
    def layer(self, st: Statement, scope: Scope) -> None:
        kind = st.head
        rule = self.rules[kind]
        tokens, label = self.split_label(st, scope)
        positional = list(rule.schema.positional)
        args: dict[str, Any] = {}
        frozen = inplace = False
        for token in tokens:
            match = _KEY_VALUE.match(token.text)
            if match:
                key, text = match.group(1), match.group(2)
                if key == "frozen":
                    frozen = bool(self.evaluate(st, token, text, scope))
                    continue
                if key == "inplace" and kind in IN_PLACE_KINDS:
                    inplace = bool(self.evaluate(st, token, text, scope))
                    continue
            else:
                if not positional:
                    raise self.error(
                        st,
                        f"too many values for {kind}: '{token.text}' "
                        f"(it takes {_positional_text(rule.schema)})",
                        token.column,
                        layer=kind,
                        scope=scope,
                    )
                key, text = positional.pop(0).name, token.text
                if key in args:
                    raise self.error(
                        st, f"argument '{key}' of {kind} is given twice", token.column, scope=scope
                    )
            try:
                canonical = ALIASES.get(key, key) if key not in rule.schema.names else key
                if canonical in rule.schema.names and rule.schema[canonical].kind == "name":
                    value: Any = self.resolve(st, Token(text, token.column + len(key) + 1), scope)
                else:
                    value = self.evaluate(st, token, text, scope)
                name, checked = coerce_one(kind, rule.schema, key, value)
            except ArgValueError as err:
                raise self.error(st, str(err), token.column, scope=scope) from None
            if name in args:
                raise self.error(
                    st, f"argument '{name}' of {kind} is given twice", token.column, scope=scope
                )
            args[name] = checked
            if positional and positional[0].name == name:
                positional.pop(0)
        try:
            args = coerce_args(kind, rule.schema, args)
        except ArgValueError as err:
            raise self.error(st, str(err), scope=scope) from None
        self.add_layer(st, scope, kind, args, (scope.current,), label, frozen, inplace)

    def merge(self, st: Statement, scope: Scope) -> None:
        tokens, label = self.split_label(st, scope)
        schema = self.rules[st.head].schema
        args: dict[str, Any] = {}  # key=value options (matmul weight=…, attention is_causal=…)
        for token in [t for t in tokens if _KEY_VALUE.match(t.text)]:
            key, text = _KEY_VALUE.match(token.text).groups()  # type: ignore[union-attr]
            try:
                name, checked = coerce_one(
                    st.head, schema, key, self.evaluate(st, token, text, scope)
                )
            except ArgValueError as err:
                raise self.error(st, str(err), token.column, scope=scope) from None
            if name in args:
                raise self.error(
                    st, f"argument '{name}' of {st.head} is given twice", token.column, scope=scope
                )
            args[name] = checked
        tokens = [t for t in tokens if not _KEY_VALUE.match(t.text)]
        if st.head == "matmul" and args.get("weight") is not None and not tokens:
            self.add_layer(st, scope, st.head, args, (scope.current,), label)  # x @ weight
            return
        if not tokens:
            raise self.error(
                st,
                f"'{st.head}' needs the names of the outputs to join, e.g. '{st.head} skip'",
                scope=scope,
            )
        names = [self.resolve(st, t, scope) for t in tokens]
        inputs = tuple(names) if scope.current in names else (scope.current, *names)
        if len(inputs) < 2:
            raise self.error(
                st,
                f"'{st.head} {tokens[0].text}' names the current output "
                "itself: it needs another output to join",
                tokens[0].column,
                scope=scope,
            )
        self.add_layer(st, scope, st.head, args, inputs, label)

    def call_block(self, st: Statement, scope: Scope, depth: int) -> None:
        block = self.blocks[st.head]
        tokens, label = self.split_label(st, scope)
        names = [p for p, _ in block.params]
        values: dict[str, Any] = {}
        positional = list(names)
        for token in tokens:
            match = _KEY_VALUE.match(token.text)
            if match:
                key = match.group(1)
                key = key if key in names else ALIASES.get(key, key)
                if key not in names:
                    raise self.error(
                        st,
                        f"block '{block.name}' has no parameter '{match.group(1)}'"
                        f"{suggest(match.group(1), names)}; it takes: "
                        f"{', '.join(names) or 'nothing'}",
                        token.column,
                        scope=scope,
                    )
                text = match.group(2)
            else:
                remaining = [p for p in positional if p not in values]
                if not remaining:
                    raise self.error(
                        st, f"too many values for block '{block.name}'", token.column, scope=scope
                    )
                key, text = remaining[0], token.text
            if key in values:
                raise self.error(
                    st,
                    f"parameter '{key}' of block '{block.name}' is given twice",
                    token.column,
                    scope=scope,
                )
            values[key] = self.evaluate(st, token, text, scope)
        env: dict[str, Any] = {}
        for name, default in block.params:
            if name in values:
                env[name] = values[name]
            elif default is not None:
                env[name] = self.evaluate(
                    st, st.tokens[0], default, Scope("", env, {}, "", call_chain=scope.call_chain)
                )
            else:
                raise self.error(st, f"block '{block.name}' needs parameter '{name}'", scope=scope)
        scope.counters[block.name] += 1
        instance = label or f"{block.name}_{scope.counters[block.name]}"
        inner = Scope(
            prefix=f"{scope.prefix}{instance}.",
            env=env,
            labels={"in": scope.current},
            current=scope.current,
            call_chain=(*scope.call_chain, f"block '{block.name}' called at line {st.line}"),
            call_site=scope.call_site or (st if st.source != PRELUDE_SOURCE else None),
        )
        self.run(block.body, inner, depth + 1)
        scope.current = inner.current
        if label:
            scope.labels[label] = inner.current

    # -- result -------------------------------------------------------------------------
    def network(self, name: str, strict: bool = True) -> Network:
        if self.input_shape is None:
            raise SpecError(
                "the description is empty: it needs at least 'input CxHxW'",
                SourcePosition(self.source, 1, 1),
            )
        if not self.layers:
            raise SpecError(
                "nothing to analyse: the description has no layers after its input line",
                SourcePosition(self.source, self.input_line, 1),
            )
        unused = sorted(set(self.bindings) - self.used_bindings)
        if unused and strict:
            known = ", ".join(sorted(self.symbols | self.used_bindings)) or "none"
            raise SpecError(
                f"--set names symbol(s) the description does not use: "
                f"{', '.join(unused)} (its symbols: {known})"
            )
        layers = [
            LayerSpec(**{**spec.__dict__, "frozen": True}) if i < self.frozen_until else spec
            for i, spec in enumerate(self.layers)
        ]
        return Network(
            input_shape=self.input_shape,
            layers=tuple(layers),
            name=name,
            source=self.source,
            used_bindings=frozenset(self.used_bindings),
        )


def _positional_text(schema: Any) -> str:
    names = [a.name for a in schema.positional]
    return "positional " + ", ".join(names) if names else "no positional values"


def parse_text(
    text: str,
    source: str = "<text>",
    name: str = "network",
    bindings: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> Network:
    """Description text → ``Network``; ``bindings`` put numbers for symbols (``--set``).

    ``strict`` refuses bindings the description does not use (a typo'd ``--set``).
    """
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write first
    expander = Expander(source, bindings or {})
    root = Scope(prefix="", env={}, labels={"input": "input"}, current="input")
    expander.run(read_statements(PRELUDE, PRELUDE_SOURCE), root)
    expander.run(read_statements(text, source), root)
    return expander.network(name, strict)


def parse_file(
    path: str | Path, bindings: Mapping[str, Any] | None = None, strict: bool = True
) -> Network:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is accepted
    except FileNotFoundError:
        raise SpecError(f"no such description file: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read {path}: {err}") from None
    return parse_text(text, str(path), path.stem, bindings, strict)
