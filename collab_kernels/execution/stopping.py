"""Stopping document queues: cancels, interrupts and kernels that go away.

A queued request can be cancelled (:meth:`QueueStops.cancel`), a running one too
(:meth:`QueueStops.cancel_running`: its running cell is interrupted). A kernel that is
interrupted, dies, restarts or shuts down stops the queues of its documents: what is
queued is aborted and shown so, and (but for an interrupt, whose cell ends with its
KeyboardInterrupt) the running cells fail with :class:`KernelGone`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..contract import ABORTED, CANCELLED, DONE, QUEUED, RUNNING
from .ports import Log
from .queue import DocumentQueue
from .queue_view import QueueView
from .requests import ExecutionRequest, StopReason
from .routing import KernelLink

_STOP_EVENTS: dict[str, StopReason] = {
    "interrupted": "interrupted",
    "dead": "dead",
    "restarted": "restarted",
    "shutdown": "shutdown",
}


class KernelGone(Exception):
    """The kernel died, restarted or shut down while a cell ran."""

    def __init__(self, event: str):
        self.event = event
        super().__init__(event)


class QueueStops:
    """Stops (parts of) the runner's document queues."""

    def __init__(
        self,
        queues: dict[str, DocumentQueue],
        view: QueueView,
        interrupt: Callable[[str], Awaitable[None]],
        drop_link: Callable[[KernelLink], None],
        log: Log,
    ):
        self.queues = queues
        self.view = view
        self.interrupt = interrupt
        self.drop_link = drop_link
        self.log = log

    def kernel_event(self, link: KernelLink, event: str) -> None:
        """A lifecycle event of the kernel: an interrupt stops its documents' queues (the
        interrupted cell ends with its KeyboardInterrupt); death, restart and shutdown also
        fail the cells that were running."""
        reason = _STOP_EVENTS.get(event)
        if reason is None:
            return
        if reason == "interrupted":
            self.clear_kernel_queues(link.kernel_id, reason=reason)
            return
        kernel_id = link.kernel_id
        generation = link.generation
        victims: list[asyncio.Future[None]] = []
        for queue in list(self.queues.values()):
            current = queue.current
            if current is None or current.kernel_id != kernel_id:
                continue
            for cell in current.cells:
                if cell.finished is None or cell.finished.done():
                    continue
                # A "restarted" event may arrive after cells were already sent to the new
                # kernel process: only what went to the previous process is lost.
                if reason == "restarted" and cell.generation >= generation:
                    continue
                cell.kernel_gone = True
                victims.append(cell.finished)
        if reason != "restarted" or victims:
            self.log.info(
                "collab_kernels: kernel %s %s; failing %d running cell(s)",
                kernel_id,
                event,
                len(victims),
            )
            self.clear_kernel_queues(kernel_id, reason=reason)
        for finished in victims:
            finished.set_exception(KernelGone(event))
        if reason == "shutdown":
            self.drop_link(link)

    def clear_kernel_queues(self, kernel_id: str, *, reason: StopReason) -> int:
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
                current.stop_reason = reason
                for cell in current.cells:
                    if cell.status == QUEUED:
                        cell.status, cell.result = DONE, ABORTED
                        count += 1
                self.view.publish(
                    queue, idle_cells=[c.cell_id for c in current.cells if c.result == ABORTED]
                )
            if aborted:
                count += sum(len(r.cells) for r in aborted)
                self.view.mark_aborted(queue, aborted, ABORTED)
            queue.release_if_idle()
        if count:
            self.log.info(
                "collab_kernels: kernel %s %s: %d queued cell(s) will not run",
                kernel_id,
                reason,
                count,
            )
        return count

    def cancel(self, request: ExecutionRequest) -> bool:
        """Cancel a queued request; False if it already runs or ended."""
        queue = self.queues.get(request.queue_key)
        if request.status != QUEUED or queue is None or not queue.remove(request):
            return False
        request.end(CANCELLED)
        self.view.publish(queue, idle_cells=[c.cell_id for c in request.cells])
        queue.release_if_idle()
        return True

    async def cancel_running(self, request: ExecutionRequest) -> bool:
        """Cancel a running request: its queued cells are dropped, the running cell is
        interrupted, and the request ends "cancelled". Other requests of the document keep
        their place."""
        queue = self.queues.get(request.queue_key)
        if request.status != RUNNING or queue is None:
            return False
        request.cancel_requested = True
        dropped = []
        for cell in request.cells:
            if cell.status == QUEUED:
                cell.status, cell.result = DONE, CANCELLED
                dropped.append(cell.cell_id)
        self.view.publish(queue, idle_cells=dropped)
        if any(c.status == RUNNING for c in request.cells):
            await self.interrupt(request.kernel_id)
        return True
