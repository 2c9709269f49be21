"""The run watcher: turns a run's REST record and document edits into ordered events.

The server writes a run's progress into the notebook's shared document: outputs into the
cells, and queued/running/aborted entries into the execution map (``contract.EXECUTION_MAP``),
in the same transaction as the cell's own edits. :class:`RunWatcher` observes both, polls the
request record for prompts and the final result, and emits each line of output once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..contract import EXECUTION_MAP
from .records import (
    CellFinished,
    CellStarted,
    InputRequested,
    Output,
    RunEvent,
    RunFinished,
    RunRecord,
    output_text,
)

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger("collab_kernels.client")


def _visible_tail(tail: str) -> str:
    # The server stores an unfinished line whose cursor is not at its end as
    # "line\rprefix" (see execution/outputs.py): what a terminal shows is "line".
    return tail.split("\r", 1)[0]


def py_value(value: Any) -> Any:
    """A pycrdt value as plain Python (maps and arrays converted, scalars as they are)."""
    return value.to_py() if hasattr(value, "to_py") else value


def _count(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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


class RunWatcher:
    """Watches one run from its start; its events go to ``queue`` (an exception too, once)."""

    def __init__(self, run: Run):
        self.run = run
        self.queue: asyncio.Queue[RunEvent | BaseException] = asyncio.Queue()
        self.final: RunRecord | None = None
        self._changed = asyncio.Event()
        self._watches = {cid: _CellWatch(cid, i + 1) for i, cid in enumerate(run.cell_ids)}
        self._prompt_key: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscription: Any = None
        self._map_subscription: Any = None
        self._execution_map: Any = None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def start(self) -> None:
        from pycrdt import Map

        self._execution_map = self.run.notebook.ynotebook.ydoc.get(EXECUTION_MAP, type=Map)
        self._map_subscription = self._execution_map.observe(lambda event: self._changed.set())
        ycells = self.run.notebook.ynotebook.ycells
        self._subscription = ycells.observe_deep(self._on_doc_events)
        self._task = asyncio.ensure_future(self._watch())

    def _on_doc_events(self, events: list[Any]) -> None:
        # Called inside the transaction that applied a remote update: note which cells had
        # outputs removed (a clear), so their cursors restart at the new first output.
        try:
            for event in events:
                path = list(getattr(event, "path", []) or [])
                if len(path) >= 2 and path[1] == "outputs" and type(event).__name__ == "ArrayEvent":
                    delta = getattr(event, "delta", []) or []
                    if any("delete" in d for d in delta):
                        ycell = self.run.notebook.ynotebook.ycells[path[0]]
                        watch = self._watches.get(str(ycell.get("id")))
                        if watch is not None:
                            watch.reset = True
                elif len(path) == 1 and type(event).__name__ == "MapEvent":
                    keys = getattr(event, "keys", {}) or {}
                    if "outputs" in keys:
                        ycell = self.run.notebook.ynotebook.ycells[path[0]]
                        watch = self._watches.get(str(ycell.get("id")))
                        if watch is not None:
                            watch.reset = True
        except Exception:  # never break the document's transaction
            log.debug("run %s: cannot read a document event", self.run.run_id, exc_info=True)
        self._changed.set()

    def _emit(self, event: RunEvent) -> None:
        self.queue.put_nowait(event)

    async def _watch(self) -> None:
        try:
            await self._watch_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # hand errors to the consumer
            self.queue.put_nowait(e)
        finally:
            if self._subscription is not None:
                try:
                    self.run.notebook.ynotebook.ycells.unobserve(self._subscription)
                    self._execution_map.unobserve(self._map_subscription)
                except Exception:
                    pass
                self._subscription = None

    async def _watch_loop(self) -> None:
        interval = self.run.client.poll_interval
        record = await self.run.status()
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
                record = await self.run.status()
                last_poll = time.monotonic()
                self._apply_record(record)
            if record.get("status") == "done":
                done_at = done_at or time.monotonic()
                caught_up = self._doc_caught_up()
                if caught_up or time.monotonic() - done_at > 10:
                    self._scan(final=True)
                    self.final = record
                    self._emit(RunFinished(record))
                    return
            self._scan(final=False)

    def _apply_record(self, record: RunRecord) -> None:
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
            cell_watch = self._watches.get(cell.get("cell_id", ""))
            if cell_watch is None:
                continue
            watch = cell_watch
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
        return {
            str(ycell.get("id")): i for i, ycell in enumerate(self.run.notebook.ynotebook.ycells)
        }

    def _execution_entry(self, cell_id: str) -> dict[str, Any] | None:
        """This run's entry for the cell in the document's ``execution`` map (queued/running/
        aborted, with a pending prompt), written by the server in the same transaction as the
        cell's own start/finish edits; None once the cell is done or for another run's entry."""
        entry = (
            py_value(self._execution_map.get(cell_id)) if self._execution_map is not None else None
        )
        if isinstance(entry, dict) and entry.get("request_id") == self.run.run_id:
            return entry
        return None

    def _scan(self, final: bool) -> None:
        ycells = self.run.notebook.ynotebook.ycells
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

    def _scan_outputs(self, watch: _CellWatch, ycell: Any, flush: bool) -> None:
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
                output = py_value(youtput)
                self._emit(
                    Output(
                        watch.cell_id, watch.position, str(otype), output_text(output), None, output
                    )
                )
            watch.out_index += 1
            watch.consumed = 0
