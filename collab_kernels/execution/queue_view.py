"""The queue as collaborators see it: the document's execution map and ``[*]`` states.

:class:`QueueView` writes a document queue's entries (:func:`.queue.queue_entries`) into
its document, puts cells that will not run back to idle and marks the ones an error aborted.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..contract import ABORTED, CANCELLED, DONE, CellResult
from .ports import Log
from .queue import DocumentQueue, QueueEntries, queue_entries
from .requests import ExecutionRequest
from .writer_pool import WriterPool


class QueueView:
    def __init__(self, writers: WriterPool, log: Log):
        self.writers = writers
        self.log = log

    def publish(
        self,
        queue: DocumentQueue,
        idle_cells: Iterable[str] = (),
        mark_running: Iterable[str] = (),
        aborted: QueueEntries | None = None,
    ) -> None:
        if queue.document_id is None:
            return
        writer = self.writers.get(queue.document_id)
        if writer.live_room() is None:
            return
        entries = queue_entries(queue)
        # A cell still queued in another request stays [*].
        idle = [cid for cid in idle_cells if cid not in entries]
        try:
            writer.set_queue(entries, idle_cells=idle, mark_running=mark_running, aborted=aborted)
        except Exception:
            self.log.exception(
                "collab_kernels: could not publish the queue of %s", queue.document_id
            )

    def mark_aborted(
        self, queue: DocumentQueue, requests: list[ExecutionRequest], result: CellResult
    ) -> None:
        """End ``requests`` with ``result``; their cells not run go back to idle, marked
        "aborted" in the execution map (unless cancelled)."""
        cells: list[str] = []
        for request in requests:
            cells.extend(c.cell_id for c in request.cells if c.status != DONE)
            request.end(result)
        aborted: QueueEntries = {}
        if result != CANCELLED:
            for request in requests:
                for cell in request.cells:
                    if cell.result == ABORTED:
                        aborted[cell.cell_id] = {
                            "status": "aborted",
                            "request_id": request.request_id,
                            "kernel_id": request.kernel_id,
                        }
        self.publish(queue, idle_cells=cells, aborted=aborted)
