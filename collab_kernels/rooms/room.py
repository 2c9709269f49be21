"""Rooms: one server-owned Y document, its collaborators' websockets, and its file.

Why not ``pycrdt.websocket.YRoom``: it schedules one task per client for every update (80-100 us
of CPU per update per client, see performance-facts), has no bound on what a stalled client
buffers, no per-connection write permission and no raw messages (save, conflict). The fan-out
here is a small replacement built on pycrdt primitives (``Doc``, ``Awareness``, the sync
message helpers, ``merge_updates``):

- an update committed after a quiet ``coalesce_window`` is sent at once; updates committed
  during a burst are merged into one Y update per window; either way it is encoded once and
  put on every client's bounded queue;
- each client has exactly one writer task draining its queue; a client whose queue overflows
  is closed (it reconnects and resyncs), so a stalled viewer never slows the others down nor
  grows server memory;
- awareness changes are batched per ``awareness_window`` and relayed to every client, the
  sender included, as one message carrying the latest state of each changed client;
- awareness *renewals* (a browser re-sends its unchanged state every 15 s) are not relayed one
  by one, which costs N^2/15 frames per second: they are gathered for
  ``awareness_renewal_window`` seconds and relayed as one combined message. Browsers drop a
  remote state they have not heard of for 30 s, so the window stays well under 15 s.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_ydoc import YNotebook, YUnicode
from jupyter_ydoc.yunicode import _set_text
from pycrdt import (
    Array,
    Awareness,
    Doc,
    Map,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
)
from tornado.web import HTTPError

from . import protocol
from .protocol import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from .manager import RoomManager

#: The event schema of room events on jupyter_server's event bus.
ROOM_EVENT_SCHEMA_ID = "https://collab-kernels.jupyter.org/rooms/v1"
ROOM_EVENT_SCHEMA = {
    "$id": ROOM_EVENT_SCHEMA_ID,
    "version": "1",
    "title": "collab_kernels document rooms",
    "personal-data": True,
    "description": (
        "What happened to a collaborative document that a user should know about: the file "
        "changed on disk while the room had unsaved edits (conflict), the room reloaded the "
        "file's new content, a user's explicit save overwrote a changed file, the file was "
        "renamed or deleted, or a save failed."
    ),
    "type": "object",
    "required": ["action", "path", "room_id"],
    "properties": {
        "action": {
            "enum": ["conflict", "reloaded", "overwritten", "renamed", "deleted", "save_failed"],
            "description": "What happened.",
        },
        "path": {"type": "string", "description": "The document's path (after a rename)."},
        "room_id": {"type": "string", "description": "The room id, {format}:{type}:{fileId}."},
        "message": {"type": "string", "description": "A human readable explanation."},
    },
}


class RoomClosed(Exception):
    """The room was closed (file deleted, server stopping) while something waited on it."""


class RoomClient:
    """One websocket connected to a room.

    ``write(frame)`` sends one binary frame and returns an awaitable that resolves once the
    transport accepted it; ``close(code, reason)`` closes the websocket. The client owns a
    bounded queue drained by a single writer task.
    """

    def __init__(
        self,
        *,
        write: Callable[[bytes], Awaitable[Any] | None],
        close: Callable[[int, str], None],
        can_write: bool,
        name: str,
        max_queue: int,
        log: logging.Logger,
    ):
        self._write = write
        self._close = close
        self.can_write = can_write
        self.name = name
        self.max_queue = max_queue
        self.log = log
        self.room: BaseRoom | None = None
        self.closed = False
        #: jupyter_server's User of the connection, and what it may do (for presence)
        self.user: Any = None
        self.can_execute = False
        self.awareness_ids: set[int] = set()
        self.dropped_updates = 0
        self._queue: collections.deque[bytes] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_write: asyncio.Future | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())

    def send(self, frame: bytes) -> None:
        """Queue a frame; close the client if its queue is full."""
        if self.closed:
            return
        if len(self._queue) >= self.max_queue:
            path = self.room.describe() if self.room else "?"
            self.log.warning(
                "collab_kernels: closing %s on %s: its send queue overflowed (%d frames); "
                "it will reconnect and resync",
                self.name,
                path,
                len(self._queue),
            )
            self.close(protocol.CLOSE_TRY_AGAIN_LATER, "send queue overflow")
            return
        if not self._queue and (self._last_write is None or self._last_write.done()):
            # Nothing queued or in flight: write now rather than one loop iteration later
            # in the writer task (the end of a cell is on every collaborator's critical path).
            try:
                self._track(self._write(frame))
            except Exception as e:  # the socket went away under us
                self.log.debug("collab_kernels: writing to %s failed: %s", self.name, e)
                self.close(protocol.CLOSE_GOING_AWAY, "")
            return
        self._queue.append(frame)
        self._wakeup.set()

    def _track(self, result: Awaitable[Any] | None) -> None:
        """Remember the last write's future, so the writer task waits for it (back-pressure)."""
        if result is None:
            self._last_write = None
            return
        future = asyncio.ensure_future(result)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._last_write = future

    async def _drain(self) -> None:
        try:
            while not self.closed:
                if self._last_write is not None and not self._last_write.done():
                    await self._last_write
                    continue
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                last = None
                while self._queue:
                    last = self._write(self._queue.popleft())
                self._track(last)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the socket went away under us
            self.log.debug("collab_kernels: writer of %s stopped: %s", self.name, e)
            self.close(protocol.CLOSE_GOING_AWAY, "")

    def close(self, code: int = protocol.CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close the websocket and leave the room (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._wakeup.set()
        try:
            self._close(code, reason)
        except Exception:  # already closed
            pass
        if self.room is not None:
            self.room.remove_client(self)

    def stopped(self) -> None:
        """Called when the transport closed on its own."""
        self.close()


#: A Y update that changes nothing (no structs, empty delete set).
EMPTY_UPDATE = b"\x00\x00"


class BaseRoom:
    """Fan-out of y-sync and awareness to a set of clients (see the module docstring)."""

    def __init__(
        self,
        room_id: str,
        *,
        log: logging.Logger,
        coalesce_window: float = 0.005,
        awareness_window: float = 0.05,
        awareness_renewal_window: float = 5.0,
    ):
        self.room_id = room_id
        self.awareness_renewal_window = awareness_renewal_window
        self._pending_renewals: set[int] = set()
        self._renewal_handle: asyncio.Handle | None = None
        self.log = log
        self.coalesce_window = coalesce_window
        self.awareness_window = awareness_window
        self.ydoc = Doc()
        self.awareness = Awareness(self.ydoc)
        self.clients: set[RoomClient] = set()
        self._pending_updates: list[bytes] = []
        self._last_flush = float("-inf")
        self._update_handle: asyncio.Handle | None = None
        self._pending_awareness: set[int] = set()
        self._awareness_handle: asyncio.Handle | None = None
        self._closed = False
        #: set by rooms with an update store: pending updates are stored before a sync answer
        self._persist_before_sync = False
        self.awareness.observe(self._on_awareness)
        self._doc_subscription = self.ydoc.observe(self._on_doc_event)

    # --- descriptions for logs -------------------------------------------------------------
    def describe(self) -> str:
        return self.room_id

    # --- clients ---------------------------------------------------------------------------
    def add_client(self, client: RoomClient) -> None:
        if self._closed:
            client.close(protocol.CLOSE_GOING_AWAY, "room closed")
            return
        client.room = self
        self.clients.add(client)
        client.start()
        self._flush_before_sync()
        client.send(create_sync_message(self.ydoc))
        ids = [cid for cid in self.awareness.states if cid != self.awareness.client_id]
        if ids:
            client.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))

    def remove_client(self, client: RoomClient) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        gone = [cid for cid in client.awareness_ids if cid in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, client)
        self._client_left()

    def _client_left(self) -> None:
        pass

    # --- outgoing --------------------------------------------------------------------------
    def broadcast(self, frame: bytes) -> None:
        for client in list(self.clients):
            client.send(frame)

    def broadcast_raw(self, payload: dict[str, Any]) -> None:
        """Send a raw ``[2][JSON]`` message to every client."""
        self.broadcast(protocol.raw_message(payload))

    def _on_doc_event(self, event: Any) -> None:
        self._queue_update(event.update)

    def _queue_update(self, update: bytes) -> None:
        self._pending_updates.append(update)
        self._doc_changed()
        if self._update_handle is None and not self._closed:
            # Leading edge: an update after a quiet window goes out at once (with whatever
            # else this loop iteration commits); during a burst, one merged update per window.
            loop = asyncio.get_event_loop()
            wait = self.coalesce_window - (loop.time() - self._last_flush)
            if wait > 0:
                self._update_handle = loop.call_later(wait, self._flush_updates)
            else:
                self._update_handle = loop.call_soon(self._flush_updates)

    def _doc_changed(self) -> None:
        pass

    def _flush_updates(self) -> None:
        self._update_handle = None
        self._last_flush = asyncio.get_event_loop().time()
        updates, self._pending_updates = self._pending_updates, []
        if not updates:
            return
        if not self.clients:
            self._persist_updates(updates)
            return
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        self._persist_updates([update])  # stored before anyone can receive it
        self.broadcast(create_update_message(update))

    def flush_updates(self) -> None:
        """Send the pending document updates now, without waiting for the coalescing window
        (a writer that just committed a final state, e.g. the end of a cell)."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        if self._pending_updates and not self._closed:
            self._flush_updates()

    def _persist_updates(self, updates: list[bytes]) -> None:
        """Hook: keep updates before they are broadcast (the update store)."""

    def _flush_before_sync(self) -> None:
        """Store (and broadcast) pending updates before the full state goes to a client."""
        if self._persist_before_sync and self._pending_updates:
            if self._update_handle is not None:
                self._update_handle.cancel()
            self._flush_updates()

    def flush(self) -> None:
        """Send pending updates and awareness now (used before closing)."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._flush_updates()
        if self._awareness_handle is not None:
            self._awareness_handle.cancel()
            self._flush_awareness()
        if self._renewal_handle is not None:
            self._renewal_handle.cancel()
            self._flush_renewals()

    def _on_awareness(self, topic: str, args: tuple[dict[str, Any], Any]) -> None:
        # pycrdt emits "change" (a state was added, removed or differs) then "update" (any
        # state received, renewals included) for the same awareness message.
        changes, _origin = args
        ids = changes["added"] + changes["updated"] + changes["removed"]
        ids = [cid for cid in ids if cid != self.awareness.client_id]
        if not ids or self._closed:
            return
        loop = asyncio.get_event_loop()
        if topic == "change":
            self._pending_awareness.update(ids)
            self._pending_renewals.difference_update(ids)
            if self._awareness_handle is None:
                if self.awareness_window > 0:
                    self._awareness_handle = loop.call_later(
                        self.awareness_window, self._flush_awareness
                    )
                else:
                    self._awareness_handle = loop.call_soon(self._flush_awareness)
        elif topic == "update":
            renewed = [cid for cid in ids if cid not in self._pending_awareness]
            if not renewed:
                return
            self._pending_renewals.update(renewed)
            if self._renewal_handle is None:
                self._renewal_handle = loop.call_later(
                    max(self.awareness_renewal_window, self.awareness_window),
                    self._flush_renewals,
                )

    def _flush_renewals(self) -> None:
        self._renewal_handle = None
        ids = [cid for cid in self._pending_renewals if cid in self.awareness.states]
        self._pending_renewals = set()
        if ids and self.clients and not self._closed:
            update = self.awareness.encode_awareness_update(ids)
            self.broadcast(create_awareness_message(update))

    def _flush_awareness(self) -> None:
        self._awareness_handle = None
        ids, self._pending_awareness = list(self._pending_awareness), set()
        if ids and self.clients:
            update = self.awareness.encode_awareness_update(ids)
            self.broadcast(create_awareness_message(update))

    # --- incoming --------------------------------------------------------------------------
    def handle_message(self, client: RoomClient, data: bytes) -> Awaitable[None] | None:
        """Apply one incoming frame; raises ProtocolError on a malformed one.

        Returns an awaitable for messages that need I/O (save), else None.
        """
        message = protocol.parse_message(data)
        if message.kind == "step1":
            self._flush_before_sync()
            try:
                update = self.ydoc.get_update(message.payload)
            except Exception as e:
                raise ProtocolError(f"invalid state vector: {e}") from e
            client.send(protocol.sync_step2_message(update))
        elif message.kind in ("step2", "update"):
            self._handle_update(client, message.payload)
        elif message.kind == "awareness":
            client.awareness_ids.update(protocol.awareness_client_ids(message.payload))
            self.awareness.apply_awareness_update(message.payload, client)
        elif message.kind == "save":
            return self._handle_save(client, message.request_id)
        return None

    def _handle_update(self, client: RoomClient, update: bytes) -> None:
        # The global awareness room has no document to edit.
        return None

    async def _handle_save(self, client: RoomClient, request_id: int | None) -> None:
        client.send(
            protocol.raw_message({"type": "save", "responseTo": request_id, "status": "skipped"})
        )

    # --- lifecycle -------------------------------------------------------------------------
    def close_clients(self, code: int, reason: str) -> None:
        self.flush()
        for client in list(self.clients):
            client.close(code, reason)

    def close(self, code: int = protocol.CLOSE_GOING_AWAY, reason: str = "") -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True  # first: leaving clients must not schedule saves or frees
        for client in list(self.clients):
            client.close(code, reason)
        try:
            self.ydoc.unobserve(self._doc_subscription)
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closed


class RoomHold:
    """Keeps a room alive until released (also a context manager)."""

    def __init__(self, room: DocumentRoom, reason: str):
        self.room = room
        self.reason = reason
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.room._release(self)

    def __enter__(self) -> RoomHold:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<RoomHold {self.reason!r} on {self.room.path}>"


FILE_TYPES = {
    # type -> (format, document class, contents manager type, contents format)
    "notebook": ("json", YNotebook, "notebook", None),
    "file": ("text", YUnicode, "file", "text"),
}


class DocumentRoom(BaseRoom):
    """A notebook or text file as a server-owned Y document.

    Loaded from and saved to the ContentsManager; saves are debounced after changes whether
    or not a client is connected; out-of-band changes of the file are detected (periodic check
    and before each save) and either applied in place (no unsaved edits) or reported as a
    conflict (the room's content is kept, the file is not overwritten).
    """

    def __init__(
        self,
        room_id: str,
        *,
        file_id: str,
        path: str,
        file_type: str,
        manager: RoomManager,
    ):
        super().__init__(
            room_id,
            log=manager.log,
            coalesce_window=manager.coalesce_window,
            awareness_window=manager.awareness_window,
            awareness_renewal_window=manager.awareness_renewal_window,
        )
        if file_type not in FILE_TYPES:
            raise ValueError(f"unsupported document type {file_type!r}")
        self.manager = manager
        self.file_id = file_id
        self.path = path
        self.file_type = file_type
        self.format, doc_class, self._cm_type, self._cm_format = FILE_TYPES[file_type]
        self.document: YNotebook | YUnicode = doc_class(self.ydoc, self.awareness)
        #: A fresh id per room object: a browser whose history came from another instance of
        #: this room (freed and rebuilt, or another server process) must not merge it.
        self.instance_id = uuid.uuid4().hex
        self._holds: dict[int, RoomHold] = {}
        self._version = 0  # bumped by every edit that should reach the file
        self._saved_version = 0
        self._server_edit = 0  # >0 while the room edits state itself (not an edit to save)
        self._hash: str | None = None
        self._last_modified: Any = None
        self._saved_content: Any = None
        self._io_lock = asyncio.Lock()
        self._save_handle: asyncio.TimerHandle | None = None
        self._save_first_request: float | None = None
        self._save_task: asyncio.Task | None = None
        self._free_handle: asyncio.TimerHandle | None = None
        self._watch_task: asyncio.Task | None = None
        self._missing_checks = 0
        self.conflict = False
        self.loaded = False
        #: the update store (None when off), the file hash its history belongs to, and
        #: whether this room's Y state was restored from it on load
        self.store = manager.store
        self._persist_before_sync = self.store is not None
        self._store_hash: str | None = None
        self._store_failed = False
        self.restored_from_store = False

    def describe(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"<DocumentRoom {self.room_id} {self.path!r}>"

    # --- state -----------------------------------------------------------------------------
    @property
    def unsaved(self) -> bool:
        """Whether the room has edits the file does not have yet."""
        return self._version != self._saved_version

    def _doc_changed(self) -> None:
        if self._server_edit or not self.loaded:
            return
        self._version += 1
        self.request_save()

    def _set_state(self, **values: Any) -> None:
        """Write the state map as the server (not an edit to save)."""
        self._server_edit += 1
        try:
            with self.ydoc.transaction():
                for key, value in values.items():
                    if self.document.ystate.get(key) != value:
                        self.document.ystate[key] = value
        finally:
            self._server_edit -= 1

    # --- loading ---------------------------------------------------------------------------
    async def _get_model(self, *, content: bool, require_hash: bool = False) -> dict[str, Any]:
        cm = self.manager.contents_manager
        kwargs: dict[str, Any] = {"content": content, "type": self._cm_type}
        if self._cm_format and content:
            kwargs["format"] = self._cm_format
        if require_hash:
            kwargs["require_hash"] = True
        return await ensure_async(cm.get(self.path, **kwargs))

    async def load(self) -> None:
        """Read the file through the ContentsManager into the (empty) doc.

        With the update store on, a stored history whose file hash matches the file is the
        same Y lineage as the file plus what happened after its last save: the doc is restored
        from it (never rebuilt from the file and merged, which would duplicate every cell) and
        whatever the file misses is saved right away. Otherwise the doc is built from the file
        and the stored history is replaced by it.
        """
        async with self._io_lock:
            model = await self._get_model(content=True, require_hash=True)
            content = model["content"]
            self._hash = model.get("hash")
            self._last_modified = model.get("last_modified")
            restored = self._restore_from_store(model) if self.store is not None else False
            if restored:
                self._saved_content = await self._content_of(content)
            else:
                self._server_edit += 1
                try:
                    if self.file_type == "notebook":
                        await self.document.aset(content)
                    else:
                        self.document.set(content)
                finally:
                    self._server_edit -= 1
                self._saved_content = self.document.get()
            self._set_state(path=self.path, hash=self._hash, dirty=False, document_id=self.room_id)
            if self.store is not None:
                # What load wrote is in the store's squashed state: do not append it again.
                self._drop_pending()
                if not restored:
                    self._store_reset()
            self.loaded = True
            if restored and self.document.get() != self._saved_content:
                self.log.warning(
                    "collab_kernels: %s: the update store holds edits the file does not have "
                    "(the server stopped before saving them); saving them now",
                    self.path,
                )
                self._version += 1
                self.request_save(delay=0)
        interval = self.manager.file_check_interval
        if interval and interval > 0:
            self._watch_task = asyncio.ensure_future(self._watch(interval))
        self.log.info("collab_kernels: opened document %s (room %s)", self.path, self.room_id)

    async def _content_of(self, content: Any) -> Any:
        """What ``document.get()`` returns for a file's content (for unsaved-edit checks)."""
        scratch = FILE_TYPES[self.file_type][1]()
        if self.file_type == "notebook":
            await scratch.aset(content)
        else:
            scratch.set(content)
        return scratch.get()

    # --- update store ------------------------------------------------------------------------
    def _restore_from_store(self, model: dict[str, Any]) -> bool:
        try:
            stored = self.store.load(self.room_id)
        except Exception:
            self.log.exception("collab_kernels: reading the update store for %s failed", self.path)
            return False
        if stored is None:
            return False
        file_hash, updates = stored
        if file_hash is None or file_hash != model.get("hash"):
            self.log.info(
                "collab_kernels: %s changed since its stored history was saved; rebuilding the "
                "document from the file",
                self.path,
            )
            return False
        scratch = Doc()
        try:
            for update in updates:
                scratch.apply_update(update)
            state = scratch.get_update()
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException as e:  # a corrupt row: fall back to the file
            self.log.error(
                "collab_kernels: the stored history of %s is unreadable (%s); rebuilding the "
                "document from the file",
                self.path,
                e,
            )
            return False
        self._server_edit += 1
        try:
            self.ydoc.apply_update(state)
            self._reset_execution_state()
        finally:
            self._server_edit -= 1
        self._store_hash = file_hash
        self.restored_from_store = True
        self.log.info(
            "collab_kernels: restored %s from the update store (%d updates)",
            self.path,
            len(updates),
        )
        return True

    def _reset_execution_state(self) -> None:
        """Nothing runs after a restart: clear running marks kept in the stored history."""
        if self.file_type != "notebook":
            return
        with self.ydoc.transaction():
            for ycell in self.document.ycells:
                if ycell.get("execution_state") not in (None, "idle"):
                    ycell["execution_state"] = "idle"
            if "execution" in self.ydoc.keys():
                emap = self.ydoc.get("execution", type=Map)
                for key in list(emap.keys()):
                    del emap[key]

    def _drop_pending(self) -> None:
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        self._pending_updates = []

    def _persist_updates(self, updates: list[bytes]) -> None:
        if self.store is None or self.store.closed or not self.loaded:
            return
        try:
            count = self.store.append(self.room_id, updates)
        except Exception as e:
            self._store_error(e)
            return
        if count >= max(self.manager.update_store_compact_every, 1):
            self._store_reset()

    def _store_reset(self) -> None:
        """Replace the stored history by the current state, tagged with the file's hash."""
        if self.store is None or self.store.closed:
            return
        try:
            # The live doc still encodes deleted content (cleared outputs) in full; applying
            # its state to a fresh Doc garbage-collects it: the squashed state is then the
            # size of the document, not of its history.
            scratch = Doc()
            scratch.apply_update(self.ydoc.get_update())
            self.store.reset(self.room_id, self._hash, scratch.get_update())
        except Exception as e:
            self._store_error(e)
            return
        self._store_hash = self._hash

    def _store_checkpoint(self) -> None:
        """After a save or reload: compact (history up to here is in the file)."""
        if self.store is None or self.store.closed or not self.loaded:
            return
        if self._hash != self._store_hash or self.store._pending_counts.get(self.room_id, 0):
            self._store_reset()

    def _store_error(self, error: Exception) -> None:
        if not self._store_failed:
            self._store_failed = True
            self.log.error(
                "collab_kernels: writing %s to the update store failed (%s); its edits are "
                "only as safe as the last save",
                self.path,
                error,
            )

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

    def _release(self, hold: RoomHold) -> None:
        self._holds.pop(id(hold), None)
        self._maybe_free()

    def add_client(self, client: RoomClient) -> None:
        self._cancel_free()
        super().add_client(client)
        if self.conflict:
            client.send(protocol.raw_message({"type": "conflict"}))

    def _client_left(self) -> None:
        self._maybe_free()

    def _handle_update(self, client: RoomClient, update: bytes) -> None:
        if not client.can_write:
            client.dropped_updates += 1
            if client.dropped_updates == 1:
                self.log.info(
                    "collab_kernels: dropping edits of read-only %s on %s", client.name, self.path
                )
            return
        if update == EMPTY_UPDATE:
            return
        state_before = self.ydoc.get_state()
        queued = len(self._pending_updates)
        try:
            self.ydoc.apply_update(update)
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException as e:  # pycrdt raises (or panics) on a corrupt update
            raise ProtocolError(f"invalid Y update: {e}") from e
        finally:
            self._check_update_event(state_before, queued, client)

    def _check_update_event(self, state_before: bytes, queued: int, client: RoomClient) -> None:
        """Make sure what an incoming update changed reaches the collaborators.

        The room broadcasts the update pycrdt reports for each transaction. For an update
        whose struct claims a clock beyond its client's known clock (a malformed or forged
        update), pycrdt 0.14 integrates the struct (its text appears in the document) but
        reports an empty update: the room's document would differ from every
        collaborator's, silently and for good. When the state vector moved but nothing
        but empty updates was reported, the difference from the previous state vector is
        sent instead.
        """
        reported = self._pending_updates[queued:]
        if any(u != EMPTY_UPDATE for u in reported):
            return
        if self.ydoc.get_state() == state_before:
            return
        self.log.warning(
            "collab_kernels: an update from %s on %s changed the document without a reported "
            "update (a struct whose clock skips ahead); sending the difference instead",
            client.name,
            self.path,
        )
        del self._pending_updates[queued:]
        self._queue_update(self.ydoc.get_update(state_before))

    @property
    def idle(self) -> bool:
        return not self.clients and not self._holds and not self.unsaved and not self.conflict

    def _cancel_free(self) -> None:
        if self._free_handle is not None:
            self._free_handle.cancel()
            self._free_handle = None

    def _maybe_free(self) -> None:
        if self._closed or not self.loaded:
            return
        if not self.clients and not self._holds and self.unsaved and not self.conflict:
            self.request_save()  # freeing waits for the save
            return
        if self.idle and self._free_handle is None:
            delay = max(self.manager.free_delay, 0)
            self._free_handle = asyncio.get_event_loop().call_later(delay, self._free_now)

    def _free_now(self) -> None:
        self._free_handle = None
        if self.idle and not self._closed:
            asyncio.ensure_future(self.manager._free_room(self))

    # --- saving ----------------------------------------------------------------------------
    def request_save(self, delay: float | None = None) -> None:
        """Save after ``save_delay`` without further edits (at most ``save_max_delay`` late).

        ``delay`` overrides ``save_delay`` (0: as soon as the event loop is free).
        """
        if self._closed or not self.loaded:
            return
        loop = asyncio.get_event_loop()
        now = loop.time()
        if self._save_first_request is None:
            self._save_first_request = now
        delay = max(self.manager.save_delay if delay is None else delay, 0)
        deadline = self._save_first_request + max(self.manager.save_max_delay, delay)
        delay = max(0.0, min(delay, deadline - now))
        if self._save_handle is not None:
            self._save_handle.cancel()
        self._save_handle = loop.call_later(delay, self._autosave)

    def _autosave(self) -> None:
        self._save_handle = None
        self._save_first_request = None
        if self._save_task is not None and not self._save_task.done():
            # A save is running; save again after it.
            self._save_task.add_done_callback(lambda _: self.request_save())
            return
        self._save_task = asyncio.ensure_future(self._autosave_task())

    async def _autosave_task(self) -> None:
        try:
            await self.save()
        except Exception:
            self.log.exception("collab_kernels: autosave of %s failed", self.path)
        self._maybe_free()

    async def save(self, *, force: bool = False) -> str:
        """Write the document through the ContentsManager.

        Returns ``"success"``, ``"skipped"`` (nothing to write) or ``"failed"`` (the file
        changed on disk while the room had unsaved edits, or the write failed). ``force`` is
        an explicit user save: it writes even when the file changed on disk (the user saw the
        conflict) and when the room has no new edits but the file differs.
        """
        async with self._io_lock:
            if self._closed or not self.loaded:
                return "skipped"
            if self.conflict and not force:
                return "failed"
            if not force and not self.unsaved:
                return "skipped"
            if self.file_type == "notebook":
                self._repair_notebook()
            version = self._version
            content = (
                await self.document.aget() if self.file_type == "notebook" else self.document.get()
            )
            try:
                disk = await self._get_model(content=False, require_hash=True)
            except HTTPError as e:
                if e.status_code != 404:
                    raise
                disk = None
                if not force:
                    self.log.warning(
                        "collab_kernels: not saving %s: the file no longer exists", self.path
                    )
                    return "failed"
            disk_changed = disk is not None and disk.get("hash") != self._hash
            if disk_changed and not force:
                if content == self._saved_content:
                    # Only state changed in the room: take the file's new content instead.
                    await self._reload_locked()
                    return "skipped"
                self._enter_conflict(disk)
                return "failed"
            if not disk_changed and disk is not None and content == self._saved_content:
                self._mark_saved(version, self._hash, disk.get("last_modified"))
                return "skipped"
            if disk_changed:
                self.log.warning(
                    "collab_kernels: %s changed on disk; overwriting it with the room's content "
                    "on an explicit save",
                    self.path,
                )
                self._emit("overwritten", "An explicit save overwrote a file changed on disk.")
            model: dict[str, Any] = {"type": self._cm_type, "content": content}
            model["format"] = "json" if self.file_type == "notebook" else "text"
            try:
                await ensure_async(self.manager.contents_manager.save(model, self.path))
                after = await self._get_model(content=False, require_hash=True)
            except Exception as e:
                self.log.error("collab_kernels: saving %s failed: %s", self.path, e)
                self._emit("save_failed", f"Saving failed: {e}")
                return "failed"
            self._saved_content = content
            self.conflict = False
            self._mark_saved(version, after.get("hash"), after.get("last_modified"))
            self.log.debug("collab_kernels: saved %s", self.path)
            return "success"

    def _repair_notebook(self) -> None:
        """Bring the Y document back to the notebook schema before it is saved.

        A client can send any valid Y update: a number in ``cells``, a cell without a source,
        metadata that is not a map. jupyter_ydoc cannot turn such a document into a notebook
        (every save would fail, and honest edits would never reach the file again), and the
        JupyterLab frontend chokes on it too. The fix is a normal transaction, so every
        collaborator gets the repaired document: items that are not cells are removed,
        unknown cell types become raw cells, missing or mistyped fields get their defaults.
        """
        problems: list[str] = []
        ycells = self.document.ycells
        meta = self.ydoc.get("meta", type=Map)
        with self.ydoc.transaction():
            for index in reversed(range(len(ycells))):
                ycell = ycells[index]
                if not isinstance(ycell, Map):
                    del ycells[index]
                    problems.append(f"removed a non-cell item at index {index}")
                    continue
                problems.extend(self._repair_cell(ycell, index))
            if not isinstance(meta.get("metadata"), (Map, dict)):
                meta["metadata"] = Map()
                problems.append("notebook metadata was not a map")
            for key, default in (("nbformat", 4), ("nbformat_minor", 5)):
                value = meta.get(key)
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    meta[key] = default
                    problems.append(f"{key} was {value!r}")
        if problems:
            self.log.warning(
                "collab_kernels: repaired %s before saving it: %s", self.path, "; ".join(problems)
            )

    @staticmethod
    def _repair_cell(ycell: Map, index: int) -> list[str]:
        problems = []
        cell_type = ycell.get("cell_type")
        if cell_type not in ("code", "markdown", "raw"):
            problems.append(f"cell {index} had cell type {cell_type!r}")
            ycell["cell_type"] = cell_type = "raw"
        source = ycell.get("source")
        if not isinstance(source, Text):
            text = source if isinstance(source, str) else "" if source is None else str(source)
            ycell["source"] = Text(text)
            problems.append(f"cell {index} had no text source")
        if not isinstance(ycell.get("metadata"), (Map, dict)):
            ycell["metadata"] = Map()
            problems.append(f"cell {index} had no metadata map")
        cell_id = ycell.get("id")
        if not isinstance(cell_id, str) or not cell_id:
            ycell["id"] = uuid.uuid4().hex[:16]
            problems.append(f"cell {index} had no id")
        if cell_type == "code":
            outputs = ycell.get("outputs")
            if not isinstance(outputs, (Array, list)):
                ycell["outputs"] = Array()
                problems.append(f"cell {index} outputs were not a list")
            elif isinstance(outputs, Array):
                for j in reversed(range(len(outputs))):
                    output = outputs[j]
                    if not isinstance(output, (Map, dict)) or not isinstance(
                        output.get("output_type"), str
                    ):
                        del outputs[j]
                        problems.append(f"cell {index} output {j} was not an output")
            count = ycell.get("execution_count")
            if "execution_count" not in ycell:
                ycell["execution_count"] = None
            elif count is not None and (
                not isinstance(count, (int, float)) or isinstance(count, bool)
            ):
                ycell["execution_count"] = None
                problems.append(f"cell {index} execution count was {count!r}")
        else:
            for key in ("outputs", "execution_count"):
                if key in ycell:
                    del ycell[key]
        return problems

    def _mark_saved(self, version: int, file_hash: str | None, last_modified: Any) -> None:
        self._saved_version = version
        self._hash = file_hash
        self._last_modified = last_modified
        values: dict[str, Any] = {"hash": file_hash}
        if version == self._version:
            values["dirty"] = False
        self._set_state(**values)
        self._store_checkpoint()

    async def _handle_save(self, client: RoomClient, request_id: int | None) -> None:
        if not client.can_write:
            status = "failed"
        else:
            try:
                status = await self.save(force=True)
            except Exception:
                self.log.exception("collab_kernels: save of %s failed", self.path)
                status = "failed"
            if status == "skipped":
                # The file already holds the document. The stock frontend reads "skipped" as
                # "a save is already in progress" and shows an error dialog on Ctrl+S.
                status = "success"
        client.send(
            protocol.raw_message({"type": "save", "responseTo": request_id, "status": status})
        )
        self._maybe_free()

    # --- out-of-band changes ---------------------------------------------------------------
    async def _watch(self, interval: float) -> None:
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.check_disk()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("collab_kernels: checking %s on disk failed", self.path)

    async def check_disk(self) -> None:
        """Look for an out-of-band change of the file and handle it."""
        if self._closed or not self.loaded:
            return
        async with self._io_lock:
            try:
                model = await self._get_model(content=False)
            except HTTPError as e:
                if e.status_code != 404:
                    raise
                await self._on_missing()
                return
            self._missing_checks = 0
            if model.get("last_modified") == self._last_modified:
                return
            model = await self._get_model(content=False, require_hash=True)
            if model.get("hash") == self._hash:
                self._last_modified = model.get("last_modified")
                return
            if self.unsaved:
                self._enter_conflict(model)
            else:
                await self._reload_locked()

    async def reload(self) -> None:
        """Apply the file's current content to the doc in place (discards unsaved edits)."""
        async with self._io_lock:
            await self._reload_locked()

    async def _reload_locked(self) -> None:
        model = await self._get_model(content=True, require_hash=True)
        if self.unsaved and self.document.get() != self._saved_content:
            # Edits arrived while we read the file: keep them, report the conflict.
            self._enter_conflict(model)
            return
        content = model["content"]
        self._server_edit += 1
        try:
            with self.ydoc.transaction():
                self._apply_in_place(content)
                self.document.ystate["hash"] = model.get("hash")
                self.document.ystate["dirty"] = False
                self.document.ystate["path"] = self.path
        finally:
            self._server_edit -= 1
        self._saved_content = self.document.get()
        self._saved_version = self._version
        self._hash = model.get("hash")
        self._last_modified = model.get("last_modified")
        self.conflict = False
        self._store_checkpoint()
        self.log.info("collab_kernels: reloaded %s after it changed on disk", self.path)
        self._emit("reloaded", "The file changed on disk; the document took its new content.")

    def _apply_in_place(self, content: Any) -> None:
        """Edit only what differs; unchanged cells keep their identity."""
        if self.file_type != "notebook":
            self.document.set(content)
            return
        by_id = {}
        for ycell in self.document.ycells:
            cell_id = ycell.get("id")
            if cell_id is not None and cell_id not in by_id:
                by_id[cell_id] = ycell
        for cell in content.get("cells", []):
            ycell = by_id.get(cell.get("id"))
            if ycell is None or ycell.get("cell_type") != cell.get("cell_type"):
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            if str(ycell["source"]) != source:
                # Granular text edit, so YNotebook.set then sees an equal source.
                _set_text(self.ydoc, ycell["source"], source)
        self.document.set(content)

    def _enter_conflict(self, disk: dict[str, Any] | None) -> None:
        first = not self.conflict
        self.conflict = True
        if disk is not None:
            # Do not report the same change of the file twice.
            self._last_modified = disk.get("last_modified")
        if not first:
            return
        self.log.warning(
            "collab_kernels: %s changed on disk while the document had unsaved edits; keeping "
            "the document's content and not overwriting the file (an explicit save will)",
            self.path,
        )
        self.broadcast_raw({"type": "conflict"})
        self._emit(
            "conflict",
            "The file changed on disk while the document had unsaved edits; the file was "
            "not overwritten.",
        )

    async def _on_missing(self) -> None:
        fim = self.manager.file_id_manager
        new_path = None
        if fim is not None:
            try:
                new_path = fim.get_path(self.file_id)
            except Exception:
                new_path = None
        if new_path and new_path != self.path:
            cm = self.manager.contents_manager
            if await ensure_async(cm.file_exists(new_path)):
                self.set_path(new_path)
                return
        self._missing_checks += 1
        if self._missing_checks >= 2:
            self.file_deleted()

    # --- renames and deletes ---------------------------------------------------------------
    def set_path(self, new_path: str) -> None:
        if new_path == self.path:
            return
        old, self.path = self.path, new_path
        self._set_state(path=new_path)
        self.log.info("collab_kernels: document %s is now %s", old, new_path)
        self._emit("renamed", f"Renamed from {old}.")

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
        self._emit("deleted", "The file was deleted; the document was closed.")
        self._stop_timers()
        self.close(protocol.CLOSE_NOT_FOUND, "file deleted")
        if self.store is not None and not self.store.closed:
            try:
                self.store.delete(self.room_id)
            except Exception as e:
                self._store_error(e)
        self.manager._forget_room(self)

    # --- events ----------------------------------------------------------------------------
    def _emit(self, action: str, message: str) -> None:
        self.manager.emit_event(
            {"action": action, "path": self.path, "room_id": self.room_id, "message": message}
        )

    # --- lifecycle -------------------------------------------------------------------------
    def _stop_timers(self) -> None:
        for handle in (self._save_handle, self._free_handle):
            if handle is not None:
                handle.cancel()
        self._save_handle = self._free_handle = None
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None

    async def stop(
        self, code: int = protocol.CLOSE_GOING_AWAY, reason: str = "server stopping"
    ) -> None:
        """Save what is unsaved, close the clients and stop every timer."""
        self._stop_timers()
        if self.loaded and not self._closed and self.unsaved:
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


class GlobalAwarenessRoom(BaseRoom):
    """``JupyterLab:globalAwareness``: awareness only (who is online), no document."""

    def _handle_update(self, client: RoomClient, update: bytes) -> None:
        return None


def now() -> float:
    return time.monotonic()
