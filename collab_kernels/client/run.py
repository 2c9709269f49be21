"""A run: one execute request of a notebook's cells; its id is the request id.

A run's state lives in the server; :class:`Run` asks for its record over REST, cancels it,
answers its ``input()`` prompts, and yields what happens in it (:meth:`Run.events`) through a
:class:`~.watcher.RunWatcher` on the notebook's document.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .errors import CollabError
from .records import Output, RunEvent, RunFinished, RunRecord
from .watcher import RunWatcher

if TYPE_CHECKING:
    from .notebook import Notebook


class Run:
    """One execute request (the run id is the request id), watched through the document."""

    def __init__(self, notebook: Notebook, record: RunRecord):
        self.notebook = notebook
        self.client = notebook.client
        self.record: RunRecord = record
        self.run_id: str = record["request_id"]
        self.kernel_id: str = record.get("kernel_id") or notebook.kernel_id or ""
        self.document_id: str = record.get("document_id") or notebook.document_id
        self.cell_ids: list[str] = [c["cell_id"] for c in record.get("cells", [])]
        self._watcher: RunWatcher | None = None
        self._final: RunRecord | None = None

    @property
    def path(self) -> str:
        return self.record.get("path") or self.notebook.path

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self.path} {self.record.get('status')}>"

    async def status(self) -> RunRecord:
        self.record = await self.client.run_status(self.kernel_id, self.run_id)
        return self.record

    async def cancel(self) -> RunRecord:
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

    async def wait(self, timeout: float | None = None) -> RunRecord:
        """Wait until the run is over; its final record."""

        async def _drain() -> RunRecord:
            async for _ in self.events():
                pass
            assert self._final is not None
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
        if self._final is not None:
            yield RunFinished(self._final)
            return
        if self._watcher is None:
            self._watcher = RunWatcher(self)
            self.notebook.watching(self)
            self._watcher.start()
        queue = self._watcher.queue
        while True:
            event = await queue.get()
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, RunFinished):
                self._final = event.status
            yield event
            if isinstance(event, RunFinished):
                return

    async def stop_watching(self) -> None:
        """Stop the watcher (the run goes on in the server)."""
        if self._watcher is not None:
            await self._watcher.stop()
