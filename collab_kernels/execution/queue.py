"""The execute queue of one document, and the entries it shows collaborators.

A :class:`DocumentQueue` runs its requests in submission order, one at a time, on its own
task. :func:`queue_entries` turns its state into the entries of the document's execution map
(cell id -> running/queued, position, pending prompt): a pure function of the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypedDict

from ..contract import ERROR, QUEUED, RUNNING, EntryStatus
from .ports import Hold, Log
from .requests import CellRun, ExecutionRequest


class PromptEntry(TypedDict):
    prompt: str
    password: bool


class QueueEntry(TypedDict, total=False):
    """An entry of the document's execution map (``EXECUTION_MAP``)."""

    status: EntryStatus
    request_id: str
    kernel_id: str
    position: int
    input_request: PromptEntry


#: cell id -> its entry
QueueEntries = dict[str, QueueEntry]

Runner = Callable[[ExecutionRequest], Awaitable[None]]


class DocumentQueue:
    """The execute queue of one document: requests in submission order, one at a time.

    The queue runs through ``runner(request)`` on its own task; it holds the document's room
    (``hold``) while anything is queued or running.
    """

    def __init__(self, key: str, document_id: str | None, runner: Runner, log: Log):
        #: the request's ``queue_key``: its document, or its kernel's scratch executions
        self.key = key
        self.document_id = document_id
        self._runner = runner
        self.log = log
        self.pending: deque[ExecutionRequest] = deque()
        self.current: ExecutionRequest | None = None
        self.task: asyncio.Task[None] | None = None
        self.hold: Hold | None = None

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

    def release_if_idle(self) -> None:
        if not self.busy and self.hold is not None:
            self.hold.release()
            self.hold = None

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


def queue_entries(queue: DocumentQueue, ending: CellRun | None = None) -> QueueEntries:
    """The execution map entries of ``queue``: its running cell (position 0, with its pending
    prompt), then every queued cell in run order (positions 1..). ``ending``: a running cell
    left out, as it will be once it is done."""
    entries: QueueEntries = {}
    current = queue.current
    if current is not None:
        for cell in current.cells:
            if cell.status != RUNNING or cell is ending:
                continue
            entry: QueueEntry = {
                "status": "running",
                "request_id": current.request_id,
                "kernel_id": current.kernel_id,
                "position": 0,
            }
            prompt = current.input_request
            if prompt is not None and prompt.cell_id == cell.cell_id:
                entry["input_request"] = {"prompt": prompt.prompt, "password": prompt.password}
            entries[cell.cell_id] = entry
    for position, (request, cell) in enumerate(queue.queued_cells(), start=1):
        entries.setdefault(
            cell.cell_id,
            {
                "status": "queued",
                "request_id": request.request_id,
                "kernel_id": request.kernel_id,
                "position": position,
            },
        )
    return entries
