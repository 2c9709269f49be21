"""The rooms on jupyter_server's event bus: room events out, the contents service's in.

Out: what happened to a document's file (``conflict``, ``merged``, ``reloaded``,
``overwritten``, ``renamed``, ``deleted``, ``save_failed``, ``saved``) as events of the schema
``events/rooms.yaml``. In: the contents service's ``rename``, ``delete`` and ``save`` events
(a file or folder renamed or deleted through Jupyter, a notebook saved through the Contents
API by someone else): each open room of that path follows the rename, closes (4404), or
checks its file on disk at once instead of at its next periodic check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Protocol

CONTENTS_EVENT_SCHEMA_ID = "https://events.jupyter.org/jupyter_server/contents_service/v1"

#: Room events on jupyter_server's event bus (the schema is ``events/rooms.yaml``).
ROOM_EVENT_SCHEMA_ID = "https://collab-kernels.jupyter.org/rooms/v1"
ROOM_EVENT_SCHEMA_PATH = Path(__file__).parent / "events" / "rooms.yaml"


class BusRoom(Protocol):
    """What the bus needs from an open room."""

    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...

    def set_path(self, new_path: str) -> None: ...
    def file_deleted(self) -> None: ...
    async def check_disk(self) -> None: ...


class RoomEventBus:
    """The room manager's side of jupyter_server's ``event_logger``."""

    def __init__(
        self,
        event_logger: Any,
        *,
        rooms: Callable[[], Iterable[BusRoom]],
        background: Callable[[Coroutine[Any, Any, Any]], None],
        log: logging.Logger,
    ):
        self.event_logger = event_logger
        self.rooms = rooms
        self.background = background
        self.log = log
        self.ready = False
        if event_logger is None:
            return
        try:
            if ROOM_EVENT_SCHEMA_ID not in event_logger.schemas:
                event_logger.register_event_schema(ROOM_EVENT_SCHEMA_PATH)
            event_logger.add_listener(
                schema_id=CONTENTS_EVENT_SCHEMA_ID, listener=self._on_contents_event
            )
            self.ready = True
        except Exception:
            self.log.exception("collab_kernels: could not set up room events")

    def emit(self, data: dict[str, Any]) -> None:
        """Emit one room event (``action``, ``path``, ``room_id``, ``message``)."""
        if self.ready:
            try:
                self.event_logger.emit(schema_id=ROOM_EVENT_SCHEMA_ID, data=data)
            except Exception:
                self.log.exception("collab_kernels: could not emit room event %s", data)

    async def _on_contents_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        action = data.get("action")
        path = (data.get("path") or "").strip("/")
        if action == "rename":
            source = (data.get("source_path") or "").strip("/")
            for room in list(self.rooms()):
                if room.path == source:
                    room.set_path(path)
                elif room.path.startswith(source + "/"):
                    room.set_path(path + room.path[len(source) :])
        elif action == "delete":
            for room in list(self.rooms()):
                if room.path == path or room.path.startswith(path + "/"):
                    room.file_deleted()
        elif action == "save":
            for room in list(self.rooms()):
                if room.path == path and not room.closed:
                    self.background(self._check_quietly(room))

    async def _check_quietly(self, room: BusRoom) -> None:
        try:
            await room.check_disk()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("collab_kernels: checking %s on disk failed", room.path)


__all__ = ["CONTENTS_EVENT_SCHEMA_ID", "ROOM_EVENT_SCHEMA_ID", "RoomEventBus"]
