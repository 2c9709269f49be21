"""A document room: one notebook or text file as a server-owned Y document.

The room is the :class:`~.fanout.Fanout` of its collaborators plus what makes it a document:
a version counter bumped by every edit that should reach the file (``unsaved``), incoming
updates checked per connection (``intake.py``: read-only clients' edits are dropped), holds
that keep it alive (running cells), debounced saves, and its lifecycle (freed by its host once
idle, closed when the file is deleted, saved on server stop). The file itself is ``file.py``'s
:class:`~.file.RoomFile`; the update store glue is ``history.py``'s
:class:`~.history.RoomHistory`; the room reaches its manager only through
:class:`~.host.RoomHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Map

from ..contract import FILE_TYPES
from . import offload, progressive, protocol
from .content import new_document
from .fanout import Fanout, RoomClient
from .file import RoomFile
from .first_sync import FirstSync, framed_join
from .frames import Frame
from .history import RoomHistory
from .holds import RoomHold
from .host import RoomHost
from .intake import DocumentIntake, apply_client_update
from .saving import SaveSchedule, SaveStatus

#: seconds after a load from the file its saved content is computed, if no save needed it
#: before (the first collaborator's sync does not wait for it; file.saved_content_from)
MATERIALIZE_SECONDS = 2.0


class DocumentRoom(Fanout):
    """A notebook or text file as a server-owned Y document (see the module docstring)."""

    def __init__(
        self,
        room_id: str,
        *,
        file_id: str,
        path: str,
        file_type: str,
        host: RoomHost,
    ):
        super().__init__(
            room_id,
            log=host.log,
            coalesce_window=host.coalesce_window,
            fanout_cpu_share=host.fanout_cpu_share,
            awareness_window=host.awareness_window,
            awareness_renewal_window=host.awareness_renewal_window,
            max_awareness_state_size=host.max_awareness_state_size,
            max_awareness_ids=host.max_awareness_ids,
        )
        if file_type not in FILE_TYPES:
            raise ValueError(f"unsupported document type {file_type!r}")
        self.host = host
        self.file_id = file_id
        self.file_type = file_type
        self.format = FILE_TYPES[file_type]
        self._document: YNotebook | YUnicode = new_document(file_type, self.ydoc)
        self.file = RoomFile(
            self,
            path=path,
            file_type=file_type,
            file_id=file_id,
            contents_manager=host.contents_manager,
            log=host.log,
            path_for_file_id=host.path_for_file_id,
            max_cell_output=lambda: host.max_cell_output,
        )
        #: A fresh id per room object.
        self.instance_id = uuid.uuid4().hex
        #: The Y lineage of the document (sessions.py): a fresh one when it is built from the
        #: file, the stored one when it is restored from the update store. A browser whose
        #: history belongs to another lineage must not merge it.
        self.lineage = self.instance_id
        self._holds: dict[int, RoomHold] = {}
        self._version = 0  # bumped by every edit that should reach the file
        self._saved_version = 0
        self._server_edit = 0  # >0 while the room edits state itself (not an edit to save)
        self.saving = SaveSchedule(self, host, host.log)
        self._free_handle: asyncio.TimerHandle | None = None
        self._loaded = False
        #: the checks of incoming updates and the limit of each cell's output (intake.py)
        self.intake = DocumentIntake(
            self.ydoc,
            host=host,
            notebook=file_type == "notebook",
            describe=self.describe,
            log=host.log,
        )
        self._keeping: asyncio.Future[None] | None = None  # the loaded text being kept
        self._materialize: asyncio.TimerHandle | None = None  # the loaded saved content
        self._materializing: asyncio.Task[None] | None = None
        store = host.store
        #: the update store glue (None when the store is off)
        self.history: RoomHistory | None = None
        if store is not None:
            self.history = RoomHistory(
                store,
                room_id=room_id,
                ydoc=self.ydoc,
                log=host.log,
                describe=self.describe,
                compact_every=lambda: host.update_store_compact_every,
                in_file=lambda: not self.unsaved,
            )
        self.persist_before_sync = self.history is not None
        #: the state encoded at load and the store's history written after the first sync
        self.first_sync = FirstSync.settled_already()
        #: whether this room's Y state was restored from the update store on load
        self.restored_from_store = False

    def describe(self) -> str:
        return self.file.path

    def __repr__(self) -> str:
        return f"<DocumentRoom {self.room_id} {self.path!r}>"

    # --- what the file stage and others read -------------------------------------------------
    @property
    def document(self) -> YNotebook | YUnicode:
        return self._document

    @property
    def path(self) -> str:
        """The file's current path (follows renames)."""
        return self.file.path

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def version(self) -> int:
        return self._version

    @property
    def unsaved(self) -> bool:
        """Whether the room has edits the file does not have yet."""
        return self._version != self._saved_version

    @property
    def conflict(self) -> bool:
        """The file changed on disk while the room had unsaved edits."""
        return self.file.conflict

    # --- state -----------------------------------------------------------------------------
    def on_doc_changed(self) -> None:
        if self._server_edit or not self._loaded:
            return
        self._version += 1
        self.request_save()

    @contextlib.contextmanager
    def server_edit(self) -> Iterator[None]:
        self._server_edit += 1
        try:
            yield
        finally:
            self._server_edit -= 1

    def set_state(self, **values: Any) -> None:
        """Write the state map as the server (not an edit to save)."""
        with self.server_edit(), self.ydoc.transaction():
            for key, value in values.items():
                if self.document.ystate.get(key) != value:
                    self.document.ystate[key] = value

    def file_written(self, version: int) -> None:
        self._saved_version = version
        values: dict[str, Any] = {"hash": self.file.hash}
        if version == self._version:
            values["dirty"] = False
        self.set_state(**values)
        if self.history is not None and self._loaded:
            self.first_sync.settle()
            self.history.checkpoint(self.file.hash)

    def file_event(self, action: str, message: str) -> None:
        self.host.emit_room_event(
            {"action": action, "path": self.path, "room_id": self.room_id, "message": message}
        )

    def set_path(self, new_path: str) -> None:
        """The file was renamed (through Jupyter, or followed by its file id)."""
        self.file.set_path(new_path)

    # --- loading ---------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the file through the ContentsManager into the (empty) doc.

        With the update store on, a stored history whose file hash matches the file is the
        same Y lineage as the file plus what happened after its last save: the doc is restored
        from it (never rebuilt from the file and merged, which would duplicate every cell) and
        whatever the file misses is saved right away. When the file changed since (a
        ``git checkout`` while the server was down) and the text the room last saved is kept
        (``bases.py``), the history is restored and the file merged into it by cell id
        against that text, as for a live room. Otherwise the doc is built from the file and
        the stored history is replaced by it.
        """
        file = self.file
        async with file.lock:
            keep_text = self.history is not None and self.history.keeps_texts
            content = (await file.read(keep_text=keep_text))["content"]
            restored = self._restore_history(file.hash)
            first_cells = 0 if restored else self.host.progressive_sync_cells
            content, rest = progressive.split(
                content, self.file_type, first_cells, self.host.progressive_sync_output_bytes
            )
            with self.collect_updates() as built:
                if restored:
                    file.saved_content = await file.content_of(content)
                else:
                    with self.server_edit():
                        await file.set_document(content)
                del content  # the parsed file (several times its size): not needed any more
                self.set_state(
                    path=self.path, hash=file.hash, dirty=False, document_id=self.room_id
                )
                first_part = await progressive.build_rest(self, rest, built)
                del rest
            if self.history is not None:
                # What load wrote is in the store's squashed state: do not append it again.
                self.drop_pending_updates()
                if restored and self.history.lineage is not None:
                    self.lineage = self.history.lineage
                else:
                    self.history.lineage = self.lineage
            if not restored:
                # The store's new history is written after the first sync (first_sync.py),
                # and the saved content computed after it from the same bytes.
                # The build's updates joined and framed for the first sync, not a second
                # encoding of the whole document, in a worker thread (bytes.join gives the
                # GIL back for big pieces); the saved content is read from the same bytes.
                framed = await asyncio.to_thread(framed_join, built, self.ydoc.client_id)
                if first_part is not None:
                    first_part.keep(built, None if framed is None else framed[1])
                built.clear()  # from here on, the frame holds the only copy of the state
                if framed is None:  # not joinable: encoded as a whole
                    state = self.ydoc.get_update()
                    file.saved_content_from([state])
                    self.first_sync = FirstSync(self.ydoc, self.history, file.hash, state=state)
                    await self.first_sync.frame_off_loop()
                else:
                    message, parts = framed
                    file.saved_content_from(parts)
                    self.first_sync = FirstSync(
                        self.ydoc, self.history, file.hash, state=parts.state, message=message
                    )
                self._materialize = asyncio.get_running_loop().call_later(
                    MATERIALIZE_SECONDS, self._start_materialize
                )
                self.first_sync.part = first_part  # a big notebook's first cells (progressive.py)
            self._loaded = True
            base = self.history.restart_base if restored and self.history else None
            if base is not None and self.file_type == "notebook":
                await file.merge_restored(base)
            elif self.history is not None and self.file.offloaded:
                # the text loaded is the base of a merge until the first save (bases.py)
                self._keeping = self.history.keep_loaded_text(self.host.contents_manager, file)
            file.loaded_text = None
            if restored and self.document.get() != file.saved_content:
                self.log.warning(
                    "collab_kernels: %s: the update store holds edits the file does not have "
                    "(the server stopped before saving them); saving them now",
                    self.path,
                )
                self._version += 1
                self.request_save(delay=0)
        file.start_watch(self.host.file_check_interval)
        self.log.info("collab_kernels: opened document %s (room %s)", self.path, self.room_id)

    def _start_materialize(self) -> None:
        self._materializing = asyncio.ensure_future(self.file.materialize())

    def _restore_history(self, file_hash: str | None) -> bool:
        if self.history is None:
            return False
        with self.server_edit():
            self.restored_from_store = self.history.restore(file_hash, self.file_type)
        return self.restored_from_store

    @property
    def kept_cell_output(self) -> int:
        return self.intake.kept_cell_output

    def limit_cell_output(
        self,
        ycell: Map[Any],
        *,
        keep: int | None = None,
        dropped: int = 0,
        appended: int | None = None,
    ) -> bool:
        """The execution stage's per-cell output limit (``intake.py``)."""
        return self.intake.limit_cell_output(ycell, keep=keep, dropped=dropped, appended=appended)

    def text_sink(self) -> offload.TextSink | None:
        return self.history.text_sink() if self.history is not None else None

    def persist_updates(self, updates: list[bytes]) -> None:
        if self.history is not None and self._loaded:
            self.first_sync.settle()
            self.history.append(updates)

    def sync_answer(self, state_vector: bytes, client: RoomClient | None = None) -> bytes | Frame:
        answer = self.first_sync.answer(state_vector, client)
        return self.ydoc.get_update(state_vector) if answer is None else answer

    def sync_answered(self) -> None:
        self.first_sync.answered()

    # --- holds and freeing -----------------------------------------------------------------
    def hold(self, reason: str) -> RoomHold:
        """Keep the room alive (never freed) until the hold is released."""
        hold = RoomHold(self, reason)
        self._holds[id(hold)] = hold
        self._cancel_free()
        return hold

    @property
    def holds(self) -> list[RoomHold]:
        return list(self._holds.values())

    def release(self, hold: RoomHold) -> None:
        """Called by :meth:`RoomHold.release`."""
        self._holds.pop(id(hold), None)
        self.schedule_free()

    def add_client(self, client: RoomClient) -> None:
        self._cancel_free()
        super().add_client(client)
        if self.conflict:
            client.send(protocol.raw_message({"type": "conflict"}))

    def on_client_left(self) -> None:
        self.schedule_free()

    @property
    def idle(self) -> bool:
        return not self.clients and not self._holds and not self.unsaved and not self.conflict

    def _cancel_free(self) -> None:
        if self._free_handle is not None:
            self._free_handle.cancel()
            self._free_handle = None

    def schedule_free(self, delay: float | None = None) -> None:
        """Ask the host to free the room ``free_delay`` (or ``delay``) seconds after it
        became idle (saved first)."""
        if self._closed or not self._loaded:
            return
        if not self.clients and not self._holds and self.unsaved and not self.conflict:
            if not self.saving.retry_pending:
                self.request_save()  # freeing waits for the save
            return
        if self.idle and self._free_handle is None:
            delay = max(self.host.free_delay if delay is None else delay, 0)
            self._free_handle = asyncio.get_event_loop().call_later(delay, self._free_now)

    def _free_now(self) -> None:
        self._free_handle = None
        if self.idle and not self._closed:
            self.host.room_idle(self)

    # --- incoming updates --------------------------------------------------------------------
    def on_update(self, client: RoomClient, update: bytes) -> None:
        if self.intake.accept(client, update):  # raises over max_update_size / _depth
            apply_client_update(self, client, update)

    # --- saving ----------------------------------------------------------------------------
    def request_save(self, delay: float | None = None) -> None:
        """Save after ``save_delay`` without further edits (see ``saving.py``)."""
        self.saving.request(delay)

    @property
    def save_failing(self) -> bool:
        """The last save failed and a retry is scheduled."""
        return self.saving.failures > 0

    @property
    def active(self) -> bool:
        return self._loaded and not self._closed

    def failure(self) -> tuple[str | None, bool]:
        return self.file.failure, self.file.failure_retryable

    def saved_or_failed(self) -> None:
        self.schedule_free()

    async def save(self, *, force: bool = False) -> SaveStatus:
        """Write the document to its file (see :meth:`RoomFile.save`)."""
        return await self.file.save(force=force)

    async def check_disk(self) -> None:
        """Look for an out-of-band change of the file and handle it."""
        await self.file.check_disk()

    async def reload(self) -> None:
        """Apply the file's current content to the doc in place (discards unsaved edits)."""
        await self.file.reload()

    async def on_save_request(self, client: RoomClient, request_id: int | None) -> None:
        if not client.can_write:
            status = "failed"
        else:
            try:
                status = await self.save(force=True)
            except Exception as e:
                self.log.exception("collab_kernels: save of %s failed", self.path)
                status = self.file.failed_with(e)
            if status == "skipped":
                # The file already holds the document. The stock frontend reads "skipped" as
                # "a save is already in progress" and shows an error dialog on Ctrl+S.
                status = "success"
        answer: dict[str, Any] = {"type": "save", "responseTo": request_id, "status": status}
        if status == "failed":
            answer["reason"] = (
                self.file.failure if client.can_write else "this connection may not write"
            ) or "unknown error"
        client.send(protocol.raw_message(answer))
        if client.can_write:
            self.saving.ended(status)  # a failed write is retried like an autosave
        self.schedule_free()

    # --- lifecycle -------------------------------------------------------------------------
    def file_gone(self) -> None:
        self.file_deleted()

    def file_moved(self) -> None:
        if self.unsaved:  # a save that found no file at the old path: it goes to the new one
            self.request_save()

    def file_deleted(self) -> None:
        """The file is gone: close every client with 4404 and free the room unsaved."""
        if self._closed:
            return
        if self.unsaved:
            self.log.warning(
                "collab_kernels: %s was deleted while its document had unsaved edits; "
                "they are discarded with the file",
                self.path,
            )
        else:
            self.log.info("collab_kernels: %s was deleted; closing its document", self.path)
        self.file_event("deleted", "The file was deleted; the document was closed.")
        self.first_sync.cancel()
        self.stop_timers()
        self.close(protocol.CLOSE_NOT_FOUND, "file deleted")
        if self.history is not None:
            self.history.delete()
        self.host.room_gone(self)

    def stop_timers(self) -> None:
        """Cancel the pending save, the pending free and the disk watch."""
        if self._free_handle is not None:
            self._free_handle.cancel()
            self._free_handle = None
        self.saving.stop()
        self.file.stop_watch()
        if self._materialize is not None:
            self._materialize.cancel()
        if self._materializing is not None:
            self._materializing.cancel()
        self.first_sync.settle()
        if self.history is not None:
            self.history.stop()

    async def stop(
        self, code: int = protocol.CLOSE_GOING_AWAY, reason: str = "server stopping"
    ) -> None:
        """Save what is unsaved, close the clients and stop every timer."""
        self.stop_timers()
        if self._loaded and not self._closed and self.unsaved:
            try:
                status = await self.save()
                if status == "failed":
                    self.log.warning(
                        "collab_kernels: %s closed with unsaved edits (conflict with the file "
                        "on disk)",
                        self.path,
                    )
            except Exception:
                self.log.exception("collab_kernels: final save of %s failed", self.path)
        self.close(code, reason)
