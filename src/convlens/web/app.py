"""The Starlette app: the page, its static files and the HTTP API (docs/web.md).

Request bodies are read with a size cap and checked here; analyses run in the worker
pool. Errors are JSON ``{"error", "line", "column"}`` with a 4xx status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from convlens.web import request as req
from convlens.web.library import descriptions
from convlens.web.limits import Limits
from convlens.web.runs import list_runs, read_run, resolve_inside
from convlens.web.worker import WorkerPool

STATIC = Path(__file__).parent / "static"
# Everything from this server; KaTeX sets styles through the DOM, which CSP allows.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
EXPORT_TYPES = {
    "json": ("application/json", "json"),
    "markdown": ("text/markdown; charset=utf-8", "md"),
    "latex": ("application/x-latex; charset=utf-8", "tex"),
    "csv": ("text/csv; charset=utf-8", "csv"),
}


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message, "line": None, "column": None}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise req.BadRequest(_too_large(limit), status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise req.BadRequest(_too_large(limit), status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"the request is larger than {limit // 1024} KiB, the workbench's limit"


def create_app(
    limits: Limits | None = None,
    runs_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The workbench; ``runs_dir`` enables the runs view, ``allowed_hosts`` refuses other
    Host headers (a page elsewhere cannot reach a loopback server by DNS rebinding)."""
    limits = limits or Limits()
    pool = WorkerPool(limits)

    def analysis_endpoint(
        task: str, extra: dict[str, req.Check] | None, respond: Callable[[Any, Any], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = req.parse_body(await read_body(request, limits.max_body_bytes))
                analysis, extras = req.read_analysis(body, extra)
                reply = await pool.run(task, analysis, extras)
            except req.BadRequest as err:
                return error(err.message, err.status)
            if reply[0] == "error":
                return JSONResponse(reply[2], status_code=reply[1])
            return respond(reply[1], extras)

        return endpoint

    def json_text(text: str, extras: Any) -> Response:
        return Response(text, media_type="application/json")

    def json_value(value: Any, extras: Any) -> Response:
        return JSONResponse(value)

    def exported(text: str, extras: Any) -> Response:
        media, suffix = EXPORT_TYPES.get(extras.get("format") or "json", EXPORT_TYPES["json"])
        name = "comparison" if extras.get("description_b") is not None else "network"
        disposition = f'attachment; filename="{name}.{suffix}"'
        return Response(text, media_type=media, headers={"Content-Disposition": disposition})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def api_index(request: Request) -> Response:
        return JSONResponse(
            {
                "endpoints": [
                    f"{', '.join(sorted(set(r.methods or ()) - {'HEAD'}))} {r.path}"
                    for r in api_routes
                ],
                "limits": {
                    "max_body_bytes": limits.max_body_bytes,
                    "max_layers": limits.max_layers,
                    "timeout_s": limits.timeout_s,
                },
                "runs": runs_dir is not None,
                "docs": "docs/web.md",
            }
        )

    async def library(request: Request) -> Response:
        return JSONResponse({"descriptions": descriptions()})

    async def runs(request: Request) -> Response:
        if runs_dir is None:
            return JSONResponse({"enabled": False, "runs": []})
        return JSONResponse({"enabled": True, "folder": str(runs_dir), "runs": list_runs(runs_dir)})

    async def run_detail(request: Request) -> Response:
        if runs_dir is None:
            return error("no runs folder: start the server with --runs DIR", 404)
        run = read_run(runs_dir, request.path_params["path"])
        if run is None:
            return error(f"no run '{request.path_params['path']}' in the runs folder", 404)
        return JSONResponse(run)

    async def run_image(request: Request) -> Response:
        relative = request.path_params["path"]
        path = resolve_inside(runs_dir, relative) if runs_dir is not None else None
        if path is None or path.suffix.lower() != ".png" or not path.is_file():
            return error(f"no image '{relative}' in the runs folder", 404)
        return FileResponse(path, media_type="image/png")

    api_routes = [
        Route("/api", api_index, methods=["GET"]),
        Route("/api/library", library, methods=["GET"]),
        Route("/api/analyze", analysis_endpoint("analyze", None, json_text), methods=["POST"]),
        Route("/api/workbench", analysis_endpoint("workbench", None, json_value), methods=["POST"]),
        Route(
            "/api/explain", analysis_endpoint("explain", req.LAYER, json_value), methods=["POST"]
        ),
        Route(
            "/api/receptive-field",
            analysis_endpoint("receptive_field", req.POSITION, json_value),
            methods=["POST"],
        ),
        Route(
            "/api/compare",
            analysis_endpoint("compare", req.SECOND_DESCRIPTION, json_value),
            methods=["POST"],
        ),
        Route(
            "/api/export",
            analysis_endpoint("export", {**req.EXPORT_FORMAT, **req.SECOND_DESCRIPTION}, exported),
            methods=["POST"],
        ),
        Route("/api/runs", runs, methods=["GET"]),
        Route("/api/runs/{path:path}", run_detail, methods=["GET"]),
        Route("/runs-files/{path:path}", run_image, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.start()
        try:
            yield
        finally:
            await pool.close()

    middleware = []
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            *api_routes,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.pool = pool
    return app
