"""``convlens serve``: bad options exit 2 with one clear line; a real server answers and
stops cleanly on Ctrl-C."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2
from typer.testing import CliRunner

from convlens.cli.main import app
from tests.web.conftest import example, served


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args])
    return result.exit_code, " ".join(result.output.split())


def test_a_missing_runs_folder_is_refused(tmp_path: Path) -> None:
    code, output = _run("--runs", str(tmp_path / "nope"))
    assert code == 2
    assert (
        output
        == f"error: --runs: {tmp_path / 'nope'} does not exist; give the folder that holds lab runs"
    )
    (tmp_path / "file").write_text("x")
    code, output = _run("--runs", str(tmp_path / "file"))
    assert code == 2 and "is not a folder" in output


def test_a_port_in_use_is_refused_with_a_free_one_to_try() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = _run("--port", str(port))
    assert code == 2
    assert output.startswith(f"error: port {port} on 127.0.0.1 is already in use; try --port ")
    suggested = int(output.rsplit(" ", 1)[1])
    assert suggested > port
    with socket.socket() as probe:  # the port it suggests was free when it said so
        probe.bind(("127.0.0.1", suggested))


def test_an_unknown_host_is_refused() -> None:
    code, output = _run("--host", "no-such-host.invalid")
    assert code == 2 and "--host 'no-such-host.invalid' is not an address" in output


def test_the_server_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with served("--runs", str(tmp_path)) as url:
        index = httpx2.get(url + "api").json()
        assert index["runs"] is True
        response = httpx2.post(url + "api/analyze", json={"description": example("three_conv.cnn")})
        assert response.status_code == 200 and response.json()["totals"]["params"] == 14136648
        page = httpx2.get(url)
        assert "<title>convlens workbench</title>" in page.text
        # A page elsewhere reaching the loopback server under another name is refused.
        assert httpx2.get(url + "api", headers={"host": "evil.example"}).status_code == 400
