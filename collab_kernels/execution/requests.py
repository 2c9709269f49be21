"""Execute requests and their cells: what ``POST .../execute`` creates and ``GET
.../requests/{id}`` reports.

An :class:`ExecutionRequest` is one execute call: one or more cells of one document, run as one
batch in the document's queue. Each cell is a :class:`CellRun`. Finished requests stay in a
bounded :class:`RequestRegistry` so that clients can poll their outcome.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from ..contract import ABORTED, CANCELLED, DONE, QUEUED, RUNNING, CellResult, RequestStatus
from .results import OutputCollector

#: Why the rest of a running request will not run (``ExecutionRequest.stop_reason``).
StopReason = Literal["interrupted", "restarted", "dead", "shutdown"]


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat()


class CellError(TypedDict):
    ename: str
    evalue: str


@dataclass(eq=False)
class InputPrompt:
    """A pending ``input()`` prompt of a request's running cell."""

    cell_id: str
    prompt: str
    password: bool
    requested: str = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "prompt": self.prompt,
            "password": self.password,
            "requested": self.requested,
        }


@dataclass(eq=False)
class CellRun:
    """One cell of a request (for a scratch execution: its code, ``cell_id`` empty)."""

    cell_id: str
    #: The code to send; emptied once it is sent (the request history keeps no code).
    code: str
    status: RequestStatus = QUEUED
    result: CellResult | None = None
    execution_count: int | None = None
    msg_id: str | None = None
    error: CellError | None = None
    #: Set while running: the cell ends when both the execute_reply and the iopub idle came.
    reply: dict[str, Any] | None = None
    idle_seen: bool = False
    #: time.monotonic() of the reply or of this run's latest iopub message, whichever is later
    #: (how long the kernel's iopub has been quiet since the reply).
    last_heard: float = 0.0
    finished: asyncio.Future[None] | None = None
    #: The shared client's connection count when the cell was sent (restarts bump it).
    generation: int = 0
    #: Ended because its kernel process died or restarted: what that process still sends
    #: (a KeyboardInterrupt at shutdown) is dropped, not written after the cell's end marker,
    #: as the stock frontend drops messages of a restarted kernel's old requests.
    kernel_gone: bool = False
    #: Its outputs as nbformat JSON, for ``{"code"}`` executions (the nbmodel protocol
    #: returns them in the request status); None when they only go to the document.
    outputs: OutputCollector | None = None
    #: (count, queue entries, the writer's mark) of the end written into the document ahead
    #: of the idle status (``Runner.write_end_early``), until the cell completes
    end_written: tuple[int | None, dict[str, Any], object] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cell_id": self.cell_id,
            "status": self.status,
            "execution_count": self.execution_count,
            "result": self.result,
        }
        if self.error:
            data["error"] = dict(self.error)
        return data


@dataclass(eq=False)
class ExecutionRequest:
    kernel_id: str
    #: The room id of the cells' document; None for a scratch execution (code alone).
    document_id: str | None
    path: str | None
    cells: list[CellRun]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: RequestStatus = QUEUED
    result: CellResult | None = None
    created: str = field(default_factory=utcnow)
    started: str | None = None
    finished: str | None = None
    username: str | None = None
    #: ``{"stop_on_error": false}``: an error does not end the request (kernel death does).
    stop_on_error: bool = True
    #: ``DELETE ...?running=1`` asked to stop it.
    cancel_requested: bool = False
    #: Set when an interrupt or a kernel event stopped the rest of the request.
    stop_reason: StopReason | None = None
    input_request: InputPrompt | None = None
    #: The collected outputs were forgotten (the registry's output budget).
    outputs_dropped: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def queue_key(self) -> str:
        """The queue it runs in: its document's, or its kernel's scratch queue."""
        return self.document_id if self.document_id is not None else f"scratch:{self.kernel_id}"

    @property
    def outputs(self) -> list[dict[str, Any]] | None:
        """The collected outputs of its cells (None if none were collected)."""
        collectors = [c.outputs for c in self.cells if c.outputs is not None]
        if not collectors:
            return None
        return [output for collector in collectors for output in collector.outputs]

    def drop_outputs(self) -> int:
        """Forget the collected outputs; how many bytes they held."""
        freed = 0
        for cell in self.cells:
            if cell.outputs is not None:
                freed += cell.outputs.size
                cell.outputs.outputs.clear()
                cell.outputs.size = 0
        return freed

    @property
    def execution_count(self) -> int | None:
        counts = [c.execution_count for c in self.cells if c.execution_count is not None]
        return counts[-1] if counts else None

    def to_dict(self) -> dict[str, Any]:
        """The request's view; ``input_request`` only while a prompt waits (clients of the
        nbmodel protocol test whether the key is there)."""
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "kernel_id": self.kernel_id,
            "document_id": self.document_id,
            "path": self.path,
            "username": self.username,
            "status": self.status,
            "result": self.result,
            "execution_count": self.execution_count,
            "cells": [c.to_dict() for c in self.cells],
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }
        if self.input_request is not None:
            data["input_request"] = self.input_request.to_dict()
        return data

    def mark_running(self) -> None:
        if self.status == QUEUED:
            self.status = RUNNING
            self.started = utcnow()

    def end(self, result: CellResult) -> None:
        """Finish the request; cells not run get "cancelled" (cancel) or "aborted"."""
        if self.status == DONE:
            return
        for cell in self.cells:
            if cell.status != DONE:
                cell.status = DONE
                cell.result = CANCELLED if result == CANCELLED else ABORTED
            cell.code = ""
        self.status = DONE
        self.result = result
        self.finished = utcnow()
        self.input_request = None
        self.done.set()


class RequestRegistry:
    """Every live request plus the last ``history`` finished ones, by request id.

    Collected outputs of finished requests are kept up to ``output_budget`` bytes in all;
    beyond, the oldest finished requests lose theirs (``outputs_dropped``)."""

    def __init__(self, history: int = 1000, output_budget: int = 64 << 20):
        self.history = history
        self.output_budget = output_budget
        self._requests: OrderedDict[str, ExecutionRequest] = OrderedDict()
        self._collecting = 0  # requests added that collect outputs (0: nothing to trim)

    def add(self, request: ExecutionRequest) -> None:
        self._requests[request.request_id] = request
        self._trim()
        if any(c.outputs is not None for c in request.cells):
            self._collecting += 1
        if self._collecting:
            self.trim_outputs()

    def trim_outputs(self) -> None:
        held = [r for r in self._requests.values() if r.status == DONE and not r.outputs_dropped]
        total = sum(c.outputs.size for r in held for c in r.cells if c.outputs is not None)
        for request in held:
            if total <= self.output_budget:
                break
            total -= request.drop_outputs()
            request.outputs_dropped = True

    def get(self, request_id: str) -> ExecutionRequest | None:
        return self._requests.get(request_id)

    def list(self, kernel_id: str | None = None) -> list[ExecutionRequest]:
        return [r for r in self._requests.values() if kernel_id is None or r.kernel_id == kernel_id]

    def __len__(self) -> int:
        return len(self._requests)

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
