"""What the execution stage needs of the rooms stage: narrow, typed, structural.

The rooms stage's ``RoomManager`` and its document rooms satisfy these Protocols (mypy
checks it where the manager is handed over); the execution stage never reaches further into
a room than this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pycrdt import Doc, Map

Log = logging.Logger | logging.LoggerAdapter[Any]


class Hold(Protocol):
    """Keeps a room alive (not freed) until released."""

    def release(self) -> None: ...


class NotebookRoom(Protocol):
    """A server-owned document: its Y doc and where it lives."""

    @property
    def room_id(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def file_type(self) -> str: ...

    @property
    def ydoc(self) -> Doc[Any]: ...

    @property
    def closed(self) -> bool: ...

    def hold(self, reason: str) -> Hold: ...

    def flush_updates(self) -> None:
        """Send what was committed to every collaborator now (no coalescing delay)."""

    def hold_updates(self, seconds: float) -> None:
        """Send what is committed from now on at most ``seconds`` later (or at the next
        ``flush_updates``), together with what follows meanwhile."""

    def store_pending_updates(self) -> None:
        """Put what is committed and not sent yet in the update store now (it is still sent
        later), so that its later broadcast has no store append to wait for."""

    @property
    def kept_cell_output(self) -> int:
        """Bytes of stream text a cell over the room's output limit keeps (0: no limit)."""

    def limit_cell_output(
        self,
        ycell: Map[Any],
        *,
        keep: int | None = None,
        dropped: int = 0,
        appended: int | None = None,
    ) -> bool:
        """Apply the room's per-cell output limit to ``ycell`` (inside the caller's
        transaction): whether its oldest stream text was dropped. ``keep``/``dropped``: the
        caller appended only the newest ``keep`` bytes of a longer chunk, ``dropped``
        bytes were left out before them (all older text goes, the marker counts them).
        ``appended``: bytes of ASCII the caller appended verbatim to the cell's last stream
        output since its previous call for this cell (None: it wrote otherwise)."""


class RoomSource(Protocol):
    """The rooms stage's manager, as the execution stage uses it."""

    @property
    def rooms(self) -> Mapping[str, NotebookRoom]: ...

    def find_room(self, room_id: str) -> NotebookRoom | None:
        """The live room, or None; never creates one."""

    async def get_room(self, room_id: str) -> NotebookRoom:
        """The room, loaded on first use (KeyError/ValueError for an unknown id)."""

    def on_room_created(self, callback: Callable[[NotebookRoom], Any]) -> None: ...

    def on_room_freed(self, callback: Callable[[NotebookRoom], Any]) -> None: ...
