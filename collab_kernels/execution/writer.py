"""Writing kernel output into one document, in few transactions.

A :class:`DocumentWriter` buffers the output messages routed to its document and applies them
in one ``with ydoc.transaction()``: the first message of a burst (and a cell's first output)
is written on the next loop iteration, later ones at most every ``batch_interval()`` seconds
(``ExecutionManager.output_batch_interval``). Each transaction is one Y update to every
collaborator, and appending to a ``Text`` costs per transaction in proportion to its length,
so batching is what keeps a chatty cell cheap.

A flooding cell (printing in a tight loop) must not take the event loop from other rooms:
its chunks are joined and cut to what the cell may keep (``batching.py``); a timer-driven
transaction applies messages for at most ``FLUSH_BUDGET`` s (the rest, in order, goes into
the next one; a cell's start or end still writes everything before it); after a
transaction of ``t`` s the next waits ``t * (1 / time_share() - 1)``
(``ExecutionManager.output_time_share``), and ``output_limited_interval`` while a cell
prints past the room's per-cell limit, which is applied as output arrives
(:meth:`NotebookRoom.limit_cell_output`: the cell's ``Text``, whose appends cost in
proportion to its length, never grows much past it).

The writer follows its document across room objects: if the room was freed (nobody connected,
nothing running) and output still arrives (a background thread), the room is recreated and
the output lands there. :class:`WriterPool` holds one writer per document.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from pycrdt import Map

from ..contract import EXECUTION_MAP
from .batching import Pending, StreamCuts, join_streams
from .cell_index import CellArray, CellIndex, CellMap, CellsById, notebook_cells
from .outputs import (
    DocumentOutputState,
    apply_output_message,
    cell_outputs,
    clear_execution,
    finish_execution,
    start_execution,
    stream_trimmed,
)
from .ports import Log, NotebookRoom, RoomSource
from .queue import QueueEntries, QueueEntry
from .trust import CellTrust, drop_original, trusted_copy_after

T = TypeVar("T")

#: seconds of message application one timer-driven output transaction may take; what is
#: left waits for the next transaction (a bound on the work one document does per callback,
#: not a setting: the share of the loop is ``output_time_share``)
FLUSH_BUDGET = 0.01


class DocumentWriter:
    """The output and execution state writes of one document (room id)."""

    def __init__(
        self,
        document_id: str,
        rooms: RoomSource,
        batch_interval: Callable[[], float],
        log: Log,
        trust: Callable[[], bool] = lambda: True,
        time_share: Callable[[], float] = lambda: 0.0,
        limited_interval: Callable[[], float] = lambda: 0.0,
    ):
        self.limited_interval = limited_interval
        self.document_id = document_id
        self.rooms = rooms
        self.batch_interval = batch_interval
        self.trust = trust
        self.time_share = time_share
        self.log = log
        self.room: NotebookRoom | None = None
        self.state = DocumentOutputState()
        self.pending: list[Pending] = []
        self._handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        #: loop time before which no timer-driven output transaction starts (time share)
        self._not_before = 0.0
        #: the last output transaction dropped text over a cell's output limit
        self.trimmed = False
        self._loading: asyncio.Future[None] | None = None
        #: the room's cells array and cell id -> cell Map
        self.cells = CellIndex()
        #: cells marked trusted whose frontends' models may not be (trust.py)
        self.cell_trust = CellTrust()
        #: how many times the queue entries were written (``held_end_current``)
        self.entries_written = 0

    # --- the room ------------------------------------------------------------------------
    def live_room(self) -> NotebookRoom | None:
        """The document's room if it is open (never loads it)."""
        room = self.room
        if room is not None and not room.closed:
            return room
        room = self.rooms.find_room(self.document_id)
        if room is not self.room:
            self._set_room(room)
        return room

    async def get_room(self) -> NotebookRoom:
        """The document's room, loaded if it was freed."""
        room = self.live_room()
        if room is not None:
            return room
        room = await self.rooms.get_room(self.document_id)
        if room is not self.room:
            self._set_room(room)
        return room

    def _set_room(self, room: NotebookRoom | None) -> None:
        self.room = room
        self.state = DocumentOutputState()

    def forget_room(self, room: NotebookRoom | None) -> None:
        if room is None:
            return
        if self.room is room:
            self._set_room(None)
        self.cells.forget(room)

    def cells_by_id(self, room: NotebookRoom) -> CellsById:
        """cell id -> cell ``Map`` of ``room``'s notebook (do not mutate; ``CellIndex``)."""
        return self.cells.by_id(room)

    # --- buffered output -----------------------------------------------------------------
    def enqueue(
        self, cell_id: str, msg_type: str, content: dict[str, Any], *, with_end: bool = False
    ) -> None:
        """Buffer an output message for the next output transaction.

        ``with_end``: the message closes its execution (an ``execute_result``: the kernel
        publishes it as the code ends, then only the reply and the idle status follow, or
        the output of post-execute hooks). It is written at once, while the kernel is still
        finishing, but the room holds the update until the cell's end transaction, at most
        ``batch_interval()``, so that collaborators get the result, the count and idle as
        one update: a cell never shows its result without its count, each collaborator
        decodes one update instead of two, and the end transaction has less to do.
        """
        self.pending.append((cell_id, msg_type, content))
        if self._handle is not None:
            return
        if with_end:
            interval = self.batch_interval()
            room = self.live_room()
            if interval > 0 and room is not None and self._not_before <= room_time():
                self.edit(lambda cells, ycells: room.hold_updates(interval))
                return
        self._schedule(with_end)

    def _schedule(self, with_end: bool = False) -> None:
        loop = asyncio.get_event_loop()
        interval = self.batch_interval()
        now = loop.time()
        wait = interval if with_end else interval - (now - self._last_flush)
        wait = max(wait, self._not_before - now)
        if wait > 0:
            self._handle = loop.call_later(wait, self._flush_soon)
        else:
            self._handle = loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._handle = None
        if not self.pending:
            return
        if self.live_room() is None:
            if self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(self._load_then_flush())
            return
        self.flush(budget=FLUSH_BUDGET)
        if self.pending and self._handle is None:
            self._schedule()  # the rest of a big burst, after the loop's other callbacks

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

    def _apply_pending(
        self, room: NotebookRoom, cells: CellsById, ycells: CellArray, budget: float | None
    ) -> None:
        """Apply the buffered messages in order (inside the caller's transaction); with a
        ``budget`` (seconds), stop once it is spent and keep the rest buffered."""
        pending, self.pending = join_streams(self.pending, room.kept_cell_output), []
        deadline = None if budget is None else time.perf_counter() + budget
        cuts = StreamCuts(room.kept_cell_output)
        streamed: dict[str, CellMap] = {}
        for index, (cell_id, msg_type, content) in enumerate(pending):
            if deadline is not None and index and time.perf_counter() > deadline:
                self.pending = pending[index:]
                break
            ycell = cells.get(cell_id)
            if ycell is not None:
                content = cuts.message(cell_id, msg_type, content)
                if msg_type == "stream":
                    streamed[cell_id] = ycell
            try:
                apply_output_message(ycells, ycell, msg_type, content, self.state)
            except Exception:
                self.log.exception(
                    "collab_kernels: could not write a %s output into cell %s of %s",
                    msg_type,
                    cell_id,
                    self.room.path if self.room is not None else self.document_id,
                )
        self.trimmed = False
        for cell_id, ycell in streamed.items():
            kept, left_out = cuts.of(cell_id)
            cell_state = self.state.cell(cell_id)
            appended, cell_state.plain_appended = cell_state.plain_appended, 0
            try:
                if room.limit_cell_output(ycell, keep=kept, dropped=left_out, appended=appended):
                    self.trimmed = True
                    stream_trimmed(ycell, cell_state)
            except Exception:
                self.log.exception(
                    "collab_kernels: could not apply the output limit to cell %s of %s",
                    cell_id,
                    room.path,
                )

    def flush(self, budget: float | None = None) -> bool:
        """Apply buffered output now, in one transaction (with a ``budget`` in seconds: what
        fits in it, the rest stays buffered). False if the room is not live."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        room = self.live_room()
        if room is None:
            return False
        if self.pending:
            self.edit(lambda cells, ycells: None, budget=budget)
        return True

    def edit(self, fn: Callable[[CellsById, CellArray], T], budget: float | None = None) -> T:
        """Run ``fn(cells_by_id, ycells)`` in one transaction, after the buffered output
        (all of it, unless a ``budget`` is given: only for a transaction of output alone)."""
        room = self.live_room()
        if room is None:
            raise RuntimeError(f"document {self.document_id} is not open")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        had_output = bool(self.pending)
        started = time.perf_counter()
        recreated = self._recreate_for_trust(room) if had_output and self.trust() else []
        with room.ydoc.transaction():
            cells = self.cells.by_id(room)
            ycells = self.cells.array(room)
            for cell_id in recreated:
                drop_original(ycells, cell_id)
            if had_output:
                self._apply_pending(room, cells, ycells, budget)
            result = fn(cells, ycells)
        if had_output:
            # Only output transactions count for the batching interval: the first output
            # after a cell's start (or end) is written at once.
            now = asyncio.get_event_loop().time()
            self._last_flush = now
            share = self.time_share()
            if 0 < share < 1:
                self._not_before = now + (time.perf_counter() - started) * (1 / share - 1)
            if self.trimmed:
                # A cell prints past the output limit: most of what it prints is dropped
                # anyway, so take it in larger, rarer transactions.
                self._not_before = max(self._not_before, now + self.limited_interval())
        return result

    def _recreate_for_trust(self, room: NotebookRoom) -> list[str]:
        """Insert a trusted copy after each cell a buffered output needing trust goes to
        (each sent on its own; the caller deletes the originals: trust.py says why)."""
        cell_ids = self.cell_trust.to_recreate(
            self.pending, self.cells.by_id(room), self.state.displays
        )
        for cell_id in cell_ids:
            room.flush_updates()
            with room.ydoc.transaction():
                ycell = self.cells.by_id(room).get(cell_id)
                if ycell is not None:
                    trusted_copy_after(self.cells.array(room), ycell)
            self.cell_trust.recreated(cell_id)
        if cell_ids:
            room.flush_updates()
        return cell_ids

    # --- execution state -----------------------------------------------------------------
    def execution_map(self) -> Map[Any]:
        room = self.live_room()
        if room is None:
            raise RuntimeError(f"document {self.document_id} is not open")
        return cast("Map[Any]", room.ydoc.get(EXECUTION_MAP, type=Map))

    def start_cell(
        self, cell_id: str, queue_entries: QueueEntries, mark_running: Iterable[str] = ()
    ) -> None:
        """Start ``cell_id`` (outputs cleared, count null, running; marked trusted, trust.py)
        and show the cells of ``mark_running`` as queued ([*]), in one transaction."""

        def fn(cells: CellsById, ycells: CellArray) -> None:
            ycell = cells.get(cell_id)
            if ycell is not None:
                start_execution(ycell, self.state)
                if self.trust():
                    self.cell_trust.started(ycell)
            _set_states(cells, mark_running, "running")
            self._write_entries(queue_entries)

        self.edit(fn)
        # A cell's first output starts a burst: written at once, not batch_interval() after
        # the previous cell's last output.
        self._last_flush = float("-inf")

    def show_error(self, cell_id: str, output: dict[str, Any]) -> bool:
        """Replace a code cell's outputs by one error (the cell did not run: no count, idle).
        False if there is no such code cell."""

        def fn(cells: CellsById, ycells: CellArray) -> bool:
            ycell = cells.get(cell_id)
            if ycell is None or ycell.get("cell_type") != "code":
                return False
            clear_execution(ycell, self.state)
            cell_outputs(ycell).append(Map(output))
            return True

        shown = self.edit(fn)
        self.send_now()
        return shown

    def clear_cell(self, cell_id: str, queue_entries: QueueEntries) -> None:
        """A cell with no code ends at once, as in JupyterLab: no outputs, no count, idle."""

        def fn(cells: CellsById, ycells: CellArray) -> None:
            ycell = cells.get(cell_id)
            if ycell is not None:
                clear_execution(ycell, self.state)
                if self.trust():
                    self.cell_trust.started(ycell)
            self._write_entries(queue_entries)

        self.edit(fn)
        self.send_now()

    def finish_cell(
        self,
        cell_id: str,
        execution_count: int | None,
        queue_entries: QueueEntries | None,
        extra_outputs: list[dict[str, Any]] | None = None,
        *,
        held: bool = False,
    ) -> object | None:
        """The cell's end (count, idle, ``extra_outputs``, the queue entries) in one
        transaction after the buffered output, sent at once. ``held`` (the kernel replied,
        its idle status is on the way): held by the room for at most ``batch_interval()``
        and stored now; returns the mark :meth:`send_held_end` takes (None: nothing was
        written, the room cannot hold updates)."""
        room, interval = self.live_room(), self.batch_interval()
        if held and (room is None or interval <= 0):
            return None

        def fn(cells: CellsById, ycells: CellArray) -> None:
            if held and room is not None:
                room.hold_updates(interval)
            ycell = cells.get(cell_id)
            if ycell is not None:
                for output in extra_outputs or ():
                    cell_outputs(ycell).append(Map(output))
                finish_execution(ycell, execution_count)
            if queue_entries is not None:
                self._write_entries(queue_entries)

        self.edit(fn)
        if not held or room is None:
            self.send_now()
            return None
        room.store_pending_updates()
        return (room, self.entries_written)

    def send_held_end(self, mark: object) -> bool:
        """Send the end that ``finish_cell(held=True)`` wrote and returned ``mark`` for, with
        what the cell printed since; False (nothing done) if the queue entries were written
        again or the room was replaced since."""
        if mark != (self.live_room(), self.entries_written):
            return False
        self.flush()
        self.send_now()
        return True

    def send_now(self) -> None:
        """Have the room send what was just committed without waiting for its coalescing
        window: the end of a cell (count and idle) is what every collaborator waits for."""
        room = self.live_room()
        if room is not None:
            room.flush_updates()

    def set_queue(
        self,
        queue_entries: QueueEntries,
        idle_cells: Iterable[str] = (),
        mark_running: Iterable[str] = (),
        aborted: QueueEntries | None = None,
    ) -> None:
        """Write the queue entries; put ``idle_cells`` back to idle (not run), show
        ``mark_running`` as ``[*]`` (queued) and mark the cells of ``aborted`` (not run
        because of an earlier error) with their entries, unless they are queued again."""

        def fn(cells: CellsById, ycells: CellArray) -> None:
            _set_states(cells, idle_cells, "idle")
            _set_states(cells, mark_running, "running")
            self._write_entries(queue_entries)
            if aborted:
                emap = self.execution_map()
                for cid, entry in aborted.items():
                    if cid not in queue_entries:
                        emap[cid] = dict(entry)

        self.edit(fn)

    def _write_entries(self, entries: QueueEntries) -> None:
        """Make the execution map equal ``entries`` (plus "aborted" marks not overridden)."""
        self.entries_written += 1
        emap = self.execution_map()
        for cid in list(emap.keys()):
            if cid not in entries:
                current = emap.get(cid)
                if isinstance(current, dict) and current.get("status") == "aborted":
                    continue
                del emap[cid]
        for cid, entry in entries.items():
            if emap.get(cid) != entry:
                emap[cid] = dict(entry)

    def finish_external(self, cell_id: str, execution_count: int | None) -> None:
        """End of an execution a browser sent over its kernel websocket."""

        def fn(cells: CellsById, ycells: CellArray) -> None:
            ycell = cells.get(cell_id)
            if ycell is None:
                return
            if execution_count is not None and ycell.get("execution_count") != execution_count:
                finish_execution(ycell, execution_count)
            elif ycell.get("execution_state") != "idle":
                ycell["execution_state"] = "idle"

        if self.live_room() is not None:
            self.edit(fn)


def room_time() -> float:
    """The event loop's clock (that of the writer's timers and the room's holds)."""
    return asyncio.get_event_loop().time()


def _set_states(cells: CellsById, cell_ids: Iterable[str], state: str) -> None:
    for cid in cell_ids:
        ycell = cells.get(cid)
        if ycell is not None and ycell.get("execution_state") != state:
            ycell["execution_state"] = state


__all__ = ["EXECUTION_MAP", "DocumentWriter", "QueueEntry", "notebook_cells"]
