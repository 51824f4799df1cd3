"""What one request to the workbench may cost; ``convlens serve`` can change each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps that keep a shared server responsive: a ``repeat 10**9:`` is refused fast.

    They are tighter than the command line's (``spec.parser.MAX_LAYERS`` and
    ``MAX_STATEMENTS``) because the server analyses text that anyone who can reach it
    sends.
    """

    max_body_bytes: int = 256 * 1024  # a request body; the largest zoo description is < 3 KB
    max_layers: int = 5000  # DenseNet-201 has 707
    max_statements: int = 200_000  # statements executed while expanding blocks and repeats
    timeout_s: float = 10.0  # one analysis, in a worker process that is killed past it
    workers: int = 2  # worker processes: one slow request never blocks the others
