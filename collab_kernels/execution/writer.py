"""Writing kernel output into one document, in few transactions.

A :class:`DocumentWriter` buffers the output messages routed to its document and applies them
in one ``with ydoc.transaction()``: the first message of a burst (and a cell's first output)
is written on the next loop iteration, later ones at most every
``ExecutionManager.output_batch_interval`` seconds. Each
transaction is one Y update to every collaborator, and appending to a ``Text`` costs per
transaction in proportion to its length, so batching is what keeps a chatty cell cheap.

The writer follows its document across room objects: if the room was freed (nobody connected,
nothing running) and output still arrives (a background thread), the room is recreated and
the output lands there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycrdt import Map

from .outputs import (
    DocumentOutputState,
    apply_output_message,
    cell_outputs,
    finish_execution,
    start_execution,
)

if TYPE_CHECKING:  # pragma: no cover
    from .manager import ExecutionManager

#: Root map of the Y document holding the execution queue and pending input prompts,
#: cell id -> {"status": "queued"|"running"|"aborted", "request_id", "kernel_id",
#: "position", "input_request"?}. It is not part of the notebook schema, so it is never saved.
EXECUTION_MAP = "execution"


class DocumentWriter:
    def __init__(self, manager: ExecutionManager, document_id: str):
        self.manager = manager
        self.document_id = document_id
        self.room: Any = None
        self.state = DocumentOutputState()
        self.pending: list[tuple[str, str, dict[str, Any]]] = []
        self._handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._loading: asyncio.Future | None = None
        self.log = manager.log
        # cell id -> cell Map, dropped whenever the cells array itself changes (see cells_by_id)
        self._index: dict[str, Map] | None = None
        self._index_room: Any = None
        self._index_cells: Any = None
        self._index_sub: Any = None

    # --- the room ------------------------------------------------------------------------
    def _live_room(self) -> Any:
        room = self.room
        if room is not None and not getattr(room, "closed", False):
            return room
        room = self.manager.room_manager.find_room(self.document_id)
        if room is not self.room:
            self.room = room
            self.state = DocumentOutputState()
        return room

    async def get_room(self) -> Any:
        room = self._live_room()
        if room is not None:
            return room
        room = await self.manager.room_manager.get_room(self.document_id)
        if room is not self.room:
            self.room = room
            self.state = DocumentOutputState()
        return room

    def forget_room(self, room: Any) -> None:
        if self.room is room:
            self.room = None
            self.state = DocumentOutputState()
        if self._index_room is room:
            self._drop_index()

    # --- cells by id ---------------------------------------------------------------------
    def cells_by_id(self, room: Any) -> dict[str, Map]:
        """cell id -> cell ``Map`` of ``room``'s notebook (do not mutate).

        Building it reads every cell's id (a few microseconds per cell), and every output
        transaction needs it: it is kept until the cells array changes (a cell inserted,
        deleted or moved, observed on the array) or the room object changes."""
        if self._index is not None and self._index_room is room:
            return self._index
        ycells = room.document.ycells
        if self._index_room is not room:
            self._drop_index()
            try:
                self._index_sub = ycells.observe(self._cells_changed)
                self._index_cells = ycells
                self._index_room = room
            except Exception:  # pragma: no cover - no observable array: no cache
                return {ycell.get("id"): ycell for ycell in ycells}
        self._index = {ycell.get("id"): ycell for ycell in ycells}
        return self._index

    def _cells_changed(self, _event: Any) -> None:
        self._index = None

    def _drop_index(self) -> None:
        if self._index_sub is not None:
            try:
                self._index_cells.unobserve(self._index_sub)
            except Exception:  # the room's document is gone
                pass
        self._index = self._index_room = self._index_cells = self._index_sub = None

    # --- buffered output -----------------------------------------------------------------
    def enqueue(
        self, cell_id: str, msg_type: str, content: dict[str, Any], *, with_end: bool = False
    ) -> None:
        """Buffer an output message for the next output transaction.

        ``with_end``: the message closes its execution (an ``execute_result``: the kernel
        publishes it as the code ends, then only the reply and the idle status follow, or
        the output of post-execute hooks). It waits for the cell's end transaction, at most
        ``output_batch_interval``, so that collaborators get the result, the count and
        idle as one update: a cell never shows its result without its count, and each
        collaborator decodes one update instead of two.
        """
        self.pending.append((cell_id, msg_type, content))
        if self._handle is not None:
            return
        loop = asyncio.get_event_loop()
        if with_end:
            wait = self.manager.output_batch_interval
        else:
            wait = self.manager.output_batch_interval - (loop.time() - self._last_flush)
        if wait > 0:
            self._handle = loop.call_later(wait, self._flush_soon)
        else:
            self._handle = loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._handle = None
        if not self.pending:
            return
        if self._live_room() is None:
            if self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(self._load_then_flush())
            return
        self.flush()

    async def _load_then_flush(self) -> None:
        try:
            await self.get_room()
        except Exception as e:
            self.log.warning(
                "collab_kernels: %d output message(s) for document %s dropped: %s",
                len(self.pending),
                self.document_id,
                e,
            )
            self.pending.clear()
            return
        self.flush()

    def _apply_pending(self, cells: dict[str, Map], ycells: Any) -> None:
        pending, self.pending = self.pending, []
        for cell_id, msg_type, content in pending:
            ycell = cells.get(cell_id)
            try:
                apply_output_message(ycells, ycell, msg_type, content, self.state)
            except Exception:
                self.log.exception(
                    "collab_kernels: could not write a %s output into cell %s of %s",
                    msg_type,
                    cell_id,
                    getattr(self.room, "path", self.document_id),
                )

    def flush(self) -> bool:
        """Apply buffered output now, in one transaction. False if the room is not live."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        room = self._live_room()
        if room is None:
            return False
        if self.pending:
            self.edit(lambda cells, ycells: None)
        return True

    def edit(self, fn: Callable[[dict[str, Map], Any], Any]) -> Any:
        """Run ``fn(cells_by_id, ycells)`` in one transaction, after the buffered output."""
        room = self._live_room()
        if room is None:
            raise RuntimeError(f"document {self.document_id} is not open")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        ycells = room.document.ycells
        had_output = bool(self.pending)
        with room.ydoc.transaction():
            cells = self.cells_by_id(room)
            if had_output:
                self._apply_pending(cells, ycells)
            result = fn(cells, ycells)
        if had_output:
            # Only output transactions count for the batching interval: the first output
            # after a cell's start (or end) is written at once.
            self._last_flush = asyncio.get_event_loop().time()
        return result

    # --- execution state -----------------------------------------------------------------
    def execution_map(self) -> Map:
        return self.room.ydoc.get(EXECUTION_MAP, type=Map)

    def start_cell(
        self,
        cell_id: str,
        queue_entries: dict[str, dict[str, Any]],
        mark_running: list[str] = (),
    ) -> None:
        """Start ``cell_id`` (outputs cleared, count null, running) and show the cells of
        ``mark_running`` as queued ([*]), in one transaction."""

        def fn(cells: dict[str, Map], ycells: Any) -> None:
            ycell = cells.get(cell_id)
            if ycell is not None:
                start_execution(ycell, self.state)
            for cid in mark_running:
                other = cells.get(cid)
                if other is not None and other.get("execution_state") != "running":
                    other["execution_state"] = "running"
            self._write_entries(queue_entries)

        self.edit(fn)
        # A cell's first output starts a burst: written at once, not output_batch_interval
        # after the previous cell's last output.
        self._last_flush = float("-inf")

    def finish_cell(
        self,
        cell_id: str,
        execution_count: int | None,
        queue_entries: dict[str, dict[str, Any]] | None,
        extra_outputs: list[dict[str, Any]] | None = None,
    ) -> None:
        def fn(cells: dict[str, Map], ycells: Any) -> None:
            ycell = cells.get(cell_id)
            if ycell is not None:
                for output in extra_outputs or ():
                    cell_outputs(ycell).append(Map(output))
                finish_execution(ycell, execution_count)
            if queue_entries is not None:
                self._write_entries(queue_entries)

        self.edit(fn)
        self.send_now()

    def send_now(self) -> None:
        """Have the room send what was just committed without waiting for its coalescing
        window: the end of a cell (count and idle) is what every collaborator waits for."""
        room = self._live_room()
        flush_updates = getattr(room, "flush_updates", None)
        if flush_updates is not None:
            flush_updates()

    def set_queue(
        self,
        queue_entries: dict[str, dict[str, Any]],
        idle_cells: list[str] = (),
        mark_running: list[str] = (),
    ) -> None:
        """Write the queue entries; put ``idle_cells`` back to idle (not run) and show
        ``mark_running`` as ``[*]`` (queued)."""

        def fn(cells: dict[str, Map], ycells: Any) -> None:
            for cid in idle_cells:
                ycell = cells.get(cid)
                if ycell is not None and ycell.get("execution_state") != "idle":
                    ycell["execution_state"] = "idle"
            for cid in mark_running:
                ycell = cells.get(cid)
                if ycell is not None and ycell.get("execution_state") != "running":
                    ycell["execution_state"] = "running"
            self._write_entries(queue_entries)

        self.edit(fn)

    def _write_entries(self, entries: dict[str, dict[str, Any]]) -> None:
        """Make the execution map equal ``entries`` (plus "aborted" marks not overridden)."""
        emap = self.execution_map()
        for cid in list(emap.keys()):
            if cid not in entries:
                current = emap.get(cid)
                if isinstance(current, dict) and current.get("status") == "aborted":
                    continue
                del emap[cid]
        for cid, entry in entries.items():
            if emap.get(cid) != entry:
                emap[cid] = entry

    def finish_external(self, cell_id: str, execution_count: int | None) -> None:
        """End of an execution a browser sent over its kernel websocket."""

        def fn(cells: dict[str, Map], ycells: Any) -> None:
            ycell = cells.get(cell_id)
            if ycell is None:
                return
            if execution_count is not None and ycell.get("execution_count") != execution_count:
                finish_execution(ycell, execution_count)
            elif ycell.get("execution_state") != "idle":
                ycell["execution_state"] = "idle"

        if self._live_room() is not None:
            self.edit(fn)
