"""RoomManager: creates, finds, holds and frees the server's document rooms.

Its traits are the rooms stage's settings (each room reads them through
:class:`~.host.RoomHost`); the event bus side is ``bus.py``, the update store and the session
ids ``persistence.py`` (a base class; ``store.py``, ``sessions.py``), the loads a session PUT
starts ``preload.py`` (a base class).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from jupyter_core.utils import ensure_async
from traitlets import Any as AnyTrait
from traitlets import Float, Int

from ..contract import FILE_TYPES, InvalidRoomId, build_room_id, parse_room_id
from . import protocol
from .bus import ROOM_EVENT_SCHEMA_ID, RoomEventBus
from .content import is_refused_hidden
from .document import DocumentRoom
from .fanout import GlobalAwarenessRoom
from .persistence import RoomPersistence
from .preload import RoomPreloads


class RoomNotFound(KeyError):
    """No file behind that room id (unknown file id, or the file is gone)."""


class RoomManager(RoomPersistence, RoomPreloads):
    """All live document rooms of this server; the :class:`~.host.RoomHost` of each.

    A room is created on first use (a websocket, or server code calling
    :meth:`get_room` / :meth:`get_room_for_path`), loaded through the ContentsManager, saved
    after changes, and freed only when no client is connected, nothing holds it and it is
    saved, ``free_delay`` seconds later.
    """

    contents_manager = AnyTrait()
    event_logger = AnyTrait()
    web_settings = AnyTrait()

    save_delay = Float(
        1.0,
        config=True,
        help="Seconds without edits after which a changed document is saved to its file.",
    )
    save_max_delay = Float(
        10.0,
        config=True,
        help=(
            "Upper bound in seconds on how long continuous edits (e.g. a cell printing) can "
            "postpone a save."
        ),
    )
    save_retry_delay = Float(
        1.0,
        config=True,
        help=(
            "Seconds before a failed save (read-only file, disk full, contents manager error) "
            "is tried again, without waiting for a new edit; the delay doubles after each "
            "failure up to save_retry_max_delay. Meanwhile the document's state stays dirty "
            "and collaborators get a raw save_failed message with the reason."
        ),
    )
    save_retry_max_delay = Float(
        60.0,
        config=True,
        help="Upper bound in seconds of the delay between retries of a failing save.",
    )
    save_time_share = Float(
        0.1,
        config=True,
        help=(
            "Largest share of the time autosaves of one document may take: after a save that "
            "took t seconds (jupyter_server validates, signs and writes a notebook on the event "
            "loop, seconds for one with a hundred MB of output) the next autosave waits at "
            "least t * (1 / share - 1). Explicit saves are not delayed. 0 or 1 turns it off."
        ),
    )
    free_delay = Float(
        60.0,
        config=True,
        help=(
            "Seconds a room stays in memory after it became idle (no client, no hold, saved) "
            "before it is freed."
        ),
    )
    file_check_interval = Float(
        2.0,
        config=True,
        help=(
            "Seconds between checks of each open document's file for out-of-band changes "
            "(git checkout, another editor); 0 checks only before each save."
        ),
    )
    coalesce_window = Float(
        0.005,
        config=True,
        help=(
            "Seconds during which document updates are collected, merged and broadcast as one "
            "message. An update after a quiet window goes out at once; during a burst (a "
            "kernel streaming output, many typists) at most one merged update per window "
            "reaches each client. 0 merges only updates of the same event-loop iteration."
        ),
    )
    fanout_cpu_share = Float(
        0.1,
        config=True,
        help=(
            "Largest share of one CPU core a room's document broadcasts may take during a "
            "burst of updates. Sending an update costs server CPU per connected client (about "
            "12 us each); after a broadcast that took t seconds of CPU, the next merged update "
            "waits at least t * (1 / share - 1) seconds (with 1000 viewers: about ten updates "
            "a second). Rooms with few clients are limited by coalesce_window only; the end of "
            "a cell is always sent at once. 0 or 1 = no limit."
        ),
    )
    awareness_window = Float(
        0.05,
        config=True,
        help="Seconds during which awareness changes are batched into one relayed message.",
    )
    awareness_renewal_window = Float(
        5.0,
        config=True,
        help=(
            "Seconds during which unchanged awareness renewals (every browser re-sends its "
            "presence every 15 s) are gathered and relayed as one combined message, instead "
            "of forwarding each renewal to every client (N^2/15 frames per second). Keep it "
            "well under 15: browsers drop a collaborator they have not heard of for 30 s."
        ),
    )
    max_message_size = Int(
        64 * 1024 * 1024,
        config=True,
        help=(
            "Largest websocket frame in bytes a room client may send; a larger one closes that "
            "connection with code 1009."
        ),
    )
    websocket_deflate_threshold = Int(
        1024,
        config=True,
        help=(
            "Room websockets accept permessage-deflate from clients that offer it (browsers "
            "do): a message of at least this many bytes is compressed once and the same frame "
            "goes to every connection that negotiated it (a cell's 220 kB of output: 46 kB to "
            "each viewer); smaller ones are sent uncompressed. 0 = room websockets compress "
            "as ServerApp.websocket_compression_options says (per connection)."
        ),
    )
    client_queue_size = Int(
        2000,
        config=True,
        help=(
            "Frames a room client may have waiting to be sent; a client that falls further "
            "behind is disconnected (it reconnects and resyncs)."
        ),
    )
    client_queue_bytes = Int(
        32 * 1024 * 1024,
        config=True,
        help=(
            "Bytes a room client may have waiting to be sent (queued, or handed to a socket "
            "that has not taken them yet). A client that falls further behind (a viewer that "
            "stopped reading during a flood of output) is disconnected with code 1013 and "
            "resyncs when it reconnects; a single larger frame is still sent to a client that "
            "has nothing pending. 0 = no byte limit (client_queue_size still applies)."
        ),
    )
    max_awareness_state_size = Int(
        64 * 1024,
        config=True,
        help=(
            "Largest awareness state in bytes (one client's JSON: name, cursor, selection) a "
            "connection may publish; a larger one is refused, never relayed nor shown by "
            "presence. 0 = no limit."
        ),
    )
    max_awareness_ids = Int(
        16,
        config=True,
        help=(
            "Awareness client ids one connection may introduce (a browser tab uses one). A "
            "connection may only set the states of ids it introduced. 0 = no limit."
        ),
    )
    max_update_size = Int(
        32 * 1024 * 1024,
        config=True,
        help=(
            "Largest Y update in bytes a room client may send in one message; a larger one "
            "closes that connection with code 1009 and changes nothing. 0 = no limit "
            "(max_message_size still applies)."
        ),
    )
    max_update_depth = Int(
        64,
        config=True,
        help=(
            "Deepest nesting a Y update may give the document, counted separately for shared "
            "types (maps, arrays, texts inside each other) and for JSON values (lists and "
            "objects inside a value). A deeper update closes its connection with code 1007 and "
            "changes nothing, so no document can be made unsaveable by nesting (jupyter_ydoc "
            "and nbformat recurse over it). 0 = no limit."
        ),
    )
    max_cell_output = Int(
        5 * 1024 * 1024,
        config=True,
        help=(
            "Bytes of stream output (print, logging) one cell keeps in its document; before "
            "each save the oldest text beyond it is dropped (down to 80% of it) and the cell's "
            "output starts with '[N bytes of earlier output dropped]', so a cell printing in "
            "a loop cannot make a notebook no browser can open. 0 = unlimited."
        ),
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.rooms: dict[str, DocumentRoom] = {}
        self._loading: dict[str, asyncio.Future[DocumentRoom]] = {}
        self._created_callbacks: list[Callable[[DocumentRoom], Any]] = []
        self._freed_callbacks: list[Callable[[DocumentRoom], Any]] = []
        self._global_awareness: GlobalAwarenessRoom | None = None
        self._stopping = False
        self._tasks: set[asyncio.Future[Any]] = set()
        #: room events out, the contents service's renames, deletes and saves in (bus.py)
        self.events = RoomEventBus(
            self.event_logger,
            rooms=lambda: self.rooms.values(),
            background=self._background,
            log=self.log,
        )

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task kept alive until it is done."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- collaborators -----------------------------------------------------------------------
    @property
    def file_id_manager(self) -> Any:
        """jupyter_server_fileid's manager (read lazily: it may initialize after us)."""
        settings = self.web_settings or {}
        return settings.get("file_id_manager")

    def path_for_file_id(self, file_id: str) -> str | None:
        """The current path of a file id (jupyter_server_fileid follows renames), or None."""
        fim = self.file_id_manager
        if fim is None:
            return None
        path = fim.get_path(file_id)
        return path if isinstance(path, str) else None

    def _require_fim(self) -> Any:
        fim = self.file_id_manager
        if fim is None:
            raise RuntimeError(
                "collab_kernels needs the jupyter_server_fileid extension to be enabled"
            )
        return fim

    # --- events ----------------------------------------------------------------------------
    def emit_room_event(self, data: dict[str, Any]) -> None:
        self.events.emit(data)

    # --- rooms -----------------------------------------------------------------------------
    def on_room_created(self, callback: Callable[[DocumentRoom], Any]) -> None:
        self._created_callbacks.append(callback)

    def on_room_freed(self, callback: Callable[[DocumentRoom], Any]) -> None:
        self._freed_callbacks.append(callback)

    def find_room(self, room_id: str) -> DocumentRoom | None:
        """The live room, or None; never creates one."""
        room = self.rooms.get(room_id)
        if room is not None and room.closed:
            return None
        return room

    def room_id_for(self, file_id: str, file_type: str = "notebook") -> str:
        return build_room_id(file_id, file_type)

    async def get_room_for_path(self, path: str, file_type: str = "notebook") -> DocumentRoom:
        """The room of the file at ``path`` (indexed with jupyter_server_fileid)."""
        if file_type not in FILE_TYPES:
            raise InvalidRoomId(f"unsupported document type {file_type!r}")
        path = path.strip("/")
        cm = self.contents_manager
        if not await ensure_async(cm.file_exists(path)) or await is_refused_hidden(cm, path):
            raise RoomNotFound(path)
        file_id = self._require_fim().index(path)
        if file_id is None:
            raise RoomNotFound(path)
        return await self.get_room(self.room_id_for(file_id, file_type))

    async def get_room(self, room_id: str) -> DocumentRoom:
        """The room, created and loaded from the ContentsManager on first use."""
        room = self.find_room(room_id)
        if room is not None:
            return room
        return await asyncio.shield(self._start_loading(room_id))

    def _start_loading(self, room_id: str) -> asyncio.Future[DocumentRoom]:
        if self._stopping:
            raise RuntimeError("the server is stopping")
        loading = self._loading.get(room_id)
        if loading is None:
            loading = asyncio.ensure_future(self._create_room(room_id))
            self._loading[room_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(room_id, None))
        return loading

    async def _create_room(self, room_id: str) -> DocumentRoom:
        _fmt, file_type, file_id = parse_room_id(room_id)  # InvalidRoomId (a ValueError)
        path = self._require_fim().get_path(file_id)
        cm = self.contents_manager
        if (
            path is None
            or not await ensure_async(cm.file_exists(path))
            or await is_refused_hidden(cm, path)
        ):
            raise RoomNotFound(room_id)
        room = DocumentRoom(room_id, file_id=file_id, path=path, file_type=file_type, host=self)
        try:
            await room.load()
        except BaseException:  # cancelled at server stop (preload.py) too
            room.first_sync.cancel()
            room.close()
            raise
        self.rooms[room_id] = room
        for callback in list(self._created_callbacks):
            try:
                result = callback(room)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                self.log.exception("collab_kernels: on_room_created callback failed for %s", path)
        return room

    @property
    def global_awareness(self) -> GlobalAwarenessRoom:
        if self._global_awareness is None:
            self._global_awareness = GlobalAwarenessRoom(
                protocol.GLOBAL_AWARENESS_ROOM,
                log=self.log,
                coalesce_window=self.coalesce_window,
                fanout_cpu_share=self.fanout_cpu_share,
                awareness_window=self.awareness_window,
                awareness_renewal_window=self.awareness_renewal_window,
                max_awareness_state_size=self.max_awareness_state_size,
                max_awareness_ids=self.max_awareness_ids,
            )
        return self._global_awareness

    def room_idle(self, room: DocumentRoom) -> None:
        """A room has been idle for ``free_delay``: free it."""
        self._background(self.free_room(room))

    def room_gone(self, room: DocumentRoom) -> None:
        """A room closed itself (its file was deleted)."""
        self.forget_room(room)

    async def free_room(self, room: DocumentRoom) -> None:
        """Save and close an idle room and forget it (a room that is not idle is kept)."""
        if self.rooms.get(room.room_id) is not room or room.closed:
            return
        if room.unsaved:
            await room.save()
        if not room.idle:
            room.schedule_free()
            return
        room.stop_timers()
        room.close()
        self.forget_room(room)
        self.log.info("collab_kernels: freed document %s", room.path)

    def forget_room(self, room: DocumentRoom) -> None:
        """Drop a (closed) room from the live rooms and tell the on_room_freed callbacks."""
        if self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        for callback in list(self._freed_callbacks):
            try:
                result = callback(room)
                if asyncio.iscoroutine(result):
                    self._background(result)
            except Exception:
                self.log.exception(
                    "collab_kernels: on_room_freed callback failed for %s", room.path
                )

    async def stop(self) -> None:
        """Save every room and close every client (server shutdown)."""
        self._stopping = True
        await self.finish_loads()  # loads started by a session PUT or a websocket
        rooms = list(self.rooms.values())
        await asyncio.gather(*(room.stop() for room in rooms), return_exceptions=True)
        for room in rooms:
            self.forget_room(room)
        if self._global_awareness is not None:
            self._global_awareness.close()
        if self._store is not None:
            self._store.close()


__all__ = ["ROOM_EVENT_SCHEMA_ID", "RoomManager", "RoomNotFound"]
