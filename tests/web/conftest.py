"""Shared pieces of the web tests: the repository's examples, the CLI to compare with,
and one ASGI test client per module (starting the worker processes costs ~1 s)."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
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


@contextlib.contextmanager
def served(*options: str) -> Iterator[str]:
    """A real ``convlens serve --port 0 OPTIONS`` in its own process; yields its URL and
    stops it with Ctrl-C (SIGINT) afterwards, checking that it exits cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "convlens.cli.main", "serve", "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # "convlens workbench on http://127.0.0.1:PORT/ …"
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if match is None:
        process.kill()
        pytest.fail(f"convlens serve did not start: {line}{process.stderr.read()}")
    try:
        _wait_until_serving(match.group(0))
        yield match.group(0)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    rest = process.stderr.read()
    assert code == 0 and rest.strip().endswith("convlens workbench stopped"), rest


def _wait_until_serving(url: str, seconds: float = 30.0) -> None:
    """uvicorn answers once the worker processes have started (the app's lifespan)."""
    import httpx2

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx2.get(url + "api", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"convlens serve at {url} did not answer within {seconds:g} s")
        time.sleep(0.1)
