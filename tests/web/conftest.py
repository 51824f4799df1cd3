"""Shared pieces of the web tests: the repository's examples, the CLI to compare with,
and one ASGI test client per module (starting the worker processes costs ~1 s)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from convlens.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
COLOUR_SET = {"k": 3, "NF": 32, "NC": 24}


def example(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def cli_process(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The real ``convlens`` command in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "convlens.cli.main", *args], capture_output=True, cwd=REPO
    )


def cli(*args: str) -> bytes:
    """``convlens ARGS`` run in this process (Typer's runner): its stdout, exit 0 checked."""
    from convlens.cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def set_args(values: dict[str, int]) -> list[str]:
    return ["--set", ",".join(f"{k}={v}" for k, v in values.items())] if values else []


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client
