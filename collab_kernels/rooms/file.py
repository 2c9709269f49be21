"""Where a room meets the disk: load, save, out-of-band changes, conflicts, renames, deletes.

Everything goes through jupyter_server's ContentsManager (``get``, ``save``, ``file_exists``);
:class:`RoomFile` keeps what the room knows about its file (path, hash, last modification,
the content it last saved or loaded) and talks to its document through the narrow
:class:`FileSide` protocol, so it is tested with a fake contents manager and no server.

Out-of-band changes (git checkout, another editor) are found by a periodic check and before
each save: without unsaved edits the file's content is applied to the document in place (only
what differs is edited, cells keep their identity); with unsaved edits a notebook is merged by
cell id (``merge.py``; cells changed on both sides keep the room's version, the file's is kept
as a checkpoint) and the result saved, a text file keeps the room's content and reports a
conflict (the file is not overwritten until an explicit save).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from jupyter_core.utils import ensure_async
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Doc
from tornado.web import HTTPError

from . import merging, offload, offload_read, repair
from .content import (
    apply_in_place,
    build_document,
    document_content,
    is_refused_hidden,
    same_content,
)
from .saved_content import SavedContent
from .saving import SaveStatus

#: document type -> (contents manager type, contents manager format); the room id format of
#: each type is the contract's ``FILE_TYPES``
CONTENTS_TYPES: dict[str, tuple[str, str | None]] = {
    "notebook": ("notebook", None),
    "file": ("file", "text"),
}


class FileSide(Protocol):
    """What the file stage needs from its document room."""

    @property
    def document(self) -> YNotebook | YUnicode: ...
    @property
    def ydoc(self) -> Doc[Any]: ...
    @property
    def version(self) -> int: ...
    @property
    def unsaved(self) -> bool: ...
    @property
    def loaded(self) -> bool: ...
    @property
    def closed(self) -> bool: ...

    def server_edit(self) -> AbstractContextManager[None]:
        """Edits made inside are the server's own (not edits to save)."""

    def set_state(self, **values: Any) -> None:
        """Write the document's ``state`` map as the server."""

    def file_written(self, version: int) -> None:
        """The file now holds ``version`` of the document (saved, or reloaded from it)."""

    def broadcast_raw(self, payload: dict[str, Any]) -> None: ...

    def file_event(self, action: str, message: str) -> None:
        """Tell users (event bus) what happened to the file."""

    def file_moved(self) -> None:
        """The file has a new path (renamed in Jupyter or moved outside it)."""

    def file_gone(self) -> None:
        """The file was deleted (not moved): close the room."""

    def text_sink(self) -> offload.TextSink | None:
        """Where an offloaded save hands the file's text (kept for a restart merge)."""


class RoomFile:
    """The file behind a document room."""

    def __init__(
        self,
        side: FileSide,
        *,
        path: str,
        file_type: str,
        file_id: str,
        contents_manager: Any,
        log: logging.Logger,
        path_for_file_id: Any,
        max_cell_output: Callable[[], int] = lambda: 0,
    ):
        if file_type not in CONTENTS_TYPES:
            raise ValueError(f"unsupported document type {file_type!r}")
        self.side = side
        self.path = path
        self.file_type = file_type
        self.file_id = file_id
        self.contents_manager = contents_manager
        self.log = log
        self.path_for_file_id = path_for_file_id
        #: bytes of stream text a cell keeps (read live; 0: all)
        self.max_cell_output = max_cell_output
        self.cm_type, self.cm_format = CONTENTS_TYPES[file_type]
        self.hash: str | None = None
        self.last_modified: Any = None
        self._saved = SavedContent(file_type)
        #: the text of the file as last read with ``keep_text`` (taken by the room's history)
        self.loaded_text: offload_read.LoadedText | None = None
        #: the file changed on disk while the room had unsaved edits
        self.conflict = False
        #: why the last save failed, and whether retrying it may help (a write error)
        self.failure: str | None = None
        self.failure_retryable = False
        self.lock = asyncio.Lock()
        self._missing_checks = 0
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def document(self) -> YNotebook | YUnicode:
        return self.side.document

    @property
    def offloaded(self) -> bool:
        """Whether notebook saves and hashes run off the event loop (``offload.py``: only
        with jupyter_server's stock file contents managers)."""
        return self.file_type == "notebook" and offload.is_stock(self.contents_manager)

    @property
    def saved_content(self) -> Any:
        """``document.get()`` of the content the file had at the last save or load."""
        return self._saved.get()

    @saved_content.setter
    def saved_content(self, content: Any) -> None:
        self._saved.set(content)

    def saved_content_from(self, updates: Sequence[bytes]) -> None:
        """The saved content is the document of these Y updates (``saved_content.py``)."""
        self._saved.set_updates(updates)

    async def materialize(self) -> None:
        """Compute a pending saved content now, the loop given back after each step."""
        await self._saved.materialize()

    # --- reading -----------------------------------------------------------------------------
    async def get_model(self, *, content: bool, require_hash: bool = False) -> dict[str, Any]:
        if require_hash and self.offloaded:  # stock managers: read and hash off the loop
            if not content:
                return await offload.file_model(self.contents_manager, self.path)
            if offload_read.is_offloaded(self.contents_manager):
                return await offload_read.notebook_model(self.contents_manager, self.path)
        kwargs: dict[str, Any] = {"content": content, "type": self.cm_type}
        if self.cm_format and content:
            kwargs["format"] = self.cm_format
        if require_hash:
            kwargs["require_hash"] = True
        model: dict[str, Any] = await ensure_async(self.contents_manager.get(self.path, **kwargs))
        return model

    async def set_document(self, content: Any) -> None:
        """Replace the document's content by a file's (call inside ``server_edit``;
        ``content.build_document``)."""
        await build_document(self.document, content)

    async def get_content(self) -> Any:
        """The document as the contents manager saves it."""
        document = self.document
        if isinstance(document, YNotebook):
            return await document.aget()
        return document.get()

    async def content_of(self, content: Any) -> Any:
        """What ``document.get()`` returns for a file's content (for unsaved-edit checks)."""
        return await document_content(self.file_type, content)

    async def read(self, *, keep_text: bool = False) -> dict[str, Any]:
        """Read the file (with its content) and remember its hash and modification time;
        ``keep_text``: and its text, compressed, as ``loaded_text`` (offloaded reads)."""
        if keep_text and self.offloaded and offload_read.is_offloaded(self.contents_manager):
            model, self.loaded_text = await offload_read.notebook_read(
                self.contents_manager, self.path, keep_text=True
            )
        else:
            model = await self.get_model(content=True, require_hash=True)
        self.hash = model.get("hash")
        self.last_modified = model.get("last_modified")
        return model

    # --- saving ------------------------------------------------------------------------------
    async def save(self, *, force: bool = False) -> SaveStatus:
        """Write the document through the ContentsManager.

        Returns ``"success"``, ``"skipped"`` (nothing to write) or ``"failed"`` (the file
        changed on disk while the room had unsaved edits, or the write failed; ``failure``
        says why). ``force`` is an explicit user save: it writes even when the file changed
        on disk (the user saw the conflict) and when the room has no new edits but the file
        differs.
        """
        status = await self._save(force=force)
        if status != "failed":
            self.failure = None
            self.failure_retryable = False
        return status

    def failed_with(self, error: Exception) -> SaveStatus:
        """Record an unexpected error of a save (reading the file's model failed)."""
        reason = getattr(error, "log_message", None) or str(error) or type(error).__name__
        return self._failed(reason, retryable=True)

    def _failed(self, reason: str, *, retryable: bool) -> SaveStatus:
        self.failure = reason
        self.failure_retryable = retryable
        return "failed"

    async def _save(self, *, force: bool) -> SaveStatus:
        side = self.side
        async with self.lock:
            if side.closed or not side.loaded:
                return "skipped"
            if self.conflict and not force:
                return self._failed("the file changed on disk (conflict)", retryable=False)
            if not force and not side.unsaved:
                return "skipped"
            version = side.version
            try:
                if self.file_type == "notebook":
                    trimmed = await repair.trim_in_steps(side.ydoc, self.max_cell_output())
                    if trimmed:
                        self.log.info(
                            "collab_kernels: %s: dropped the oldest stream output of %d cell(s) "
                            "over max_cell_output",
                            self.path,
                            len(trimmed),
                        )
                    problems = await repair.repair_notebook_in_steps(side.ydoc)
                    if problems:
                        self.log.warning(
                            "collab_kernels: repaired %s before saving it: %s",
                            self.path,
                            "; ".join(problems),
                        )
                    version = side.version
                content = await self.get_content()
            except Exception as e:  # RecursionError and what else a document may raise
                self.log.error(
                    "collab_kernels: cannot save %s: the document cannot be turned into file "
                    "content (%s: %s)",
                    self.path,
                    type(e).__name__,
                    e,
                )
                reason = f"{type(e).__name__}: {e}"
                side.file_event("save_failed", f"Saving failed: {reason}")
                return self._failed(reason, retryable=True)
            try:
                disk: dict[str, Any] | None = await self.get_model(content=False, require_hash=True)
            except HTTPError as e:
                if e.status_code != 404:
                    raise
                disk = None
                if await self.follow_move():  # moved: save to where it is now
                    disk = await self.get_model(content=False, require_hash=True)
                elif not force:
                    self.log.warning(
                        "collab_kernels: not saving %s: the file no longer exists", self.path
                    )
                    return self._failed("the file no longer exists", retryable=False)
            disk_changed = disk is not None and disk.get("hash") != self.hash
            unchanged = await same_content(content, self.saved_content)
            if disk_changed and not force:
                if unchanged:
                    # Only state changed in the room: take the file's new content instead.
                    await self._reload_locked()
                    return "skipped"
                if self.file_type == "notebook":
                    return await self._merge_locked()
                self._enter_conflict(disk)
                return self._failed("the file changed on disk (conflict)", retryable=False)
            if not disk_changed and disk is not None and unchanged:
                self._mark_saved(version, self.hash, disk.get("last_modified"))
                return "skipped"
            if disk_changed:
                self.log.warning(
                    "collab_kernels: %s changed on disk; overwriting it with the room's content "
                    "on an explicit save",
                    self.path,
                )
                side.file_event("overwritten", "An explicit save overwrote a file changed on disk.")
            return await self._write_locked(content, version)

    async def _write_locked(self, content: Any, version: int) -> SaveStatus:
        """Write ``content`` (``version`` of the document) to the file."""
        model: dict[str, Any] = {"type": self.cm_type, "content": content}
        model["format"] = "json" if self.file_type == "notebook" else "text"
        try:
            if self.offloaded:
                sink = self.side.text_sink()
                after = await offload.save_notebook(self.contents_manager, model, self.path, sink)
            else:
                await ensure_async(self.contents_manager.save(model, self.path))
                after = await self.get_model(content=False, require_hash=True)
        except Exception as e:
            reason = getattr(e, "log_message", None) or str(e) or type(e).__name__
            self.log.error("collab_kernels: saving %s failed: %s", self.path, reason)
            self.side.file_event("save_failed", f"Saving failed: {reason}")
            return self._failed(reason, retryable=True)
        self.saved_content = content
        self.conflict = False
        self._mark_saved(version, after.get("hash"), after.get("last_modified"))
        self.log.debug("collab_kernels: saved %s", self.path)
        return "success"

    async def _merge_locked(self) -> SaveStatus:
        """The file changed on disk while the room has unsaved edits: merge both by cell id
        against the last content the room saved or loaded, apply the result in place and
        save it. Cells changed on both sides keep the room's version; the file's version is
        kept first as the contents manager's checkpoint, and the merge is announced."""
        model = await self.get_model(content=True, require_hash=True)
        disk = await self.content_of(model["content"])
        await merging.merge_into(
            self,
            self.saved_content,
            disk,
            "The file changed on disk while the document had unsaved edits",
            model.get("hash"),
            model.get("last_modified"),
        )
        return await self._write_locked(await self.get_content(), self.side.version)

    async def merge_restored(self, base_text: str) -> None:
        """On load (the lock held, the file read): see :func:`.merging.merge_restored`."""
        await merging.merge_restored(self, base_text)

    def notebook_now(self) -> dict[str, Any]:
        content = self.document.get()
        assert isinstance(content, dict)
        return content

    def _mark_saved(self, version: int, file_hash: str | None, last_modified: Any) -> None:
        self.hash = file_hash
        self.last_modified = last_modified
        self.side.file_written(version)

    # --- out-of-band changes -----------------------------------------------------------------
    def start_watch(self, interval: float) -> None:
        if interval and interval > 0 and self._watch_task is None:
            self._watch_task = asyncio.ensure_future(self._watch(interval))

    def stop_watch(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None

    async def _watch(self, interval: float) -> None:
        while not self.side.closed:
            await asyncio.sleep(interval)
            try:
                await self.check_disk()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("collab_kernels: checking %s on disk failed", self.path)

    async def check_disk(self) -> None:
        """Look for an out-of-band change of the file and handle it."""
        if self.side.closed or not self.side.loaded:
            return
        async with self.lock:
            try:
                model = await self.get_model(content=False)
            except HTTPError as e:
                if e.status_code != 404:
                    raise
                await self._on_missing()
                return
            self._missing_checks = 0
            if model.get("last_modified") == self.last_modified:
                return
            model = await self.get_model(content=False, require_hash=True)
            if model.get("hash") == self.hash:
                self.last_modified = model.get("last_modified")
                return
            if not self.side.unsaved:
                await self._reload_locked()
            elif self.file_type == "notebook":
                await self._merge_locked()
            else:
                self._enter_conflict(model)

    async def reload(self) -> None:
        """Apply the file's current content to the doc in place (discards unsaved edits)."""
        async with self.lock:
            await self._reload_locked()

    async def _reload_locked(self) -> None:
        side = self.side
        model = await self.get_model(content=True, require_hash=True)
        if side.unsaved and self.document.get() != self.saved_content:
            # Edits arrived while we read the file: keep them.
            if self.file_type == "notebook":
                await self._merge_locked()
            else:
                self._enter_conflict(model)
            return
        content = model["content"]
        with side.server_edit():
            with side.ydoc.transaction():
                apply_in_place(self.document, content)
                self.document.ystate["hash"] = model.get("hash")
                self.document.ystate["dirty"] = False
                self.document.ystate["path"] = self.path
        self.saved_content = self.document.get()
        self.hash = model.get("hash")
        self.last_modified = model.get("last_modified")
        self.conflict = False
        side.file_written(side.version)
        self.log.info("collab_kernels: reloaded %s after it changed on disk", self.path)
        side.file_event("reloaded", "The file changed on disk; the document took its new content.")

    def _enter_conflict(self, disk: dict[str, Any] | None) -> None:
        first = not self.conflict
        self.conflict = True
        if disk is not None:
            # Do not report the same change of the file twice.
            self.last_modified = disk.get("last_modified")
        if not first:
            return
        self.log.warning(
            "collab_kernels: %s changed on disk while the document had unsaved edits; keeping "
            "the document's content and not overwriting the file (an explicit save will)",
            self.path,
        )
        self.side.broadcast_raw({"type": "conflict"})
        self.side.file_event(
            "conflict",
            "The file changed on disk while the document had unsaved edits; the file was "
            "not overwritten.",
        )

    async def follow_move(self) -> bool:
        """The file is not at its path: if its file id says where it went (jupyter_server_fileid
        follows moves made outside Jupyter, e.g. ``mv`` or ``git mv``), follow it."""
        try:
            new_path = self.path_for_file_id(self.file_id)
        except Exception:
            new_path = None
        if not new_path or new_path == self.path:
            return False
        cm = self.contents_manager
        if not await ensure_async(cm.file_exists(new_path)) or await is_refused_hidden(
            cm, new_path
        ):
            return False
        self.set_path(new_path)
        return True

    async def _on_missing(self) -> None:
        if await self.follow_move():
            return
        self._missing_checks += 1
        if self._missing_checks >= 2:
            self.side.file_gone()

    # --- renames -----------------------------------------------------------------------------
    def set_path(self, new_path: str) -> None:
        if new_path == self.path:
            return
        old, self.path = self.path, new_path
        self.side.set_state(path=new_path)
        self.log.info("collab_kernels: document %s is now %s", old, new_path)
        self.side.file_event("renamed", f"Renamed from {old}.")
        self.side.file_moved()
