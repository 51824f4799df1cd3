"""One options type for the lab commands: each lab declares its options once (type,
help, default shown) and each command names the ones it takes, instead of repeating the
same ``Annotated`` blocks in every command's signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer


@dataclass(frozen=True)
class LabOption:
    """A config field as a command-line option. Every default is None, so that with
    ``--resume`` only the options actually typed are compared with the saved config."""

    kind: Any  # str, int, float, bool, list[str] (repeatable)
    help: str
    flags: tuple[str, ...] = ()  # e.g. ("--flip/--no-flip",); default: --field-name

    def parameter(self, name: str) -> inspect.Parameter:
        option = typer.Option(*self.flags, help=self.help)
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[self.kind | None, option],
        )


def with_options(
    table: dict[str, LabOption], names: Sequence[str]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The command gets the named options it was given as ``given`` (field → value,
    options not typed left out) besides its own parameters."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "given"
        ]
        shared = [table[name].parameter(name) for name in names]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            typed = {k: kwargs.pop(k) for k in names}
            given = {k: v for k, v in typed.items() if v is not None and v != [] and v != ()}
            return command(given=given, **kwargs)

        del wrapper.__wrapped__  # Typer must read the signature below, not the command's
        required = [p for p in own if p.default is inspect.Parameter.empty]
        tail = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own
            if p.default is not inspect.Parameter.empty
        ]  # the shared options first in --help, then the command's own
        parameters = [*required, *shared, *tail]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
