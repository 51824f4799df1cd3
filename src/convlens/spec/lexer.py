"""Lines of a ``.cnn`` description → statements: tokens split at spaces outside brackets
(with their 1-based columns, for error messages), nested by indentation, ``repeat N: x``
split into a header and its one-line body. No meaning is given to any word here; the
parser (``spec/parser.py``) expands the statements into layers."""

from __future__ import annotations

from dataclasses import dataclass, field

from convlens.errors import SourcePosition, SpecError


@dataclass(frozen=True)
class Token:
    text: str
    column: int


@dataclass
class Statement:
    line: int
    indent: int
    tokens: list[Token]
    body: list[Statement] = field(default_factory=list)
    source: str = ""

    @property
    def head(self) -> str:
        return self.tokens[0].text


class BracketError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


def tokenize(text: str) -> list[Token]:
    """Split at spaces outside brackets, keeping 1-based columns."""
    tokens: list[Token] = []
    depth, start = 0, None
    opened: list[int] = []
    for i, ch in enumerate(text + " "):
        if ch in "([":
            depth += 1
            opened.append(i)
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise BracketError(f"'{ch}' closes a bracket that was never opened", i + 1)
            opened.pop()
        if ch.isspace() and depth <= 0:
            if start is not None:
                tokens.append(Token(text[start:i], start + 1))
                start = None
        elif start is None:
            start = i
    if depth > 0:
        raise BracketError("a bracket opened here is never closed", opened[-1] + 1)
    return tokens


def read_statements(text: str, source: str) -> list[Statement]:
    """Lines → statements nested by indentation (a header ends with ``:``)."""
    root: list[Statement] = []
    stack: list[tuple[int, list[Statement]]] = [(-1, root)]
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].rstrip()
        if not content.strip():
            continue
        expanded = content.expandtabs(4)
        indent = len(expanded) - len(expanded.lstrip())
        try:
            tokens = [Token(t.text, t.column + indent) for t in tokenize(expanded.strip())]
        except BracketError as err:
            raise SpecError(str(err), SourcePosition(source, number, err.column + indent)) from None
        while indent <= stack[-1][0]:
            stack.pop()
        statement = Statement(number, indent, tokens, source=source)
        stack[-1][1].append(statement)
        if tokens[-1].text.endswith(":"):
            stack.append((indent, statement.body))
        elif tokens[0].text == "repeat":
            _split_inline_repeat(statement)
    return root


def _split_inline_repeat(statement: Statement) -> None:
    """``repeat 3: conv2d 64`` → a header ``repeat 3:`` with a one-line body."""
    for i, token in enumerate(statement.tokens):
        if ":" in token.text:
            count, _, first = token.text.partition(":")
            rest = [Token(first, token.column + len(count) + 1)] if first else []
            rest += statement.tokens[i + 1 :]
            statement.tokens = [*statement.tokens[:i], Token(count + ":", token.column)]
            if rest:
                statement.body.append(
                    Statement(statement.line, statement.indent + 1, rest, source=statement.source)
                )
            return


def split_commas(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]
