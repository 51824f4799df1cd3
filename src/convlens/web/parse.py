"""Description text → ``Network`` under the workbench's limits, and the symbols it uses.

The expander is the spec front-end's own, counting as it goes: a description that
would expand to more layers (or statements) than allowed stops at the line that went
over, instead of building millions of records first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convlens.core.records import Network
from convlens.errors import SpecError
from convlens.spec.parser import PRELUDE_SOURCE, Expander, Scope, Statement, read_statements
from convlens.spec.prelude import PRELUDE
from convlens.web.limits import Limits

# What the command line names a description given as text (``convlens analyze "$(cat f)"``):
# the same names make the API's JSON byte-for-byte the CLI's.
TEXT_SOURCE = "<text>"
TEXT_NAME = "network"


@dataclass(frozen=True)
class Parsed:
    network: Network
    symbols: frozenset[str]  # every size symbol the description names, bound or not


class LimitExceeded(SpecError):
    """The description is valid but larger than the server analyses."""


class _BoundedExpander(Expander):
    bound_repeats_ahead = False  # counted below as they expand, against the lower limits

    def __init__(self, source: str, bindings: Mapping[str, Any], limits: Limits):
        super().__init__(source, bindings)
        self.limits = limits
        self.executed = 0

    def _where(self, st: Statement, scope: Scope) -> Statement:
        """A built-in block's line is reported where the user called it."""
        return scope.call_site if st.source == PRELUDE_SOURCE and scope.call_site else st

    def statement(self, st: Statement, scope: Scope, depth: int) -> None:
        self.executed += 1
        if self.executed > self.limits.max_statements:
            raise self._limit(
                st,
                scope,
                f"the description expands to more than {self.limits.max_statements:,} "
                "statements (a very large 'repeat'?)",
            )
        super().statement(st, scope, depth)

    def add_layer(self, st: Statement, scope: Scope, *args: Any, **kwargs: Any) -> str:
        if len(self.layers) >= self.limits.max_layers:
            raise self._limit(
                st,
                scope,
                f"the description expands to more than {self.limits.max_layers:,} "
                "layers (a very large 'repeat'?)",
            )
        return super().add_layer(st, scope, *args, **kwargs)

    def _limit(self, st: Statement, scope: Scope, message: str) -> LimitExceeded:
        where = self._where(st, scope)
        error = self.error(where, message + "; the workbench's limit")
        return LimitExceeded(error.message, error.position, error.layer)


def symbols_seen(text: str, bindings: Mapping[str, Any], limits: Limits) -> frozenset[str]:
    """The size symbols a description names up to where it fails, if it fails: with
    ``repeat n:`` the parse stops at ``n``, which then needs a value."""
    expander = _BoundedExpander(TEXT_SOURCE, bindings, limits)
    root = Scope(prefix="", env={}, labels={"input": "input"}, current="input")
    try:
        expander.run(read_statements(PRELUDE, PRELUDE_SOURCE), root)
        expander.run(read_statements(text, TEXT_SOURCE), root)
    except SpecError:
        pass
    return frozenset(expander.symbols | expander.used_bindings)


def parse_description(
    text: str, bindings: Mapping[str, Any], limits: Limits, strict: bool = True
) -> Parsed:
    """As ``convlens.spec.parse_text(text, "<text>", "network", bindings, strict)``, bounded."""
    expander = _BoundedExpander(TEXT_SOURCE, bindings, limits)
    root = Scope(prefix="", env={}, labels={"input": "input"}, current="input")
    expander.run(read_statements(PRELUDE, PRELUDE_SOURCE), root)
    expander.run(read_statements(text, TEXT_SOURCE), root)
    network = expander.network(TEXT_NAME, strict)
    return Parsed(network, frozenset(expander.symbols | expander.used_bindings))
