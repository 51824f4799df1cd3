"""Random descriptions of every layer kind, drawn by Hypothesis from the kinds' lowerings.

Each lowering (``src/convlens/torch/lowering/<family>.py``) says what random
configurations of its kind look like as a plain function of a few choices (``Choices``);
here Hypothesis makes the choices, so a failure shrinks to a small configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from convlens.core.registry import all_rules
from convlens.torch.registry import get_lowering

T = TypeVar("T")

# Rows only the tracer writes: an operation without a rule, a module's unused parameters.
TRACE_ONLY = {"opaque", "params_only"}
KINDS = sorted(set(all_rules()) - TRACE_ONLY)


class DrawnChoices:
    """The ``Choices`` a lowering's ``examples`` asks for, answered by Hypothesis."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]):
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))


@st.composite
def layers_of(draw: Callable[[st.SearchStrategy[Any]], Any], *kinds: str) -> str:
    """A random description (input line included) with a layer of one of ``kinds``
    (of every kind with a lowering if none is named)."""
    kind = draw(st.sampled_from(kinds or KINDS))
    return get_lowering(kind).examples(DrawnChoices(draw))


def kinds_in(text: str) -> set[str]:
    """The kinds of the layers a description names (after its input line)."""
    return {line.split()[0] for line in text.splitlines()[1:] if line.split()[0] != "from"}
