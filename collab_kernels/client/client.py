"""The Python client for a collab_kernels server: notebooks, runs, outputs, prompts.

Everything goes through the server: the REST API (sessions, the collaboration session, the
execute/request/input endpoints of ``docs/architecture.md``) and the notebook's room, a Y
document kept in sync over the room websocket (:class:`~collab_kernels.client.connection.RoomConnection`).
A run's state lives in the server; a client only watches it, so any number of clients (and
browsers) can watch the same run, come and go.

Async use::

    async with CollabClient("http://127.0.0.1:8888/", token="...") as client:
        nb = await client.open_notebook("analysis.ipynb")
        nb.set_source(0, "x = 41")
        run = await nb.execute()              # all code cells, one request
        async for event in run.events():      # outputs line by line, prompts, progress
            ...
        status = await run.wait()

Blocking use: :class:`SyncCollabClient` wraps the same objects and runs them on a private
event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ..contract import EXECUTION_MAP, build_room_id, source_hash
from .params import inject_parameters as _inject_parameters
from .servers import ServerInfo, running_servers, server_for_path

log = logging.getLogger("collab_kernels.client")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class CollabError(Exception):
    """Base class of the client's errors."""


class ServerError(CollabError):
    """The server answered with an unexpected HTTP status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, method: str = "", url: str = ""):
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url


class NotFound(ServerError):
    """A 404 from the server."""


class RunNotFound(CollabError):
    """No server known to this client has a run (request) with that id."""


# --------------------------------------------------------------------------------------------
# Run events
# --------------------------------------------------------------------------------------------


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

    status: dict[str, Any]

    @property
    def result(self) -> str | None:
        return self.status.get("result")


RunEvent = CellStarted | Output | InputRequested | CellFinished | RunFinished


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


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


def _visible_tail(tail: str) -> str:
    # The server stores an unfinished line whose cursor is not at its end as
    # "line\rprefix" (see execution/outputs.py): what a terminal shows is "line".
    return tail.split("\r", 1)[0]


def _py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


def _count(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class CollabClient:
    """An async client for one server, given by URL and token (see :meth:`discover` too)."""

    def __init__(
        self,
        url: str | ServerInfo,
        token: str | None = None,
        *,
        request_timeout: float = 60.0,
        poll_interval: float = 0.3,
    ):
        self.server = url if isinstance(url, ServerInfo) else ServerInfo(url=url, token=token)
        if token is not None:
            self.server.token = token
        self.poll_interval = poll_interval
        headers = {"Accept": "application/json"}
        if self.server.token:
            headers["Authorization"] = f"token {self.server.token}"
        self._http = httpx.AsyncClient(headers=headers, timeout=request_timeout)
        self._notebooks: list[Notebook] = []

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def discover(cls, path: str | os.PathLike | None = None, **kwargs) -> CollabClient:
        """A client for a running server (as ``jupyter server list`` lists them): the one whose
        root holds ``path`` if given, else the most recently started one."""
        if path is not None:
            server = server_for_path(path)
            if server is None:
                raise CollabError(f"no running Jupyter server serves {path}")
            return cls(server, **kwargs)
        servers = running_servers()
        if not servers:
            raise CollabError("no running Jupyter server found (see `jupyter server list`)")
        servers.sort(key=lambda s: s.pid or 0)
        return cls(servers[-1], **kwargs)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str | None:
        return self.server.token

    async def __aenter__(self) -> CollabClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        for nb in list(self._notebooks):
            await nb.close()
        await self._http.aclose()

    # -- REST --------------------------------------------------------------------------------

    def api_url(self, *parts: str) -> str:
        return self.server.url + "/".join(quote(p, safe="/") for p in parts if p)

    async def request(
        self,
        method: str,
        *parts: str,
        json: Any = None,
        params: dict | None = None,
        ok: Iterable[int] = (200, 201, 202, 204),
    ) -> Any:
        url = self.api_url(*parts)
        try:
            response = await self._http.request(method, url, json=json, params=params)
        except httpx.HTTPError as e:
            raise ServerError(
                f"cannot reach the server at {self.server.url}: {e}", None, method, url
            ) from e
        if response.status_code not in tuple(ok):
            message = response.reason_phrase
            try:
                body = response.json()
                message = body.get("message") or body.get("reason") or message
            except Exception:
                if response.text:
                    message = response.text[:300]
            cls = NotFound if response.status_code == 404 else ServerError
            raise cls(
                f"{method} {url}: {response.status_code} {message}",
                response.status_code,
                method,
                url,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    async def check(self) -> dict:
        """The server's version info; raises :class:`ServerError` if unreachable or unauthorized."""
        await self.request("GET", "api", "status")
        return await self.request("GET", "api")

    async def kernelspecs(self) -> dict:
        return await self.request("GET", "api", "kernelspecs")

    async def get_contents(self, path: str, content: bool = True) -> dict:
        return await self.request(
            "GET", "api", "contents", path, params={"content": "1" if content else "0"}
        )

    async def save_notebook_to(self, path: str, notebook: dict) -> dict:
        """Write a notebook (nbformat dict) at ``path`` through the contents API."""
        return await self.request(
            "PUT",
            "api",
            "contents",
            path,
            json={"type": "notebook", "format": "json", "content": notebook},
        )

    async def kernel(self, kernel_id: str) -> dict | None:
        try:
            return await self.request("GET", "api", "kernels", kernel_id)
        except NotFound:
            return None

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self.request("POST", "api", "kernels", kernel_id, "interrupt")

    async def session_for(self, path: str) -> dict | None:
        for session in await self.request("GET", "api", "sessions"):
            if session.get("path") == path:
                return session
        return None

    async def start_session(
        self, path: str, kernel_name: str | None = None, cwd: str | None = None
    ) -> dict:
        """The notebook's session (kernel), created if there is none.

        ``cwd`` (a server path of a folder) starts the kernel there instead of the notebook's
        folder; it applies only when a new kernel is started.
        """
        existing = await self.session_for(path)
        if existing is not None:
            return existing
        kernel: dict[str, Any] = {}
        if cwd is not None:
            model: dict[str, Any] = {"path": cwd}
            if kernel_name:
                model["name"] = kernel_name
            started = await self.request("POST", "api", "kernels", json=model, ok=(201,))
            kernel["id"] = started["id"]
        elif kernel_name:
            kernel["name"] = kernel_name
        body = {"path": path, "type": "notebook", "name": path.rsplit("/", 1)[-1], "kernel": kernel}
        return await self.request("POST", "api", "sessions", json=body, ok=(201,))

    async def collaboration_session(self, path: str, file_type: str = "notebook") -> dict:
        """``PUT /api/collaboration/session/{path}``: ``{"fileId", "sessionId", ...}``."""
        return await self.request(
            "PUT",
            "api",
            "collaboration",
            "session",
            path,
            json={"format": "json", "type": file_type},
            ok=(200, 201),
        )

    # -- runs --------------------------------------------------------------------------------

    async def list_runs(self, kernel_id: str | None = None) -> list[dict]:
        """Every execute request the server knows (newest last)."""
        if kernel_id:
            return await self.request("GET", "api", "kernels", kernel_id, "requests")
        return await self.request("GET", "api", "collaboration", "requests")

    async def find_run(self, run_id: str) -> dict:
        for record in await self.list_runs():
            if record.get("request_id") == run_id:
                return record
        # allow an unambiguous prefix, as git does for commits
        matches = [
            r for r in await self.list_runs() if str(r.get("request_id", "")).startswith(run_id)
        ]
        if len(matches) == 1:
            return matches[0]
        raise RunNotFound(f"no run {run_id!r} on {self.server.url}")

    async def run_status(self, kernel_id: str, run_id: str) -> dict:
        return await self.request("GET", "api", "kernels", kernel_id, "requests", run_id)

    async def cancel_run(self, kernel_id: str, run_id: str) -> dict:
        """Stop a run: a queued one is dropped; a running one is cancelled (queued cells
        dropped, the running cell interrupted). Returns the request record."""
        try:
            await self.request(
                "DELETE",
                "api",
                "kernels",
                kernel_id,
                "requests",
                run_id,
                params={"running": "1"},
                ok=(200, 202, 204),
            )
        except ServerError as e:
            if e.status != 409:
                raise
            record = await self.run_status(kernel_id, run_id)
            if record.get("status") != "done":
                # A server that cannot cancel a running request: interrupt the cell that runs
                # (the server then drops the kernel's queued cells).
                await self.interrupt_kernel(kernel_id)
            return record
        return await self.run_status(kernel_id, run_id)

    async def answer_input(
        self, kernel_id: str, document_id: str, cell_id: str, value: str
    ) -> None:
        await self.request(
            "POST",
            "api",
            "kernels",
            kernel_id,
            "input",
            json={"document_id": document_id, "cell_id": cell_id, "value": value},
        )

    # -- documents ---------------------------------------------------------------------------

    async def open_notebook(
        self,
        path: str,
        *,
        kernel_name: str | None = None,
        cwd: str | None = None,
        start_kernel: bool = True,
    ) -> Notebook:
        """Open the notebook's document (and its kernel session, unless ``start_kernel=False``)."""
        session = (
            await self.start_session(path, kernel_name, cwd)
            if start_kernel
            else await self.session_for(path)
        )
        collab = await self.collaboration_session(path)
        room_id = build_room_id(collab["fileId"])
        nb = Notebook(self, path, room_id, collab.get("sessionId"), session)
        await nb._connect()
        self._notebooks.append(nb)
        return nb

    async def attach(self, run_id: str) -> Run:
        """Watch an existing run (by request id): opens its notebook's document."""
        record = await self.find_run(run_id)
        path = record.get("path")
        if not path:
            raise CollabError(f"run {run_id} has no notebook path (its document is gone?)")
        nb = await self.open_notebook(path, start_kernel=False)
        return Run(nb, record)


# --------------------------------------------------------------------------------------------
# Notebook
# --------------------------------------------------------------------------------------------


class Notebook:
    """A notebook's live document on the server, plus its kernel session."""

    def __init__(
        self,
        client: CollabClient,
        path: str,
        room_id: str,
        session_id: str | None,
        session: dict | None,
    ):
        self.client = client
        self.path = path
        self.document_id = room_id
        self.session_id = session_id
        self.session = session
        self.connection = None
        self.ynotebook = None
        self._runs: list[Run] = []

    @property
    def kernel_id(self) -> str | None:
        kernel = (self.session or {}).get("kernel") or {}
        return kernel.get("id")

    @property
    def kernel_name(self) -> str | None:
        kernel = (self.session or {}).get("kernel") or {}
        return kernel.get("name")

    async def _connect(self) -> None:
        from .connection import RoomConnection

        self.connection = RoomConnection(
            self.client.server.url,
            self.document_id,
            self.session_id,
            token=self.client.server.token,
            file_type="notebook",
        )
        await self.connection.connect()
        await asyncio.wait_for(asyncio.shield(self.connection.synced), 60)
        self.ynotebook = self.connection.document

    async def close(self) -> None:
        """Stop watching runs and close the room connection (the runs go on in the server)."""
        for run in self._runs:
            await run._stop_watching()
        self._runs.clear()
        if self in self.client._notebooks:
            self.client._notebooks.remove(self)
        if self.connection is not None:
            conn, self.connection = self.connection, None
            await conn.close()

    async def __aenter__(self) -> Notebook:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- reading -----------------------------------------------------------------------------

    @property
    def cells(self) -> list[dict]:
        """The cells as nbformat dicts (outputs included)."""
        return [self.ynotebook.get_cell(i) for i in range(self.ynotebook.cell_number)]

    def cell(self, ref: int | str) -> dict:
        return self.ynotebook.get_cell(self.index_of(ref))

    def index_of(self, ref: int | str) -> int:
        if isinstance(ref, int):
            if not -self.ynotebook.cell_number <= ref < self.ynotebook.cell_number:
                raise IndexError(f"{self.path} has no cell {ref}")
            return ref % self.ynotebook.cell_number
        for i, ycell in enumerate(self.ynotebook.ycells):
            if ycell.get("id") == ref:
                return i
        raise KeyError(f"{self.path} has no cell with id {ref!r}")

    def code_cell_ids(self) -> list[str]:
        return [
            str(ycell.get("id"))
            for ycell in self.ynotebook.ycells
            if ycell.get("cell_type") == "code" and str(ycell.get("source", "")).strip()
        ]

    @property
    def language(self) -> str:
        from pycrdt import Map

        meta = _py(self.ynotebook.ydoc.get("meta", type=Map).get("metadata")) or {}
        return (
            ((meta.get("language_info") or {}).get("name"))
            or ((meta.get("kernelspec") or {}).get("language"))
            or "python"
        )

    def to_notebook(self) -> dict:
        """The document as an nbformat dict (what the server saves)."""
        return self.ynotebook.get()

    # -- editing (each call is one transaction every collaborator sees) ----------------------

    def set_source(self, ref: int | str, source: str) -> None:
        self.ynotebook.set_cell(self.index_of(ref), source=source)

    def insert_cell(
        self, index: int, source: str = "", cell_type: str = "code", metadata: dict | None = None
    ) -> str:
        cell: dict[str, Any] = {
            "cell_type": cell_type,
            "source": source,
            "metadata": metadata or {},
        }
        if cell_type == "code":
            cell.update(outputs=[], execution_count=None)
        ycell = self.ynotebook.create_ycell(cell)
        self.ynotebook.ycells.insert(index, ycell)
        return str(ycell["id"])

    def delete_cell(self, ref: int | str) -> None:
        del self.ynotebook.ycells[self.index_of(ref)]

    def inject_parameters(
        self, parameters: dict[str, Any], language: str | None = None
    ) -> str | None:
        """Papermill-style parameters cell (see :mod:`.params`); returns its cell id."""
        if not parameters:
            return None
        return _inject_parameters(self.ynotebook, parameters, language or self.language)

    # -- running -----------------------------------------------------------------------------

    async def execute(
        self, cells: Iterable[int | str] | None = None, *, stop_on_error: bool = True
    ) -> Run:
        """Queue one execute request for ``cells`` (default: every non-empty code cell)."""
        if not self.kernel_id:
            raise CollabError(f"{self.path} has no kernel session")
        cell_ids = (
            self.code_cell_ids()
            if cells is None
            else [str(self.ynotebook.ycells[self.index_of(c)]["id"]) for c in cells]
        )
        body: dict[str, Any] = {
            "document_id": self.document_id,
            "cells": [
                {"cell_id": cid, "source_hash": source_hash(self.cell(cid)["source"])}
                for cid in cell_ids
            ],
        }
        if not stop_on_error:
            body["stop_on_error"] = False
        record = await self.client.request(
            "POST", "api", "kernels", self.kernel_id, "execute", json=body, ok=(200, 201, 202)
        )
        record.setdefault("cells", [{"cell_id": cid, "status": "queued"} for cid in cell_ids])
        record.setdefault("kernel_id", self.kernel_id)
        record.setdefault("document_id", self.document_id)
        record.setdefault("path", self.path)
        return Run(self, record)

    async def save(self, timeout: float = 30.0) -> None:
        """Ask the server to save the document now and wait until it has."""
        status = await self.connection.save(timeout)
        if status != "success" and status != "skipped":
            raise CollabError(f"the server could not save {self.path}: {status}")


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------


@dataclass
class _CellWatch:
    cell_id: str
    position: int
    live: bool = False
    started: bool = False
    finished: bool = False
    out_index: int = 0
    consumed: int = 0
    reset: bool = False
    rest_status: str | None = None
    rest_count: int | None = None
    rest_result: str | None = None


class Run:
    """One execute request (the run id is the request id), watched through the document."""

    def __init__(self, notebook: Notebook, record: dict):
        self.notebook = notebook
        self.client = notebook.client
        self.record = record
        self.run_id: str = record["request_id"]
        self.kernel_id: str = record.get("kernel_id") or notebook.kernel_id
        self.document_id: str = record.get("document_id") or notebook.document_id
        self.cell_ids: list[str] = [c["cell_id"] for c in record.get("cells", [])]
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._final: dict | None = None
        self._subscription = None

    @property
    def path(self) -> str:
        return self.record.get("path") or self.notebook.path

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self.path} {self.record.get('status')}>"

    async def status(self) -> dict:
        self.record = await self.client.run_status(self.kernel_id, self.run_id)
        return self.record

    async def cancel(self) -> dict:
        return await self.client.cancel_run(self.kernel_id, self.run_id)

    async def interrupt(self) -> None:
        await self.client.interrupt_kernel(self.kernel_id)

    async def answer_input(self, value: str, cell_id: str | None = None) -> None:
        if cell_id is None:
            prompt = (await self.status()).get("input_request") or {}
            cell_id = prompt.get("cell_id")
            if cell_id is None:
                raise CollabError(f"run {self.run_id} is not waiting for input")
        await self.client.answer_input(self.kernel_id, self.document_id, cell_id, value)

    async def wait(self, timeout: float | None = None) -> dict:
        """Wait until the run is over; its final record."""

        async def _drain():
            async for _ in self.events():
                pass
            return self._final

        if self._final is not None:
            return self._final
        return await asyncio.wait_for(_drain(), timeout)

    async def outputs(self) -> AsyncIterator[Output]:
        async for event in self.events():
            if isinstance(event, Output):
                yield event

    async def events(self) -> AsyncIterator[RunEvent]:
        """Everything that happens in the run, from its start (what happened before this call
        included, each line once), until :class:`RunFinished`."""
        if self._final is not None and self._queue is None:
            yield RunFinished(self._final)
            return
        if self._queue is None:
            self._start_watching()
        while True:
            event = await self._queue.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, RunFinished):
                return

    # -- the watcher -------------------------------------------------------------------------

    async def _stop_watching(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _start_watching(self) -> None:
        self.notebook._runs.append(self)
        self._queue = asyncio.Queue()
        self._changed = asyncio.Event()
        self._watches = {cid: _CellWatch(cid, i + 1) for i, cid in enumerate(self.cell_ids)}
        self._prompt_key = None
        from pycrdt import Map

        self._execution_map = self.notebook.ynotebook.ydoc.get(EXECUTION_MAP, type=Map)
        self._map_subscription = self._execution_map.observe(lambda event: self._changed.set())
        ycells = self.notebook.ynotebook.ycells
        self._subscription = ycells.observe_deep(self._on_doc_events)
        self._task = asyncio.ensure_future(self._watch())

    def _on_doc_events(self, events) -> None:
        # Called inside the transaction that applied a remote update: note which cells had
        # outputs removed (a clear), so their cursors restart at the new first output.
        try:
            for event in events:
                path = list(getattr(event, "path", []) or [])
                if len(path) >= 2 and path[1] == "outputs" and type(event).__name__ == "ArrayEvent":
                    delta = getattr(event, "delta", []) or []
                    if any("delete" in d for d in delta):
                        ycell = self.notebook.ynotebook.ycells[path[0]]
                        watch = self._watches.get(str(ycell.get("id")))
                        if watch is not None:
                            watch.reset = True
                elif len(path) == 1 and type(event).__name__ == "MapEvent":
                    keys = getattr(event, "keys", {}) or {}
                    if "outputs" in keys:
                        ycell = self.notebook.ynotebook.ycells[path[0]]
                        watch = self._watches.get(str(ycell.get("id")))
                        if watch is not None:
                            watch.reset = True
        except Exception:  # never break the document's transaction
            log.debug("run %s: cannot read a document event", self.run_id, exc_info=True)
        self._changed.set()

    def _emit(self, event: RunEvent) -> None:
        self._queue.put_nowait(event)

    async def _watch(self) -> None:
        try:
            await self._watch_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # hand errors to the consumer
            self._queue.put_nowait(e)
        finally:
            if self._subscription is not None:
                try:
                    self.notebook.ynotebook.ycells.unobserve(self._subscription)
                    self._execution_map.unobserve(self._map_subscription)
                except Exception:
                    pass
                self._subscription = None

    async def _watch_loop(self) -> None:
        interval = self.client.poll_interval
        record = await self.status()
        self._apply_record(record)
        self._scan(final=False)
        last_poll = time.monotonic()
        done_at: float | None = None
        while True:
            wait = max(0.0, last_poll + interval - time.monotonic())
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._changed.clear()
            if time.monotonic() - last_poll >= interval:
                record = await self.status()
                last_poll = time.monotonic()
                self._apply_record(record)
            if record.get("status") == "done":
                done_at = done_at or time.monotonic()
                caught_up = self._doc_caught_up()
                if caught_up or time.monotonic() - done_at > 10:
                    self._scan(final=True)
                    self._final = record
                    self._emit(RunFinished(record))
                    return
            self._scan(final=False)

    def _apply_record(self, record: dict) -> None:
        prompt = record.get("input_request")
        if isinstance(prompt, dict) and prompt.get("cell_id") in self._watches:
            key = (prompt.get("cell_id"), prompt.get("requested"), prompt.get("prompt"))
            if key != self._prompt_key:
                self._prompt_key = key
                watch = self._watches[prompt["cell_id"]]
                self._emit(
                    InputRequested(
                        watch.cell_id,
                        watch.position,
                        str(prompt.get("prompt", "")),
                        bool(prompt.get("password")),
                    )
                )
        for cell in record.get("cells", []) or []:
            watch = self._watches.get(cell.get("cell_id"))
            if watch is None:
                continue
            watch.rest_status = cell.get("status")
            watch.rest_count = _count(cell.get("execution_count"))
            watch.rest_result = cell.get("result")

    def _doc_caught_up(self) -> bool:
        """The local document shows every cell of the run as finished."""
        for watch in self._watches.values():
            entry = self._execution_entry(watch.cell_id)
            if entry is not None and entry.get("status") in ("queued", "running"):
                return False
        return True

    def _index(self) -> dict[str, int]:
        return {str(ycell.get("id")): i for i, ycell in enumerate(self.notebook.ynotebook.ycells)}

    def _execution_entry(self, cell_id: str) -> dict | None:
        """This run's entry for the cell in the document's ``execution`` map (queued/running/
        aborted, with a pending prompt), written by the server in the same transaction as the
        cell's own start/finish edits; None once the cell is done or for another run's entry."""
        entry = _py(self._execution_map.get(cell_id)) if self._execution_map is not None else None
        if isinstance(entry, dict) and entry.get("request_id") == self.run_id:
            return entry
        return None

    def _scan(self, final: bool) -> None:
        ycells = self.notebook.ynotebook.ycells
        index = self._index()
        total = len(self._watches)
        # Cells of a run execute in order: once a later cell runs (or ran), every earlier cell
        # that is no longer queued has finished, even if we never saw it running (it may start
        # and end between two looks at the document). Emitting it now keeps events in order.
        frontier = max(
            (
                w.position
                for w in self._watches.values()
                if w.live
                or w.finished
                or (self._execution_entry(w.cell_id) or {}).get("status") == "running"
            ),
            default=0,
        )
        for watch in self._watches.values():
            i = index.get(watch.cell_id)
            if watch.finished:
                continue
            if i is None:  # the cell was deleted from the document
                if watch.rest_status == "done" or final:
                    watch.finished = True
                    if watch.live:
                        self._emit(
                            CellFinished(
                                watch.cell_id, watch.position, watch.rest_count, watch.rest_result
                            )
                        )
                continue
            ycell = ycells[i]
            entry = self._execution_entry(watch.cell_id)
            status = entry.get("status") if entry else None
            if status == "aborted":
                watch.finished = True  # never ran
                continue
            if status == "running" and not watch.live:
                watch.live = True  # started (its outputs were cleared in the same transaction)
                watch.out_index = watch.consumed = 0
                watch.reset = False
            ended = False
            if entry is None:
                # Not (or no longer) queued/running for this run in the document.
                if watch.live:
                    ended = True
                elif watch.rest_status == "done" or final or watch.position < frontier:
                    ran = _count(ycell.get("execution_count")) is not None
                    if ran or watch.rest_result in ("ok", "error") or watch.rest_count is not None:
                        watch.live = ended = True  # ran and finished before we looked
                        watch.out_index = watch.consumed = 0
                    else:
                        watch.finished = True  # cancelled/aborted before it started
                        continue
            if not watch.live:
                continue
            if not watch.started:
                watch.started = True
                self._emit(
                    CellStarted(watch.cell_id, watch.position, total, str(ycell.get("source", "")))
                )
            self._scan_outputs(watch, ycell, flush=ended)
            if ended:
                watch.finished = True
                self._emit(
                    CellFinished(
                        watch.cell_id,
                        watch.position,
                        _count(ycell.get("execution_count")),
                        watch.rest_result,
                    )
                )

    def _scan_outputs(self, watch: _CellWatch, ycell, flush: bool) -> None:
        outputs = ycell.get("outputs")
        if outputs is None:
            return
        n = len(outputs)
        if watch.reset or n < watch.out_index:
            watch.reset = False
            watch.out_index = watch.consumed = 0
        while watch.out_index < n:
            youtput = outputs[watch.out_index]
            otype = youtput.get("output_type")
            last = watch.out_index == n - 1
            if otype == "stream":
                text = str(youtput.get("text", ""))
                name = youtput.get("name")
                if len(text) < watch.consumed:
                    watch.consumed = text.rfind("\n") + 1
                end = text.rfind("\n") + 1
                if end > watch.consumed:
                    for line in text[watch.consumed : end].splitlines(keepends=True):
                        self._emit(
                            Output(
                                watch.cell_id,
                                watch.position,
                                "stream",
                                line,
                                name,
                                {"output_type": "stream", "name": name, "text": line},
                            )
                        )
                    watch.consumed = end
                if last and not flush:
                    return  # the last stream output may still grow
                tail = _visible_tail(text[watch.consumed :])
                if tail:
                    self._emit(
                        Output(
                            watch.cell_id,
                            watch.position,
                            "stream",
                            tail,
                            name,
                            {"output_type": "stream", "name": name, "text": tail},
                        )
                    )
            else:
                output = _py(youtput)
                self._emit(
                    Output(
                        watch.cell_id, watch.position, str(otype), output_text(output), None, output
                    )
                )
            watch.out_index += 1
            watch.consumed = 0


# --------------------------------------------------------------------------------------------
# Blocking wrapper
# --------------------------------------------------------------------------------------------


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="collab-kernels-client", daemon=True
        )
        self.thread.start()

    def run(self, coro_or_fn):
        async def _call():
            value = coro_or_fn() if callable(coro_or_fn) else coro_or_fn
            if inspect.isawaitable(value):
                value = await value
            return value

        if threading.current_thread() is self.thread:
            raise RuntimeError("SyncCollabClient cannot be used from its own event loop")
        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


_WRAPPED = (CollabClient, Notebook, Run)


class _SyncProxy:
    """Runs every attribute access and call of the wrapped object on the loop thread (pycrdt
    documents may only be touched from the thread that created them)."""

    def __init__(self, target, thread: _LoopThread):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_thread", thread)

    def __repr__(self) -> str:
        return f"<sync {self._thread.run(lambda: repr(self._target))}>"

    def _wrap(self, value):
        if isinstance(value, _WRAPPED):
            return _SyncProxy(value, self._thread)
        if inspect.isasyncgen(value) or hasattr(value, "__anext__"):
            return self._iterate(value)
        return value

    def _iterate(self, agen):
        while True:
            try:
                item = self._thread.run(agen.__anext__())
            except StopAsyncIteration:
                return
            yield self._wrap(item)

    def __getattr__(self, name):
        value = self._thread.run(lambda: getattr(self._target, name))
        if callable(value) and not isinstance(value, type):

            def call(*args, **kwargs):
                return self._wrap(self._thread.run(lambda: value(*args, **kwargs)))

            return call
        return self._wrap(value)

    def __setattr__(self, name, value):
        self._thread.run(lambda: setattr(self._target, name, value))


class SyncCollabClient(_SyncProxy):
    """The blocking form of :class:`CollabClient`: same methods, no ``await``.

    ::

        with SyncCollabClient(url, token) as client:
            nb = client.open_notebook("a.ipynb")
            run = nb.execute()
            for out in run.outputs():
                print(out.text, end="")
    """

    def __init__(self, url: str | ServerInfo | None = None, token: str | None = None, **kwargs):
        thread = _LoopThread()

        def make():
            if url is None:
                return CollabClient.discover(**kwargs)
            return CollabClient(url, token, **kwargs)

        try:
            client = thread.run(make)
        except BaseException:
            thread.stop()
            raise
        super().__init__(client, thread)

    def close(self) -> None:
        try:
            self._thread.run(self._target.close())
        finally:
            self._thread.stop()

    def __enter__(self) -> SyncCollabClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
