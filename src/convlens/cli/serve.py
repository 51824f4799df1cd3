"""``convlens serve``: the local web workbench (parse options, check them, delegate)."""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from convlens.cli.console import fail, handle_errors, stderr
from convlens.errors import ArgumentError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error naming a free port to try instead."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ArgumentError(f"--host {host!r} is not an address of this machine: {err}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            free = free_port(host, port + 1)
            hint = f"; try --port {free}" if free else ""
            raise ArgumentError(f"port {port} on {host} is already in use{hint}") from None
        raise ArgumentError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(128)
    return sock


def free_port(host: str, start: int, tries: int = 50) -> int | None:
    for port in range(start, min(start + tries, 65536)):
        with socket.socket(socket.getaddrinfo(host, port)[0][0], socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    return None


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        host: Annotated[
            str, typer.Option("--host", help="address to listen on (another host only if asked)")
        ] = "127.0.0.1",
        port: Annotated[
            int, typer.Option("--port", "-p", min=0, max=65535, help="0: any free port")
        ] = 8000,
        open_browser: Annotated[
            bool, typer.Option("--open", help="open the page in the default browser")
        ] = False,
        runs: Annotated[
            Path | None, typer.Option("--runs", help="a folder of lab runs for the runs view")
        ] = None,
        timeout: Annotated[
            float, typer.Option("--timeout", min=0.1, help="seconds one analysis may take")
        ] = 10.0,
        max_layers: Annotated[
            int, typer.Option("--max-layers", min=1, help="layers one description may expand to")
        ] = 5000,
        workers: Annotated[
            int, typer.Option("--workers", min=1, help="analysis worker processes")
        ] = 2,
    ) -> None:
        """A local web workbench: edit a description and see every number, the receptive
        field on an image, the derivations and comparisons (docs/web.md)."""
        if runs is not None and not runs.is_dir():
            what = "is not a folder" if runs.exists() else "does not exist"
            raise ArgumentError(f"--runs: {runs} {what}; give the folder that holds lab runs")
        try:
            import uvicorn

            from convlens.web.app import create_app
            from convlens.web.limits import Limits
        except ImportError as err:
            fail(
                f"convlens serve needs the web extra ({err.name} is missing): "
                "pip install 'convlens[web]'"
            )
        sock = bind(host, port)
        url_host = f"[{host}]" if ":" in host else host
        url = f"http://{url_host}:{sock.getsockname()[1]}/"
        allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if host in LOOPBACK else None
        limits = Limits(timeout_s=timeout, max_layers=max_layers, workers=workers)
        app = create_app(limits, runs_dir=runs, allowed_hosts=allowed)
        stderr.print(f"convlens workbench on {url}  (Ctrl-C stops it)", highlight=False)
        if host not in LOOPBACK:
            stderr.print(
                f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach this "
                "machine can use the workbench",
                highlight=False,
            )
        if open_browser:
            import threading
            import webbrowser

            threading.Timer(1.0, webbrowser.open, args=(url,)).start()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        # uvicorn shuts down on Ctrl-C, then raises it again: for a server, the normal end.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        stderr.print("convlens workbench stopped", highlight=False)
