"""Server-owned execution: documents as listeners of their kernel's shared client.

``ExecutionManager`` links each notebook to the kernel of its session (:mod:`.link`), keeps one
execute queue per document (:mod:`.queue`), writes every output that belongs to a cell of a
document into its Y document (:mod:`.writer`, :mod:`.outputs`) whether the execution was
requested through REST, by a browser over its kernel websocket, or is late output of a
background thread, and answers ``input()`` prompts (:mod:`.stdin`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from tornado.web import HTTPError
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Integer
from traitlets.config import LoggingConfigurable

from .link import KernelLink, Route, SessionIndex
from .murmur import source_hash
from .outputs import OUTPUT_MSG_TYPES, error_output
from .queue import (
    ABORTED,
    CANCELLED,
    DONE,
    ERROR,
    OK,
    QUEUED,
    RUNNING,
    CellRun,
    DocumentQueue,
    ExecutionRequest,
    RequestRegistry,
)
from .stdin import InputBroker
from .writer import DocumentWriter


def debug_logged(log: Any) -> bool:
    """Whether ``log.debug`` would reach some handler.

    jupyter_server's logger (traitlets' logging config) is at DEBUG and filters at its
    handlers (``--log-level``), so every ``log.debug`` call builds a LogRecord that is then
    dropped: guard debug lines on the per-request path with this check."""
    if not log.isEnabledFor(logging.DEBUG):
        return False
    logger = log if isinstance(log, logging.Logger) else getattr(log, "logger", None)
    while logger is not None:
        for handler in logger.handlers:
            if handler.level <= logging.DEBUG:
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return logging.lastResort is not None and logging.lastResort.level <= logging.DEBUG


class KernelGone(Exception):
    """The kernel died, restarted or shut down while a cell ran."""

    def __init__(self, event: str):
        self.event = event
        super().__init__(event)


_GONE_MESSAGES = {
    "dead": ("KernelDied", "The kernel died while this cell was running."),
    "restarted": (
        "KernelRestarted",
        "The kernel died or was restarted while this cell was running; its state is lost.",
    ),
    "shutdown": ("KernelShutdown", "The kernel was shut down while this cell was running."),
}


_GONE_ENAMES = {ename for ename, _ in _GONE_MESSAGES.values()} | {"KernelGone"}


class ExecutionManager(LoggingConfigurable):
    """Links rooms to the kernel of their session and owns one queue per document."""

    room_manager = AnyTrait()
    kernel_manager = AnyTrait()
    session_manager = AnyTrait()

    output_batch_interval = Float(
        0.05,
        config=True,
        help=(
            "Seconds between two output transactions of one document. The first output of a "
            "burst is written at once; what arrives within this interval is written together "
            "in one transaction (one update to every collaborator). 0 writes each message in "
            "its own loop iteration."
        ),
    )

    input_timeout = Float(
        300.0,
        config=True,
        help=(
            "Seconds an input() prompt of a server-side execution waits for an answer "
            "(POST /api/kernels/{id}/input). Then the cell gets an error output saying so and "
            "the kernel is interrupted, instead of blocking the document's queue forever. "
            "0 waits forever."
        ),
    )

    allow_stdin = Bool(
        True,
        config=True,
        help=(
            "Send server-side execute requests with allow_stdin=True, so input() works and is "
            "answered through the document (pending prompt) and POST /api/kernels/{id}/input."
        ),
    )

    request_history = Integer(
        1000,
        config=True,
        help=(
            "Finished execute requests kept for GET /api/kernels/{id}/requests/{request_id} "
            "(the oldest are dropped in batches: up to a tenth more may be kept meanwhile)."
        ),
    )

    route_table_size = Integer(
        10000,
        config=True,
        help=(
            "Execute requests per kernel whose output is still routed to their cell after they "
            "finish (late output of background threads). Oldest are forgotten first."
        ),
    )

    session_refresh_interval = Float(
        5.0,
        config=True,
        help=(
            "Seconds between two re-reads of the session table (path -> kernel). Session "
            "creation, kernel switch and deletion through the SessionManager are seen at once; "
            "this catches anything else. 0 disables the periodic re-read."
        ),
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.links: dict[str, KernelLink] = {}
        self.queues: dict[str, DocumentQueue] = {}
        self.writers: dict[str, DocumentWriter] = {}
        self.requests = RequestRegistry(self.request_history)
        self.sessions = SessionIndex(self.session_manager, self.log, self._sessions_changed)
        self.inputs = InputBroker(self)
        self._refresh_task: asyncio.Task | None = None
        self._interrupt_original: Any = None
        self._stopped = False
        self.sessions.install()
        self._wrap_interrupt()
        rm = self.room_manager
        if rm is not None and hasattr(rm, "on_room_created"):
            rm.on_room_created(self._room_created)
            rm.on_room_freed(self._room_freed)

    # ------------------------------------------------------------------ lifecycle

    def _ensure_started(self) -> None:
        if self._refresh_task is None and not self._stopped and self.session_refresh_interval > 0:
            self._refresh_task = asyncio.ensure_future(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while not self._stopped:
            try:
                await self.sessions.refresh()
                self._prune_links()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.debug("collab_kernels: session refresh failed", exc_info=True)
            await asyncio.sleep(self.session_refresh_interval)

    async def stop(self) -> None:
        self._stopped = True
        if self._refresh_task is not None:
            self._refresh_task.cancel()
        self.inputs.cancel_all()
        for queue in list(self.queues.values()):
            for request in queue.take_pending():
                request.end(CANCELLED)
            if queue.current is not None:
                for cell in queue.current.cells:
                    if cell.finished is not None and not cell.finished.done():
                        cell.finished.set_exception(KernelGone("shutdown"))
        for queue in list(self.queues.values()):
            if queue.task is not None and not queue.task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(queue.task), 5)
                except Exception:
                    queue.task.cancel()
        for link in list(self.links.values()):
            link.close()
        self.links.clear()
        self.sessions.uninstall()
        if self._interrupt_original is not None:
            try:
                self.kernel_manager.interrupt_kernel = self._interrupt_original
            except Exception:  # pragma: no cover
                pass

    def _wrap_interrupt(self) -> None:
        """Observe ``POST /api/kernels/{id}/interrupt`` (the stock endpoint): an interrupt
        stops the running cell and clears the queues of the kernel's documents.

        The kernel layer reports no interrupt event and the stock handler cannot be
        replaced, so the kernel manager instance's ``interrupt_kernel`` is wrapped."""
        km = self.kernel_manager
        original = getattr(km, "interrupt_kernel", None)
        if original is None:
            return
        self._interrupt_original = original
        manager = self

        async def interrupt_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
            manager.clear_kernel_queues(kernel_id, reason="interrupted")
            result = original(kernel_id, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        km.interrupt_kernel = interrupt_kernel

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt the kernel without clearing queues (the running cell's error does)."""
        original = self._interrupt_original or self.kernel_manager.interrupt_kernel
        result = original(kernel_id)
        if inspect.isawaitable(result):
            await result

    # ------------------------------------------------------------------ links

    def _shared_client(self, kernel_id: str) -> Any:
        try:
            kernel = self.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return None
        return getattr(kernel, "shared_client", None)

    def link_for(self, kernel_id: str) -> KernelLink | None:
        self._ensure_started()
        client = self._shared_client(kernel_id)
        link = self.links.get(kernel_id)
        if link is not None and (link.closed or link.client is not client):
            link.close()
            self.links.pop(kernel_id, None)
            link = None
        if link is None and client is not None:
            link = self.links[kernel_id] = KernelLink(kernel_id, client, self)
            self.log.debug("collab_kernels: documents linked to kernel %s", kernel_id)
        return link

    def _prune_links(self) -> None:
        known = set(self.kernel_manager.list_kernel_ids())
        for kernel_id in list(self.links):
            if kernel_id not in known:
                self.links.pop(kernel_id).close()

    def _sessions_changed(self) -> None:
        # Every kernel a notebook session points to gets its link (listener, request hook).
        for kernel_id in set(self.sessions.kernel_by_path.values()):
            if kernel_id in self.kernel_manager:
                self.link_for(kernel_id)
        self._prune_links()

    async def _room_created(self, room: Any) -> None:
        self._ensure_started()
        writer = self.writers.get(room.room_id)
        if writer is not None:
            writer.forget_room(writer.room)
        try:
            await self.sessions.refresh()
        except Exception:
            self.log.debug("collab_kernels: session refresh failed", exc_info=True)
        kernel_id = self.sessions.kernel_for_path(room.path)
        if kernel_id is not None:
            self.link_for(kernel_id)

    def _room_freed(self, room: Any) -> None:
        writer = self.writers.get(room.room_id)
        if writer is not None:
            writer.forget_room(room)

    def writer(self, document_id: str) -> DocumentWriter:
        writer = self.writers.get(document_id)
        if writer is None:
            writer = self.writers[document_id] = DocumentWriter(self, document_id)
        return writer

    def queue(self, document_id: str) -> DocumentQueue:
        queue = self.queues.get(document_id)
        if queue is None:
            queue = self.queues[document_id] = DocumentQueue(
                document_id, self._run_request, self.log
            )
        return queue

    # ------------------------------------------------------------------ submitting

    async def submit(
        self, kernel_id: str, body: Any, *, username: str | None = None
    ) -> ExecutionRequest:
        """Validate an execute request body (any of the three dialects) and queue it.

        Raises ``HTTPError`` 400/404/409 with a message for bad requests.
        """
        if self._stopped:
            raise HTTPError(503, "The server is stopping")
        if not isinstance(body, dict):
            raise HTTPError(400, "The request body must be a JSON object")
        if kernel_id not in self.kernel_manager:
            raise HTTPError(404, f"No such kernel: {kernel_id}")
        code_override: str | None = None
        if "code" in body:
            code = body.get("code")
            metadata = body.get("metadata") or {}
            if not isinstance(code, str) or not isinstance(metadata, dict):
                raise HTTPError(400, "'code' must be a string and 'metadata' an object")
            document_id = metadata.get("document_id")
            specs = [{"cell_id": metadata.get("cell_id")}]
            code_override = code
            if not document_id or not specs[0]["cell_id"]:
                raise HTTPError(
                    400, "metadata.cell_id and metadata.document_id are required with 'code'"
                )
        elif "cells" in body:
            document_id = body.get("document_id")
            specs = body.get("cells")
            if (
                not isinstance(specs, list)
                or not specs
                or not all(isinstance(s, dict) for s in specs)
            ):
                raise HTTPError(400, "'cells' must be a non-empty list of {cell_id, source_hash}")
        else:
            document_id = body.get("document_id")
            specs = [{"cell_id": body.get("cell_id")}]
        if not isinstance(document_id, str) or not document_id:
            raise HTTPError(400, "'document_id' is required (the room id, format:type:fileId)")
        for spec in specs:
            if not isinstance(spec.get("cell_id"), str) or not spec.get("cell_id"):
                raise HTTPError(400, "every cell needs a 'cell_id'")

        room = await self._room_for(document_id)
        if getattr(room, "file_type", "notebook") != "notebook":
            raise HTTPError(400, f"Document {room.path} is not a notebook")
        # The index follows session changes as they happen; re-read it only for a path it
        # does not know (a session created behind the SessionManager's back).
        session_kernel = self.sessions.kernel_for_path(room.path)
        if session_kernel is None:
            await self.sessions.refresh()
            session_kernel = self.sessions.kernel_for_path(room.path)
        if session_kernel is not None and session_kernel != kernel_id:
            raise HTTPError(
                400,
                f"Document {room.path} belongs to kernel {session_kernel}, not {kernel_id} "
                "(its session points to another kernel)",
            )
        if self.link_for(kernel_id) is None:
            raise HTTPError(
                503,
                f"Kernel {kernel_id} has no shared client: server-side execution needs "
                "CollabKernelsApp.shared_kernel_client",
            )

        cells_by_id = self.writer(document_id).cells_by_id(room)
        runs: list[CellRun] = []
        for spec in specs:
            cell_id = spec["cell_id"]
            ycell = cells_by_id.get(cell_id)
            if ycell is None:
                raise HTTPError(404, f"No cell {cell_id} in {room.path}")
            if ycell.get("cell_type") != "code":
                raise HTTPError(
                    400, f"Cell {cell_id} of {room.path} is a {ycell.get('cell_type')} cell"
                )
            source = str(ycell.get("source") or "")
            expected = spec.get("source_hash")
            if expected is not None and str(expected) != source_hash(source):
                raise HTTPError(
                    409,
                    f"Cell {cell_id} of {room.path} changed: its source no longer matches "
                    f"source_hash {expected}",
                )
            runs.append(
                CellRun(
                    cell_id=cell_id, code=code_override if code_override is not None else source
                )
            )

        request = ExecutionRequest(
            kernel_id=kernel_id,
            document_id=document_id,
            path=room.path,
            cells=runs,
            username=username,
        )
        if body.get("stop_on_error") is False:
            request.stop_on_error = False  # type: ignore[attr-defined]
        self.requests.add(request)
        queue = self.queue(document_id)
        if queue.hold is None:
            queue.hold = room.hold(f"execution queue ({len(runs)} cell(s))")
        kernel_ready = getattr(self.link_for(kernel_id).client, "ready", True)
        if queue.submit(request) and kernel_ready:
            # The document's queue was idle: the execute_request goes to the kernel now,
            # before the 202 is answered, and the doc gets one transaction (the first cell
            # starts, the others show [*], the queue entries). A kernel still starting is
            # waited for by the queue's worker (_run_cell).
            request.mark_running()
            self._begin_cell(request, runs[0], queue, mark_running=[c.cell_id for c in runs[1:]])
        else:
            self._publish_queue(queue, mark_running=[c.cell_id for c in runs])
        if debug_logged(self.log):
            self.log.debug(
                "collab_kernels: %s queued %d cell(s) of %s on kernel %s (request %s)",
                username or "a user",
                len(runs),
                room.path,
                kernel_id,
                request.request_id,
            )
        return request

    async def _room_for(self, document_id: str) -> Any:
        try:
            return await self.room_manager.get_room(document_id)
        except HTTPError:
            raise
        except (KeyError, ValueError) as e:
            raise HTTPError(404, f"No such document: {document_id}") from e

    def cancel(self, request: ExecutionRequest) -> bool:
        """Cancel a queued request; False if it already runs or ended."""
        queue = self.queues.get(request.document_id)
        if request.status != QUEUED or queue is None or not queue.remove(request):
            return False
        request.end(CANCELLED)
        self._publish_queue(queue, idle_cells=[c.cell_id for c in request.cells])
        self._release_if_idle(queue)
        return True

    async def cancel_running(self, request: ExecutionRequest) -> bool:
        """Cancel a running request (``DELETE ...?running=1``, used by ``collab-kernels
        cancel``): its queued cells are dropped, the running cell is interrupted, and the
        request ends "cancelled". Other requests of the document keep their place."""
        queue = self.queues.get(request.document_id)
        if request.status != RUNNING or queue is None:
            return False
        request.cancel_requested = True  # type: ignore[attr-defined]
        dropped = []
        for cell in request.cells:
            if cell.status == QUEUED:
                cell.status, cell.result = DONE, CANCELLED
                dropped.append(cell.cell_id)
        self._publish_queue(queue, idle_cells=dropped)
        if any(c.status == RUNNING for c in request.cells):
            await self.interrupt(request.kernel_id)
        return True

    # ------------------------------------------------------------------ the queue state in the doc

    def _queue_entries(self, queue: DocumentQueue) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        current = queue.current
        if current is not None:
            for cell in current.cells:
                if cell.status == RUNNING:
                    entry = {
                        "status": "running",
                        "request_id": current.request_id,
                        "kernel_id": current.kernel_id,
                        "position": 0,
                    }
                    if (
                        current.input_request
                        and current.input_request.get("cell_id") == cell.cell_id
                    ):
                        entry["input_request"] = {
                            "prompt": current.input_request.get("prompt", ""),
                            "password": bool(current.input_request.get("password")),
                        }
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

    def _publish_queue(
        self, queue: DocumentQueue, idle_cells: list[str] = (), mark_running: list[str] = ()
    ) -> None:
        writer = self.writer(queue.document_id)
        if writer._live_room() is None:
            return
        entries = self._queue_entries(queue)
        # A cell still queued in another request stays [*].
        idle = [cid for cid in idle_cells if cid not in entries]
        try:
            writer.set_queue(entries, idle_cells=idle, mark_running=mark_running)
        except Exception:
            self.log.exception(
                "collab_kernels: could not publish the queue of %s", queue.document_id
            )

    def _mark_aborted(
        self, queue: DocumentQueue, requests: list[ExecutionRequest], result: str
    ) -> None:
        cells: list[str] = []
        for request in requests:
            for cell in request.cells:
                if cell.status != DONE:
                    cells.append(cell.cell_id)
            request.end(result)
        writer = self.writer(queue.document_id)
        if writer._live_room() is None:
            return
        entries = self._queue_entries(queue)
        idle = [cid for cid in cells if cid not in entries]

        def fn(cells_by_id: dict, ycells: Any) -> None:
            for cid in idle:
                ycell = cells_by_id.get(cid)
                if ycell is not None and ycell.get("execution_state") != "idle":
                    ycell["execution_state"] = "idle"
            writer._write_entries(entries)
            if result != CANCELLED:
                emap = writer.execution_map()
                for request in requests:
                    for cell in request.cells:
                        if cell.result == ABORTED and cell.cell_id not in entries:
                            emap[cell.cell_id] = {
                                "status": "aborted",
                                "request_id": request.request_id,
                                "kernel_id": request.kernel_id,
                            }

        try:
            writer.edit(fn)
        except Exception:
            self.log.exception(
                "collab_kernels: could not mark aborted cells of %s", queue.document_id
            )

    def clear_kernel_queues(self, kernel_id: str, *, reason: str) -> int:
        """Abort everything queued (not running) on ``kernel_id``, in every document."""
        count = 0
        for queue in list(self.queues.values()):
            aborted: list[ExecutionRequest] = []
            for request in list(queue.pending):
                if request.kernel_id == kernel_id:
                    queue.remove(request)
                    aborted.append(request)
            current = queue.current
            if current is not None and current.kernel_id == kernel_id:
                # The running request's cells after the running one will not run either.
                current.stop_reason = reason  # type: ignore[attr-defined]
                for cell in current.cells:
                    if cell.status == QUEUED:
                        cell.status = DONE
                        cell.result = ABORTED
                        count += 1
                self._publish_queue(
                    queue, idle_cells=[c.cell_id for c in current.cells if c.result == ABORTED]
                )
            if aborted:
                count += sum(len(r.cells) for r in aborted)
                self._mark_aborted(queue, aborted, ABORTED)
            self._release_if_idle(queue)
        if count:
            self.log.info(
                "collab_kernels: kernel %s %s: %d queued cell(s) will not run",
                kernel_id,
                reason,
                count,
            )
        return count

    def _release_if_idle(self, queue: DocumentQueue) -> None:
        if not queue.busy and queue.hold is not None:
            queue.hold.release()
            queue.hold = None

    # ------------------------------------------------------------------ running

    async def _run_request(self, request: ExecutionRequest) -> None:
        queue = self.queue(request.document_id)
        try:
            if request.status == DONE:
                return
            request.mark_running()
            failed = False
            # {"stop_on_error": false} in the execute body (collab-kernels run --allow-errors):
            # an error does not stop the request, unless the kernel itself is gone.
            keep_going = getattr(request, "stop_on_error", True) is False
            for cell in request.cells:
                if cell.status not in (QUEUED, RUNNING):  # RUNNING: started by submit()
                    continue
                ok = await self._run_cell(request, cell, queue)
                if getattr(request, "cancel_requested", False):
                    break
                if not ok:
                    failed = True
                    if keep_going and (cell.error or {}).get("ename") not in _GONE_ENAMES:
                        continue
                    break
            if getattr(request, "cancel_requested", False):
                request.end(CANCELLED)
                self._publish_queue(queue, idle_cells=[c.cell_id for c in request.cells])
            elif failed and keep_going and all(c.status == DONE for c in request.cells):
                request.end(ERROR)
                self._publish_queue(queue)
            elif failed:
                # An error stops the rest of the document's queue: those cells are not run.
                rest = queue.take_pending()
                self._mark_aborted(queue, [request], ERROR)
                if rest:
                    self._mark_aborted(queue, rest, ABORTED)
            else:
                aborted = any(c.result == ABORTED for c in request.cells)
                request.end(ABORTED if aborted else OK)
                self._publish_queue(queue)
        finally:
            if not queue.pending:
                # Release after the worker's current request is cleared.
                asyncio.get_event_loop().call_soon(self._release_if_idle, queue)

    async def _kernel_ready(self, request: ExecutionRequest, cell: CellRun) -> bool:
        """Wait for a kernel that is still starting (or restarting) to be ready.

        Ready means every socket of its shared client is connected: a cell sent earlier
        would run, but an ``input()`` in it could prompt nobody (see
        ``SharedKernelClient.wait_ready``).
        """
        link = self.link_for(request.kernel_id)
        client = link.client if link is not None else None
        if client is None or getattr(client, "ready", True):
            return True
        timeout = float(getattr(self.kernel_manager, "kernel_info_timeout", 60) or 60)
        self.log.info(
            "collab_kernels: cell %s of %s waits for kernel %s to start",
            cell.cell_id,
            request.path,
            request.kernel_id,
        )
        try:
            await client.wait_ready(timeout)
        except (asyncio.TimeoutError, TimeoutError, asyncio.CancelledError, RuntimeError) as e:
            if isinstance(e, asyncio.CancelledError) and asyncio.current_task().cancelling():
                raise
            cell.status = DONE
            cell.result = ERROR
            cell.error = {
                "ename": "KernelNotReady",
                "evalue": f"Kernel {request.kernel_id} did not become ready within {timeout:g} s",
            }
            return False
        return True

    def _begin_cell(
        self,
        request: ExecutionRequest,
        cell: CellRun,
        queue: DocumentQueue,
        mark_running: list[str] = (),
    ) -> None:
        """Send the cell's execute_request, then mark it running in the doc (one transaction).

        Synchronous: the kernel's first message can only be handled on a later loop
        iteration, after the start transaction (outputs cleared, count null) is committed.
        The document's room must be live and the kernel linked.
        """
        writer = self.writer(request.document_id)
        link = self.link_for(request.kernel_id)
        client = link.client
        content = {
            "code": cell.code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": bool(self.allow_stdin),
            "stop_on_error": True,
        }
        msg = client.session.msg(
            "execute_request",
            content,
            metadata={"cellId": cell.cell_id, "documentId": request.document_id},
        )
        cell.msg_id = msg["header"]["msg_id"]
        cell.generation = getattr(client, "connect_count", 0)
        cell.finished = asyncio.get_event_loop().create_future()
        cell.status = RUNNING
        link.routes.add(
            cell.msg_id, Route(request.document_id, cell.cell_id, run=cell, request=request)
        )
        try:
            client.send("shell", msg, owner=link.listener)
        except Exception as e:
            cell.finished.set_exception(KernelGone("dead"))
            self.log.warning(
                "collab_kernels: could not send to kernel %s: %s", request.kernel_id, e
            )
        try:
            writer.start_cell(cell.cell_id, self._queue_entries(queue), mark_running=mark_running)
        except Exception:
            self.log.exception(
                "collab_kernels: could not mark cell %s of %s running", cell.cell_id, request.path
            )

    async def _run_cell(
        self, request: ExecutionRequest, cell: CellRun, queue: DocumentQueue
    ) -> bool:
        writer = self.writer(request.document_id)
        if cell.status == QUEUED:
            if self.link_for(request.kernel_id) is None:
                cell.status = DONE
                cell.result = ERROR
                cell.error = {
                    "ename": "KernelGone",
                    "evalue": f"Kernel {request.kernel_id} is gone",
                }
                return False
            try:
                await writer.get_room()
            except Exception as e:
                cell.status = DONE
                cell.result = ERROR
                cell.error = {"ename": "DocumentGone", "evalue": str(e)}
                return False
            if not await self._kernel_ready(request, cell):
                return False
            self._begin_cell(request, cell, queue)
        # else: started by submit() already (the queue was idle)
        assert cell.finished is not None
        try:
            await cell.finished
        except KernelGone as gone:
            ename, evalue = _GONE_MESSAGES.get(gone.event, _GONE_MESSAGES["dead"])
            cell.error = {"ename": ename, "evalue": evalue}
            cell.result = ERROR
            self._complete_cell(request, cell, queue, [error_output(ename, evalue)])
        except asyncio.CancelledError:
            self.inputs.cancel(request, cell)
            raise
        else:
            # Normally completed already, as the last message arrived (_maybe_finish).
            self._complete_cell(request, cell, queue)
        return cell.result == OK

    def _complete_cell(
        self,
        request: ExecutionRequest,
        cell: CellRun,
        queue: DocumentQueue,
        extra: list[dict[str, Any]] | None = None,
    ) -> None:
        """The cell's end: its result, then count and idle in one transaction, sent to the
        collaborators at once. Idempotent (the cell is DONE afterwards)."""
        if cell.status == DONE:
            return
        self.inputs.cancel(request, cell)
        reply = cell.reply or {}
        if cell.result is None:
            status = reply.get("status")
            cell.result = OK if status == "ok" else (ABORTED if status == "aborted" else ERROR)
            if status == "error":
                cell.error = {"ename": reply.get("ename"), "evalue": reply.get("evalue")}
        if cell.execution_count is None:
            cell.execution_count = reply.get("execution_count")
        cell.status = DONE
        try:
            self.writer(request.document_id).finish_cell(
                cell.cell_id,
                cell.execution_count if cell.result != ERROR or reply else None,
                self._queue_entries(queue),
                extra_outputs=extra,
            )
        except Exception:
            self.log.exception(
                "collab_kernels: could not finish cell %s of %s", cell.cell_id, request.path
            )

    # ------------------------------------------------------------------ kernel messages

    def _maybe_finish(self, route: Route) -> None:
        """Both the execute_reply and the idle status arrived: the cell ends now, in this
        callback (not one loop iteration later in the request's task), and the task is woken
        to go on with the queue."""
        run = route.run
        if run is None or run.reply is None or not run.idle_seen or run.finished is None:
            return
        if run.finished.done():
            return
        request = route.request
        if request is not None and run.status == RUNNING:
            self._complete_cell(request, run, self.queue(request.document_id))
        run.finished.set_result(None)

    def _on_kernel_message(self, link: KernelLink, msg: Any) -> None:
        route = link.routes.get(msg.parent_msg_id)
        if route is None:
            return
        channel, msg_type = msg.channel, msg.msg_type
        if channel == "iopub":
            if msg_type in OUTPUT_MSG_TYPES:
                self.writer(route.document_id).enqueue(
                    route.cell_id, msg_type, msg.content, with_end=msg_type == "execute_result"
                )
            elif msg_type == "execute_input":
                count = msg.content.get("execution_count")
                route.execution_count = count
                if route.run is not None:
                    route.run.execution_count = count
            elif msg_type == "status" and msg.content.get("execution_state") == "idle":
                run = route.run
                if run is not None:
                    run.idle_seen = True
                    self._maybe_finish(route)
                elif route.external:
                    writer = self.writer(route.document_id)
                    try:
                        writer.finish_external(route.cell_id, route.execution_count)
                    except Exception:
                        self.log.exception(
                            "collab_kernels: could not finish cell %s", route.cell_id
                        )
        elif channel == "shell" and msg_type == "execute_reply":
            run = route.run
            if run is not None:
                run.reply = msg.content
                if run.execution_count is None:
                    run.execution_count = msg.content.get("execution_count")
                self._maybe_finish(route)
        elif channel == "stdin" and msg_type == "input_request":
            self.inputs.on_input_request(link, route, msg)

    def _on_browser_request(self, link: KernelLink, msg: dict, origin: str) -> bool:
        header = msg.get("header") or {}
        if header.get("msg_type") != "execute_request":
            return False
        cell_id = (msg.get("metadata") or {}).get("cellId")
        if not isinstance(cell_id, str) or not cell_id:
            return False
        paths = self.sessions.paths_for_kernel(link.kernel_id)
        if not paths:
            return False
        rooms = getattr(self.room_manager, "rooms", {}) or {}
        for room in list(rooms.values()):
            if getattr(room, "closed", False) or getattr(room, "path", None) not in paths:
                continue
            if getattr(room, "file_type", None) != "notebook":
                continue
            for ycell in room.document.ycells:
                if ycell.get("id") == cell_id:
                    link.routes.add(header["msg_id"], Route(room.room_id, cell_id, external=True))
                    self.log.debug(
                        "collab_kernels: execution of cell %s of %s from %s: the server writes "
                        "its outputs",
                        cell_id,
                        room.path,
                        origin,
                    )
                    return True
        return False

    def _on_kernel_lifecycle(self, link: KernelLink, event: str) -> None:
        if event not in _GONE_MESSAGES:
            return
        kernel_id = link.kernel_id
        generation = getattr(link.client, "connect_count", 0)
        victims: list[CellRun] = []
        for queue in list(self.queues.values()):
            current = queue.current
            if current is None or current.kernel_id != kernel_id:
                continue
            for cell in current.cells:
                if cell.finished is None or cell.finished.done():
                    continue
                # A "restarted" event may arrive after cells were already sent to the new
                # kernel process: only what went to the previous process is lost.
                if event == "restarted" and cell.generation >= generation:
                    continue
                victims.append(cell)
        if event != "restarted" or victims:
            self.log.info(
                "collab_kernels: kernel %s %s; failing %d running cell(s)",
                kernel_id,
                event,
                len(victims),
            )
            self.clear_kernel_queues(kernel_id, reason=event)
        for cell in victims:
            cell.finished.set_exception(KernelGone(event))
        if event == "shutdown":
            link.close()
            if self.links.get(kernel_id) is link:
                del self.links[kernel_id]

    # ------------------------------------------------------------------ queries

    def get_request(self, kernel_id: str | None, request_id: str) -> ExecutionRequest | None:
        request = self.requests.get(request_id)
        if request is None or (kernel_id is not None and request.kernel_id != kernel_id):
            return None
        return request

    def list_requests(self, kernel_id: str | None = None) -> list[ExecutionRequest]:
        return self.requests.list(kernel_id)
