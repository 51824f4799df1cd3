"""``convlens analyze``, ``explain`` and ``compare`` (filled in with the core engine)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the convlens version."""
        from convlens import __version__

        print(__version__)
