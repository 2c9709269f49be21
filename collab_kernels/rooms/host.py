"""What a document room needs from whoever keeps it: the ``RoomHost`` protocol.

The room manager (``manager.py``) is the host of every room; rooms never import it. Tests and
tools can host a room with any object that has these members (e.g. a fake contents manager
and plain attributes), so the file stage is unit tested without a server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from .saving import Delays

if TYPE_CHECKING:  # pragma: no cover
    from .document import DocumentRoom
    from .store import SQLiteUpdateStore


class RoomSettings(Delays, Protocol):
    """The settings a room reads (the room manager's traits); read live, they may change.
    The save schedule's delays are its own small interface (saving.Delays)."""

    @property
    def free_delay(self) -> float: ...
    @property
    def file_check_interval(self) -> float: ...
    @property
    def coalesce_window(self) -> float: ...
    @property
    def fanout_cpu_share(self) -> float: ...
    @property
    def awareness_window(self) -> float: ...
    @property
    def awareness_renewal_window(self) -> float: ...
    @property
    def update_store_compact_every(self) -> int: ...
    @property
    def max_awareness_state_size(self) -> int: ...
    @property
    def max_awareness_ids(self) -> int: ...
    @property
    def max_update_size(self) -> int: ...
    @property
    def max_update_depth(self) -> int: ...
    @property
    def max_cell_output(self) -> int: ...
    @property
    def progressive_sync_cells(self) -> int: ...
    @property
    def progressive_sync_output_bytes(self) -> int: ...


class RoomHost(RoomSettings, Protocol):
    """The room manager as a room sees it."""

    @property
    def log(self) -> logging.Logger: ...

    @property
    def contents_manager(self) -> Any:
        """jupyter_server's ContentsManager (``get``, ``save``, ``file_exists``)."""

    @property
    def store(self) -> SQLiteUpdateStore | None:
        """The update store, or None when it is off."""

    def path_for_file_id(self, file_id: str) -> str | None:
        """The file's current path (jupyter_server_fileid follows renames), or None."""

    def emit_room_event(self, data: dict[str, Any]) -> None:
        """Put a room event on jupyter_server's event bus."""

    def room_idle(self, room: DocumentRoom) -> None:
        """The room has been idle for ``free_delay``: free it (the host re-checks)."""

    def room_gone(self, room: DocumentRoom) -> None:
        """The room closed itself (its file was deleted): forget it."""
