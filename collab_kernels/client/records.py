"""Typed records: the server's request record, and the events a watched run yields.

``RunRecord`` is what ``GET /api/kernels/{id}/requests/{request_id}`` answers (statuses and
results spelled in :mod:`collab_kernels.contract`); the event dataclasses are what
:meth:`~collab_kernels.client.run.Run.events` yields, in order, each once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..contract import CellResult, RequestStatus


class CellError(TypedDict, total=False):
    ename: str
    evalue: str


class CellRecord(TypedDict, total=False):
    """One cell of a request, as the server reports it."""

    cell_id: str
    status: RequestStatus
    result: CellResult | None
    execution_count: int | None
    error: CellError


class InputPrompt(TypedDict, total=False):
    cell_id: str
    prompt: str
    password: bool
    requested: str


class RunRecord(TypedDict, total=False):
    """An execute request (a run), as the server reports it."""

    request_id: str
    kernel_id: str
    document_id: str
    path: str
    status: RequestStatus
    result: CellResult | None
    execution_count: int | None
    cells: list[CellRecord]
    created: str
    started: str | None
    finished: str | None
    input_request: InputPrompt | None


@dataclass
class CellStarted:
    """A cell of the run started executing (or was already running when watching began)."""

    cell_id: str
    position: int  # 1-based position among the run's cells
    total: int
    source: str = ""


@dataclass
class Output:
    """One piece of output, delivered exactly once.

    Streams come one line at a time (``text`` ends with ``"\\n"`` except a last unfinished
    line, delivered when the cell ends or another output follows it). Other outputs come whole,
    with ``text`` their plain-text form and ``output`` the nbformat dict.
    """

    cell_id: str
    position: int
    output_type: str
    text: str
    name: str | None = None  # stdout / stderr for streams
    output: dict[str, Any] = field(default_factory=dict)


@dataclass
class InputRequested:
    """A cell waits in ``input()``; answer with :meth:`Run.answer_input`."""

    cell_id: str
    position: int
    prompt: str
    password: bool = False


@dataclass
class CellFinished:
    cell_id: str
    position: int
    execution_count: int | None
    result: str | None  # "ok" | "error" | ... as the server reports it, None if unknown


@dataclass
class RunFinished:
    """The run is over; ``status`` is the server's final request record."""

    status: RunRecord

    @property
    def result(self) -> str | None:
        return self.status.get("result")


RunEvent = CellStarted | Output | InputRequested | CellFinished | RunFinished


def output_text(output: dict[str, Any]) -> str:
    """A plain-text rendering of an nbformat output."""
    otype = output.get("output_type")
    if otype == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else str(text)
    if otype == "error":
        tb = output.get("traceback") or []
        if tb:
            return "\n".join(str(line) for line in tb)
        return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    data = output.get("data") or {}
    if "text/plain" in data:
        text = data["text/plain"]
        return "".join(text) if isinstance(text, list) else str(text)
    if data:
        return "<" + ", ".join(sorted(data)) + ">"
    return f"<{otype}>"
