"""Analyses in worker processes, each request under a time limit.

A description can expand without end (``repeat 10**9:`` of a statement that adds no
layer) or ask SymPy for a very long simplification; Python cannot stop a thread, so
each analysis runs in a separate process, which is killed and replaced when it runs
past the limit. The event loop never blocks: it waits on the pipe in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any

from convlens.web.limits import Limits
from convlens.web.request import Analysis, BadRequest

READY = "ready"


def _serve(conn: Connection, limits: Limits) -> None:
    """The worker's loop: (task, request, extras) in, ("ok", result) or ("error", status,
    body) out, until it reads None."""
    from convlens.errors import ConvlensError
    from convlens.web.tasks import TASKS, error_body

    conn.send(READY)  # imports done: the time limit measures analysis, not start-up
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        task, request, extras = message
        try:
            conn.send(("ok", TASKS[task](request, extras, limits)))
        except ConvlensError as err:
            conn.send(("error", 422, error_body(err)))
        except RecursionError:
            conn.send(("error", 422, _body("the description nests too deeply to analyse")))
        except Exception as err:  # a bug, not bad input: say so, keep serving
            traceback.print_exc()
            conn.send(("error", 500, _body(f"internal error: {type(err).__name__}: {err}")))


def _body(message: str) -> dict[str, Any]:
    return {"error": message, "line": None, "column": None}


class _Worker:
    def __init__(self, context: Any, limits: Limits):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, limits), daemon=True)
        self.process.start()
        child.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.process.join(timeout=2)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """``limits.workers`` processes; ``run`` waits for an idle one (requests queue up)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await asyncio.gather(*(self._add() for _ in range(self.limits.workers)))

    async def _add(self) -> None:
        worker = _Worker(self._context, self.limits)
        self._all.add(worker)
        try:
            ready = await asyncio.to_thread(worker.conn.recv)
        except EOFError:
            ready = None
        if ready != READY:
            self._all.discard(worker)
            worker.kill()
            raise RuntimeError("a worker process failed to start")
        self._idle.put_nowait(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker that overran or died; start another in the background."""
        self._all.discard(worker)
        worker.kill()
        task = asyncio.get_running_loop().create_task(self._add())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def run(self, task: str, request: Analysis, extras: dict[str, Any]) -> Any:
        """The task's result; ``BadRequest`` (422) past the time limit, the worker replaced."""
        worker = await self._idle.get()
        done = False
        try:
            worker.conn.send((task, request, extras))
            if not await asyncio.to_thread(worker.conn.poll, self.limits.timeout_s):
                raise BadRequest(
                    f"the analysis took longer than {self.limits.timeout_s:g} s, the "
                    "workbench's limit per request (a very large 'repeat'?); it was stopped",
                    status=422,
                )
            try:
                reply = worker.conn.recv()
            except EOFError:
                raise BadRequest(
                    "the analysis stopped unexpectedly (out of memory?)", status=422
                ) from None
            done = True
            return reply
        finally:
            if done:
                self._idle.put_nowait(worker)
            else:  # overran, died or the request was cancelled mid-analysis
                self._replace(worker)

    async def close(self) -> None:
        for task in list(self._starting):
            with contextlib.suppress(BaseException):
                await task
        for worker in list(self._all):
            await asyncio.to_thread(worker.stop)
        self._all.clear()
