"""Running requests: where a cell starts and where it ends.

The :class:`Runner` owns the document queues. A request's cells run one after the other:
each is sent to the kernel and marked running in the document in one transaction
(:meth:`Runner.begin_cell`), and ends when both its execute_reply and its idle status arrived
(:meth:`Runner.cell_reply`, :meth:`Runner.cell_idle`: count and idle in one transaction,
sent to collaborators at once). An error, an interrupt or the kernel going away stops the
document's queue (the rest is aborted and shown so: :mod:`.stopping`); the runner keeps the
queue entries of the document's execution map current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..contract import (
    ABORTED,
    CANCELLED,
    DOCUMENT_GONE,
    DONE,
    ERROR,
    KERNEL_GONE,
    KERNEL_GONE_ENAMES,
    KERNEL_GONE_MESSAGES,
    KERNEL_NOT_READY,
    OK,
    QUEUED,
    RUNNING,
    CellResult,
)
from .idle_watch import IdleWatch
from .outputs import error_output
from .ports import Log
from .queue import DocumentQueue, queue_entries
from .queue_view import QueueView
from .requests import CellRun, ExecutionRequest
from .routing import KernelLink, Route
from .stdin import InputBroker
from .stopping import KernelGone, QueueStops
from .writer_pool import WriterPool


def _result_of(reply: dict[str, Any]) -> CellResult:
    """A cell's result by its execute_reply's status."""
    status = reply.get("status")
    return OK if status == "ok" else (ABORTED if status == "aborted" else ERROR)


class Runner:
    """The document queues and the cells they run."""

    def __init__(
        self,
        *,
        writers: WriterPool,
        inputs: InputBroker,
        link_for: Callable[[str], KernelLink | None],
        drop_link: Callable[[KernelLink], None],
        interrupt: Callable[[str], Awaitable[None]],
        allow_stdin: Callable[[], bool],
        ready_timeout: Callable[[], float],
        idle_grace: Callable[[], float],
        log: Log,
    ):
        self.writers = writers
        self.inputs = inputs
        self.link_for = link_for
        self.drop_link = drop_link
        self.interrupt = interrupt
        self.allow_stdin = allow_stdin
        self.ready_timeout = ready_timeout
        self.log = log
        self.queues: dict[str, DocumentQueue] = {}
        self.view = QueueView(writers, log)
        self.idle_watch = IdleWatch(grace=idle_grace, end_cell=self._end_lost_idle, log=log)
        self.stops = QueueStops(self.queues, self.view, interrupt, drop_link, log)

    def queue(self, request: ExecutionRequest) -> DocumentQueue:
        """The queue of the request's document (or of its kernel's scratch executions)."""
        key = request.queue_key
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = DocumentQueue(
                key, request.document_id, self.run_request, self.log
            )
        return queue

    # ------------------------------------------------------------------ starting

    def start(self, request: ExecutionRequest, link: KernelLink) -> None:
        """Queue a validated request (its document's room is live and held)."""
        queue = self.queue(request)
        if queue.submit(request) and link.client.ready:
            # The document's queue was idle: the execute_request goes to the kernel now,
            # before the 202 is answered, and the doc gets one transaction (the first cell
            # starts, the others show [*], the queue entries). A kernel still starting is
            # waited for by the queue's worker (run_cell).
            request.mark_running()
            first, *rest = request.cells
            self.begin_cell(request, first, queue, mark_running=[c.cell_id for c in rest])
        else:
            self.view.publish(queue, mark_running=[c.cell_id for c in request.cells])

    async def stop(self) -> None:
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

    # ------------------------------------------------------------------ running

    async def run_request(self, request: ExecutionRequest) -> None:
        queue = self.queue(request)
        try:
            if request.status == DONE:
                return
            request.mark_running()
            failed = False
            for cell in request.cells:
                if cell.status not in (QUEUED, RUNNING):  # RUNNING: started by start()
                    continue
                ok = await self.run_cell(request, cell, queue)
                if request.cancel_requested:
                    break
                if not ok:
                    failed = True
                    gone = cell.error is not None and cell.error["ename"] in KERNEL_GONE_ENAMES
                    if not request.stop_on_error and not gone:
                        continue
                    break
            if request.cancel_requested:
                request.end(CANCELLED)
                self.view.publish(queue, idle_cells=[c.cell_id for c in request.cells])
            elif (
                failed
                and not request.stop_on_error
                and all(c.status == DONE for c in request.cells)
            ):
                request.end(ERROR)
                self.view.publish(queue)
            elif failed:
                # An error stops the rest of the document's queue: those cells are not run.
                rest = queue.take_pending()
                self.view.mark_aborted(queue, [request], ERROR)
                if rest:
                    self.view.mark_aborted(queue, rest, ABORTED)
            else:
                aborted = any(c.result == ABORTED for c in request.cells)
                request.end(ABORTED if aborted else OK)
                self.view.publish(queue)
        finally:
            if not queue.pending:
                # Release after the worker's current request is cleared.
                asyncio.get_event_loop().call_soon(queue.release_if_idle)

    async def kernel_ready(self, request: ExecutionRequest, cell: CellRun) -> bool:
        """Wait for a kernel that is still starting (or restarting) to be ready.

        Ready means every socket of its shared client is connected: a cell sent earlier
        would run, but an ``input()`` in it could prompt nobody (see
        ``SharedKernelClient.wait_ready``).
        """
        link = self.link_for(request.kernel_id)
        if link is None or link.client.ready:
            return True
        timeout = self.ready_timeout()
        self.log.info(
            "collab_kernels: cell %s of %s waits for kernel %s to start",
            cell.cell_id,
            request.path,
            request.kernel_id,
        )
        try:
            await link.client.wait_ready(timeout)
        except (asyncio.TimeoutError, TimeoutError, asyncio.CancelledError, RuntimeError) as e:
            task = asyncio.current_task()
            if isinstance(e, asyncio.CancelledError) and task is not None and task.cancelling():
                raise
            cell.status, cell.result = DONE, ERROR
            cell.error = {
                "ename": KERNEL_NOT_READY,
                "evalue": f"Kernel {request.kernel_id} did not become ready within {timeout:g} s",
            }
            return False
        return True

    def begin_cell(
        self,
        request: ExecutionRequest,
        cell: CellRun,
        queue: DocumentQueue,
        mark_running: Iterable[str] = (),
    ) -> None:
        """Send the cell's execute_request, then mark it running in the doc (one transaction).

        Synchronous: the kernel's first message can only be handled on a later loop
        iteration, after the start transaction (outputs cleared, count null) is committed.
        The document's room must be live and the kernel linked.
        """
        if not cell.code.strip() and request.document_id is not None:
            self._skip_empty(request, cell, queue)
            return
        link = self.link_for(request.kernel_id)
        if link is None:
            raise RuntimeError(f"kernel {request.kernel_id} is not linked")
        client = link.client
        content = {
            "code": cell.code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": self.allow_stdin(),
            "stop_on_error": True,
        }
        msg = client.session.msg(
            "execute_request",
            content,
            metadata={"cellId": cell.cell_id, "documentId": request.document_id},
        )
        cell.code = ""  # sent: the request history keeps no code
        cell.msg_id = msg["header"]["msg_id"]
        cell.generation = link.generation
        finished: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        cell.finished = finished
        cell.status = RUNNING
        link.routes.add(
            cell.msg_id, Route(request.document_id, cell.cell_id, run=cell, request=request)
        )
        try:
            client.send("shell", msg, owner=link.listener)
        except Exception as e:
            finished.set_exception(KernelGone("dead"))
            self.log.warning(
                "collab_kernels: could not send to kernel %s: %s", request.kernel_id, e
            )
        if request.document_id is None:
            return
        try:
            self.writers.get(request.document_id).start_cell(
                cell.cell_id, queue_entries(queue), mark_running=mark_running
            )
        except Exception:
            self.log.exception(
                "collab_kernels: could not mark cell %s of %s running", cell.cell_id, request.path
            )

    def _skip_empty(self, request: ExecutionRequest, cell: CellRun, queue: DocumentQueue) -> None:
        """A cell with no code is not sent to the kernel: it ends at once, without a count
        (JupyterLab leaves it ``[ ]``)."""
        finished: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        finished.set_result(None)
        cell.finished = finished
        cell.status, cell.result = DONE, OK
        if request.document_id is None:
            return
        try:
            self.writers.get(request.document_id).clear_cell(cell.cell_id, queue_entries(queue))
        except Exception:
            self.log.exception(
                "collab_kernels: could not clear cell %s of %s", cell.cell_id, request.path
            )

    async def run_cell(
        self, request: ExecutionRequest, cell: CellRun, queue: DocumentQueue
    ) -> bool:
        if cell.status == QUEUED:
            if self.link_for(request.kernel_id) is None:
                cell.status, cell.result = DONE, ERROR
                cell.error = {
                    "ename": KERNEL_GONE,
                    "evalue": f"Kernel {request.kernel_id} is gone",
                }
                return False
            try:
                if request.document_id is not None:
                    await self.writers.get(request.document_id).get_room()
            except Exception as e:
                cell.status, cell.result = DONE, ERROR
                cell.error = {"ename": DOCUMENT_GONE, "evalue": str(e)}
                return False
            if not await self.kernel_ready(request, cell):
                return False
            self.begin_cell(request, cell, queue)
        # else: started by start() already (the queue was idle)
        assert cell.finished is not None
        try:
            await cell.finished
        except KernelGone as gone:
            ename, evalue = KERNEL_GONE_MESSAGES.get(gone.event, KERNEL_GONE_MESSAGES["dead"])
            cell.error = {"ename": ename, "evalue": evalue}
            cell.result = ERROR
            self.complete_cell(request, cell, queue, [error_output(ename, evalue)])
        except asyncio.CancelledError:
            self.inputs.cancel(request, cell)
            raise
        else:
            # Normally completed already, as the last message arrived (cell_idle/cell_reply).
            self.complete_cell(request, cell, queue)
        return cell.result == OK

    def complete_cell(
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
            cell.result = _result_of(reply)
            if status == "error":
                cell.error = {
                    "ename": str(reply.get("ename", "")),
                    "evalue": str(reply.get("evalue", "")),
                }
        if cell.execution_count is None:
            cell.execution_count = reply.get("execution_count")
        cell.status = DONE
        if cell.outputs is not None:
            for output in extra or ():
                cell.outputs.add_output(output)
        early, cell.end_written = cell.end_written, None
        if request.document_id is None:
            return
        count = cell.execution_count if cell.result != ERROR or reply else None
        entries = queue_entries(queue)
        try:
            writer = self.writers.get(request.document_id)
            # the end written at the reply (write_end_early) is sent, unless it changed since
            if (
                early is None
                or extra
                or early[:2] != (count, entries)
                or not writer.send_held_end(early[2])
            ):
                writer.finish_cell(cell.cell_id, count, entries, extra_outputs=extra)
        except Exception:
            self.log.exception(
                "collab_kernels: could not finish cell %s of %s", cell.cell_id, request.path
            )

    def write_end_early(self, route: Route) -> None:
        """The execute_reply came and the idle status has not: write the cell's end now, as
        :meth:`complete_cell` will (count, idle, queue entries without the cell), held by the
        room and stored, so that at the idle status only the broadcast is left. ipykernel
        replies before it publishes idle (through its iopub thread), and a server-side
        cell's end is what its collaborators wait for. Nothing is written when the room
        cannot hold updates; :meth:`complete_cell` rewrites the end if anything changed
        meanwhile (the queue, the count, outputs to add)."""
        run, request = route.run, route.request
        if (
            run is None
            or request is None
            or request.document_id is None
            or run.status != RUNNING
            or run.end_written is not None
        ):
            return
        reply = run.reply or {}
        result = run.result if run.result is not None else _result_of(reply)
        count = run.execution_count
        if count is None:
            count = reply.get("execution_count")
        if result == ERROR and not reply:
            count = None
        entries = queue_entries(self.queue(request), ending=run)
        try:
            mark = self.writers.get(request.document_id).finish_cell(
                run.cell_id, count, entries, held=True
            )
            if mark is not None:
                run.end_written = (count, entries, mark)
        except Exception:
            self.log.exception(
                "collab_kernels: could not finish cell %s of %s", run.cell_id, request.path
            )

    # ------------------------------------------------------------------ kernel messages (RunEvents)

    def cell_reply(self, route: Route, content: dict[str, Any]) -> None:
        run = route.run
        if run is None:
            return
        run.reply = content
        run.last_heard = time.monotonic()
        if run.execution_count is None:
            run.execution_count = content.get("execution_count")
        if not run.idle_seen:
            self.write_end_early(route)
        self._maybe_finish(route)
        self.idle_watch.reply_seen(route)

    def _end_lost_idle(self, route: Route, extra: list[dict[str, Any]]) -> None:
        if route.request is not None and route.run is not None:
            request = route.request
            self.complete_cell(request, route.run, self.queue(request), extra)

    def cell_idle(self, route: Route) -> None:
        if route.run is not None:
            route.run.idle_seen = True
            self._maybe_finish(route)

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
            self.complete_cell(request, run, self.queue(request))
        run.finished.set_result(None)

    def kernel_event(self, link: KernelLink, event: str) -> None:
        """A lifecycle event of the kernel (:meth:`QueueStops.kernel_event`)."""
        self.stops.kernel_event(link, event)

    # ------------------------------------------------------------------ the queue in the doc

    def publish_document(self, document_id: str) -> None:
        """Show the document's queue (and pending prompts) to its collaborators."""
        queue = self.queues.get(document_id)
        if queue is not None:
            self.view.publish(queue)
