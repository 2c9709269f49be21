"""Execute requests and their bookkeeping: what the REST endpoints report.

An :class:`ExecutionRequest` is one ``POST /api/kernels/{id}/execute``: one or more cells of one
document, run as one atomic batch in the document's queue (:class:`DocumentQueue`). Each cell
is a :class:`CellRun`. Requests are kept in a bounded :class:`RequestRegistry` after they end so
that clients can poll their outcome.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

QUEUED, RUNNING, DONE = "queued", "running", "done"
OK, ERROR, ABORTED, CANCELLED = "ok", "error", "aborted", "cancelled"


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(eq=False)
class CellRun:
    """One cell of a request."""

    cell_id: str
    code: str
    status: str = QUEUED
    result: str | None = None
    execution_count: int | None = None
    msg_id: str | None = None
    error: dict[str, Any] | None = None
    # Set while running: resolved when both the execute_reply and the iopub idle arrived.
    reply: dict[str, Any] | None = None
    idle_seen: bool = False
    finished: asyncio.Future | None = None
    generation: int = 0  # the shared client's connection count when it was sent

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cell_id": self.cell_id,
            "status": self.status,
            "execution_count": self.execution_count,
            "result": self.result,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass(eq=False)
class ExecutionRequest:
    kernel_id: str
    document_id: str
    path: str
    cells: list[CellRun]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = QUEUED
    result: str | None = None
    created: str = field(default_factory=utcnow)
    started: str | None = None
    finished: str | None = None
    username: str | None = None
    # A pending input() prompt of the running cell: {"cell_id","prompt","password"}.
    input_request: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def execution_count(self) -> int | None:
        counts = [c.execution_count for c in self.cells if c.execution_count is not None]
        return counts[-1] if counts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "kernel_id": self.kernel_id,
            "document_id": self.document_id,
            "path": self.path,
            "status": self.status,
            "result": self.result,
            "execution_count": self.execution_count,
            "cells": [c.to_dict() for c in self.cells],
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "input_request": self.input_request,
        }

    def mark_running(self) -> None:
        if self.status == QUEUED:
            self.status = RUNNING
            self.started = utcnow()

    def end(self, result: str) -> None:
        """Finish the request; cells not run get "cancelled" (cancel) or "aborted"."""
        if self.status == DONE:
            return
        for cell in self.cells:
            if cell.status != DONE:
                cell.status = DONE
                cell.result = CANCELLED if result == CANCELLED else ABORTED
        self.status = DONE
        self.result = result
        self.finished = utcnow()
        self.input_request = None
        self.done.set()


class RequestRegistry:
    """Every live request plus the last ``history`` finished ones, by request id."""

    def __init__(self, history: int = 1000):
        self.history = history
        self._requests: OrderedDict[str, ExecutionRequest] = OrderedDict()

    def add(self, request: ExecutionRequest) -> None:
        self._requests[request.request_id] = request
        self._trim()

    def get(self, request_id: str) -> ExecutionRequest | None:
        return self._requests.get(request_id)

    def list(self, kernel_id: str | None = None) -> list[ExecutionRequest]:
        return [r for r in self._requests.values() if kernel_id is None or r.kernel_id == kernel_id]

    def _trim(self) -> None:
        # Called on every add, so O(1) most of the time: nothing is scanned until there are
        # more requests than the history keeps plus a slack (a tenth), then the oldest
        # finished ones are dropped down to exactly ``history``.
        if len(self._requests) <= self.history + max(self.history // 10, 1):
            return
        finished = [rid for rid, r in self._requests.items() if r.status == DONE]
        excess = len(finished) - self.history
        for rid in finished[: max(excess, 0)]:
            del self._requests[rid]


class DocumentQueue:
    """The execute queue of one document: requests in submission order, one at a time.

    The queue runs through ``runner(request)`` (the manager's coroutine) on its own task; it
    holds the document's room while anything is queued or running.
    """

    def __init__(self, document_id: str, runner: Any, log: Any):
        self.document_id = document_id
        self._runner = runner
        self.log = log
        self.pending: deque[ExecutionRequest] = deque()
        self.current: ExecutionRequest | None = None
        self.task: asyncio.Task | None = None
        self.hold: Any = None

    def __len__(self) -> int:
        return len(self.pending) + (1 if self.current is not None else 0)

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.pending)

    def submit(self, request: ExecutionRequest) -> bool:
        """Queue ``request``. Returns True when the queue was idle: the request is then
        ``current`` at once (before the worker's first step), so that the caller may start
        its first cell synchronously, without waiting for a loop iteration."""
        idle = self.current is None and not self.pending and (self.task is None or self.task.done())
        if idle:
            self.current = request
            self.task = asyncio.ensure_future(self._work(request))
            return True
        self.pending.append(request)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._work())
        return False

    def queued_cells(self) -> list[tuple[ExecutionRequest, CellRun]]:
        """(request, cell) of everything waiting, in the order it will run (the running
        request's remaining cells first)."""
        out: list[tuple[ExecutionRequest, CellRun]] = []
        if self.current is not None:
            out.extend((self.current, c) for c in self.current.cells if c.status == QUEUED)
        for request in self.pending:
            out.extend((request, c) for c in request.cells if c.status == QUEUED)
        return out

    def remove(self, request: ExecutionRequest) -> bool:
        try:
            self.pending.remove(request)
        except ValueError:
            return False
        return True

    def take_pending(self) -> list[ExecutionRequest]:
        taken = list(self.pending)
        self.pending.clear()
        return taken

    async def _work(self, first: ExecutionRequest | None = None) -> None:
        while first is not None or self.pending:
            request = first if first is not None else self.pending.popleft()
            first = None
            self.current = request
            try:
                await self._runner(request)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception(
                    "collab_kernels: execute request %s for %s failed",
                    request.request_id,
                    request.path,
                )
                request.end(ERROR)
            finally:
                self.current = None
