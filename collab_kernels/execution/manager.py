"""Server-owned execution: documents as listeners of their kernel's shared client.

``ExecutionManager`` holds the settings and wires the parts:

- :mod:`.sessions`: which kernel a notebook's session points to;
- :mod:`.routing`: one link per kernel; kernel messages routed to their document's cell;
- :mod:`.body`: the execute and input bodies, parsed;
- :mod:`.document_runs`: the cells of an execute request checked against its document;
- :mod:`.requests`, :mod:`.queue`, :mod:`.runner`: requests, document queues, running cells;
- :mod:`.stopping`: cancels, interrupts and kernels gone stop the document queues;
- :mod:`.writer`, :mod:`.outputs`: output and execution state written into the Y document;
- :mod:`.stdin`: ``input()`` prompts answered through REST.

Its public methods are what the REST handlers (:mod:`.handlers`) call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from jupyter_server.services.sessions.sessionmanager import SessionManager
from tornado.web import HTTPError
from traitlets import Bool, Enum, Float, Instance, Integer
from traitlets.config import LoggingConfigurable

from ..contract import KERNEL_GONE
from ..kernels.manager import SharedClientMappingKernelManager
from ..rooms.manager import RoomManager
from .body import parse_execute
from .document_runs import check_session, document_runs
from .outputs import error_output
from .ports import Log, NotebookRoom, RoomSource
from .requests import CellRun, ExecutionRequest, RequestRegistry, StopReason
from .results import OutputCollector
from .routing import KernelLink, LinkPool, Router
from .runner import Runner
from .sessions import SessionIndex
from .stdin import InputBroker
from .writer_pool import WriterPool


def debug_logged(log: Log) -> bool:
    """Whether ``log.debug`` would reach some handler.

    jupyter_server's logger (traitlets' logging config) is at DEBUG and filters at its
    handlers (``--log-level``), so every ``log.debug`` call builds a LogRecord that is then
    dropped: guard debug lines on the per-request path with this check."""
    if not log.isEnabledFor(logging.DEBUG):
        return False
    logger: logging.Logger | None = log if isinstance(log, logging.Logger) else log.logger
    while logger is not None:
        for handler in logger.handlers:
            if handler.level <= logging.DEBUG:
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return logging.lastResort is not None and logging.lastResort.level <= logging.DEBUG


class ExecutionManager(LoggingConfigurable):
    """Links rooms to the kernel of their session and owns one queue per document."""

    room_manager = Instance(RoomManager, help="The rooms stage: the server-owned documents.")
    kernel_manager = Instance(MappingKernelManager, help="The server's kernel manager.")
    session_manager = Instance(SessionManager, help="The server's session manager.")

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

    output_time_share = Float(
        0.25,
        config=True,
        help=(
            "At most this share of the event loop's time for one document's output "
            "transactions: after a transaction that took t seconds (appending to a big "
            "output costs in proportion to its length) the next one waits at least "
            "t * (1 / share - 1) seconds, so a cell printing in a tight loop leaves the loop "
            "to other rooms. 0 or 1: no bound beyond output_batch_interval."
        ),
    )

    output_limited_interval = Float(
        1.0,
        config=True,
        help=(
            "Seconds between two output transactions of a document whose last one dropped "
            "text over the rooms' max_cell_output (a cell printing in a loop): what such a "
            "cell prints in that time is joined and only its newest part (what the cell "
            "may keep) is written, instead of writing megabytes that are deleted right "
            "after. 0: output_batch_interval as for any output."
        ),
    )

    idle_grace = Float(
        5.0,
        config=True,
        help=(
            "Seconds a cell whose execute_reply arrived waits for the kernel's iopub idle "
            "status once the kernel's iopub has gone quiet for it. A kernel drops iopub "
            "messages for a subscriber that cannot read (a server process that got no CPU "
            "for a while); the cell then ends with a note that output may be missing instead "
            "of staying [*] for ever. 0 waits for ever."
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

    trust_outputs = Bool(
        True,
        config=True,
        help=(
            "Show the outputs of server-side executions trusted (widgets, JavaScript, HTML "
            "render), as JupyterLab shows the outputs of a cell its own user runs: the cell gets "
            "metadata.trusted (the notebook is then signed when saved and loads trusted), and a "
            "cell not trusted yet is re-inserted in place when it starts, because a frontend "
            "decides trust when it creates a cell (a collaborator typing in that very cell at "
            "that moment loses its focus). False leaves trust to 'Trust Notebook'."
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

    document_input_status = Enum(
        [202, 300],
        default_value=202,
        config=True,
        help=(
            "HTTP status of GET /api/kernels/{id}/requests/{uid} while a document cell of the "
            "request waits for input(); the body carries input_request either way. 202: the "
            "request still runs, since anyone in the document may answer the prompt (the "
            "pending prompt of the cell, POST /api/kernels/{id}/input); nbmodel clients that "
            "cannot answer, such as jupyter-mcp-server's HTTP mode, keep waiting for the end "
            "instead of reporting an 'Unexpected input request'. 300: jupyter-server-nbmodel's "
            "answer, for clients that answer the prompt themselves. A scratch execution (code "
            "alone, no document) answers 300: only its requester can answer."
        ),
    )

    max_execute_body_bytes = Integer(
        4 << 20,
        min=1024,
        config=True,
        help=(
            "Largest body (bytes) of POST /api/kernels/{id}/execute; larger ones answer 413. "
            "The cell dialects are small; this bounds the code of the {'code': ...} dialect."
        ),
    )

    max_input_body_bytes = Integer(
        1 << 20,
        min=1024,
        config=True,
        help=(
            "Largest body (bytes) of POST /api/kernels/{id}/input (the answer to an input() "
            "prompt); larger ones answer 413."
        ),
    )

    request_history = Integer(
        1000,
        config=True,
        help=(
            "Finished execute requests kept for GET /api/kernels/{id}/requests/{request_id} "
            "(the oldest are dropped in batches: up to a tenth more may be kept meanwhile). "
            "They keep no code: a cell's code is dropped once it is sent to the kernel."
        ),
    )

    max_result_output_bytes = Integer(
        64 << 20,
        min=1024,
        config=True,
        help=(
            "Bytes of outputs kept for the status of {'code'} executions (the nbmodel "
            "protocol returns their outputs in GET /api/kernels/{id}/requests/{uid}), over "
            "all finished requests: beyond, the oldest lose theirs ('outputs_dropped'), and "
            "one execution keeps at most this much (then a note says output was not kept). "
            "Outputs of cells always go to their document in full."
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
        rooms: RoomSource = self.room_manager
        self.requests = RequestRegistry(self.request_history, self.max_result_output_bytes)
        self.writers = WriterPool(
            rooms,
            lambda: self.output_batch_interval,
            self.log,
            lambda: self.trust_outputs,
            lambda: self.output_time_share,
            lambda: self.output_limited_interval,
        )
        self.sessions = SessionIndex(self.session_manager, self.log, self._sessions_changed)
        self.inputs = InputBroker(
            self.writers,
            timeout=lambda: self.input_timeout,
            publish=lambda document_id: self.runner.publish_document(document_id),
            interrupt=self.interrupt,
            log=self.log,
        )
        self.runner = Runner(
            writers=self.writers,
            inputs=self.inputs,
            link_for=lambda kernel_id: self.links.link_for(kernel_id),
            drop_link=lambda link: self.links.drop(link),
            interrupt=self.interrupt,
            allow_stdin=lambda: self.allow_stdin,
            ready_timeout=self._ready_timeout,
            idle_grace=lambda: self.idle_grace,
            log=self.log,
        )
        self.router = Router(
            writers=self.writers,
            runs=self.runner,
            inputs=self.inputs,
            sessions=self.sessions,
            rooms=rooms,
            log=self.log,
        )
        self.links = LinkPool(
            self.kernel_manager, self.router, lambda: self.route_table_size, self.log
        )
        self._refresh_task: asyncio.Task[None] | None = None
        self._stopped = False
        self.sessions.install()
        rooms.on_room_created(self._room_created)
        rooms.on_room_freed(self.writers.forget_room)

    def _ready_timeout(self) -> float:
        return float(self.kernel_manager.kernel_info_timeout or 60)

    # ------------------------------------------------------------------ lifecycle

    def _ensure_started(self) -> None:
        if self._refresh_task is None and not self._stopped and self.session_refresh_interval > 0:
            self._refresh_task = asyncio.ensure_future(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while not self._stopped:
            try:
                await self.sessions.refresh()
                self.links.prune()
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
        await self.runner.stop()
        self.links.close()
        self.sessions.uninstall()

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt the kernel without clearing queues (the running cell's error does).

        An interrupt from anyone else (``POST /api/kernels/{id}/interrupt``) fires the
        kernel's "interrupted" lifecycle event, which clears the queues of its documents
        (:meth:`Runner.kernel_event`)."""
        km = self.kernel_manager
        if isinstance(km, SharedClientMappingKernelManager):
            await km.interrupt_kernel(kernel_id, notify=False)
        else:
            # jupyter_server types the sync MappingKernelManager; the server runs the async one
            await ensure_async(cast(Any, km).interrupt_kernel(kernel_id))

    def clear_kernel_queues(self, kernel_id: str, *, reason: StopReason) -> int:
        """Abort everything queued (not running) on ``kernel_id``, in every document."""
        return self.runner.stops.clear_kernel_queues(kernel_id, reason=reason)

    # ------------------------------------------------------------------ links and rooms

    def link_for(self, kernel_id: str) -> KernelLink | None:
        self._ensure_started()
        return self.links.link_for(kernel_id)

    def _sessions_changed(self) -> None:
        # Every kernel a notebook session points to gets its link (listener, request hook).
        for kernel_id in set(self.sessions.kernel_by_path.values()):
            if kernel_id in self.kernel_manager:
                self.link_for(kernel_id)
        self.links.prune()

    async def _room_created(self, room: NotebookRoom) -> None:
        self._ensure_started()
        self.writers.room_created(room)
        try:
            await self.sessions.refresh()
        except Exception:
            self.log.debug("collab_kernels: session refresh failed", exc_info=True)
        kernel_id = self.sessions.kernel_for_path(room.path)
        if kernel_id is not None:
            self.link_for(kernel_id)

    async def _room_for(self, document_id: str) -> NotebookRoom:
        try:
            return await self.room_manager.get_room(document_id)
        except HTTPError:
            raise
        except (KeyError, ValueError) as e:
            raise HTTPError(404, f"No such document: {document_id}") from e

    # ------------------------------------------------------------------ public API

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
            message = (
                f"Kernel {kernel_id} is not running (it was shut down, or never existed): "
                "start or select a kernel for this notebook, then run the cell again"
            )
            await self._show_kernel_gone(body, message)
            raise HTTPError(404, f"No such kernel: {message}")
        spec = parse_execute(body)
        link = self.link_for(kernel_id)
        room: NotebookRoom | None = None
        if spec.document_id is None:
            # A scratch execution (the nbmodel protocol's code alone): no document.
            if link is None:
                raise self._no_shared_client(kernel_id)
            runs = [CellRun(cell_id="", code=spec.code or "", outputs=self._collector())]
        else:
            room = await self._room_for(spec.document_id)
            await check_session(room, kernel_id, self.sessions)
            if link is None:
                raise self._no_shared_client(kernel_id)
            cells = self.writers.get(room.room_id).cells_by_id(room)
            runs = document_runs(spec, room, cells, self._collector)
        request = ExecutionRequest(
            kernel_id=kernel_id,
            document_id=spec.document_id,
            path=room.path if room is not None else None,
            cells=runs,
            username=username,
            stop_on_error=spec.stop_on_error,
        )
        queue = self.runner.queue(request)
        try:
            # an idle queue's first cell goes to the kernel now; the records follow (the
            # kernel's answers are handled on later loop iterations)
            self.runner.start(request, link)
        finally:
            self.requests.add(request)
            if queue.hold is None and room is not None:
                queue.hold = room.hold(f"execution queue ({len(runs)} cell(s))")
        if debug_logged(self.log):
            self.log.debug(
                "collab_kernels: %s queued %d cell(s) of %s on kernel %s (request %s)",
                username or "a user",
                len(runs),
                request.path or "no document",
                kernel_id,
                request.request_id,
            )
        return request

    async def _show_kernel_gone(self, body: dict[str, Any], message: str) -> None:
        """Someone ran a cell on a kernel that is gone (a browser whose session still
        points to a kernel shut down elsewhere): the cell shows why nothing ran."""
        try:
            spec = parse_execute(body)
        except HTTPError:
            return
        if spec.document_id is None or not spec.cells:
            return
        try:
            room = await self._room_for(spec.document_id)
            if room.file_type != "notebook":
                return
            writer = self.writers.get(room.room_id)
            output = error_output(KERNEL_GONE, message)
            for cell_spec in spec.cells:
                writer.show_error(cell_spec.cell_id, output)
        except Exception:  # the answer is the 404 either way
            self.log.debug("collab_kernels: could not show the kernel-gone error", exc_info=True)

    def _no_shared_client(self, kernel_id: str) -> HTTPError:
        return HTTPError(
            503,
            f"Kernel {kernel_id} has no shared client: server-side execution needs "
            "CollabKernelsApp.shared_kernel_client",
        )

    def _collector(self) -> OutputCollector:
        return OutputCollector(self.max_result_output_bytes)

    def cancel(self, request: ExecutionRequest) -> bool:
        """Cancel a queued request; False if it already runs or ended."""
        return self.runner.stops.cancel(request)

    async def cancel_running(self, request: ExecutionRequest) -> bool:
        """Cancel a running request (``DELETE ...?running=1``, used by ``collab-kernels
        cancel``): its queued cells are dropped, the running cell is interrupted, and the
        request ends "cancelled". Other requests of the document keep their place."""
        return await self.runner.stops.cancel_running(request)

    def answer_input(
        self, kernel_id: str, document_id: str | None, cell_id: str | None, value: str
    ) -> None:
        """Answer a pending ``input()`` prompt (409 if that cell is not waiting); with no
        document and cell, the kernel's one pending prompt."""
        if kernel_id not in self.kernel_manager:
            raise HTTPError(404, f"No such kernel: {kernel_id}")
        self.inputs.answer(kernel_id, document_id, cell_id, value)

    def get_request(self, kernel_id: str | None, request_id: str) -> ExecutionRequest | None:
        request = self.requests.get(request_id)
        if request is None or (kernel_id is not None and request.kernel_id != kernel_id):
            return None
        return request

    def list_requests(self, kernel_id: str | None = None) -> list[ExecutionRequest]:
        return self.requests.list(kernel_id)


__all__ = ["ExecutionManager", "debug_logged"]
