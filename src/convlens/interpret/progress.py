"""How long work reports progress without knowing who draws it: ``progress(done, total, label)``.

The API calls it; the CLI turns it into a Rich bar; ``None`` means silence.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def silent(done: int, total: int, label: str) -> None:
    """The default: report nothing."""
