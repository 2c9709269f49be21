"""Rooms loaded at the session PUT, before their websocket opens.

JupyterLab's docprovider always asks ``PUT /api/collaboration/session/{path}`` for a file id
and a session id, then builds its provider and opens the room's websocket. Loading the room
(reading and validating the file, building the Y document) used to start only when that
websocket opened; for a notebook of 1000 cells the browser then waited for the whole load
after its own work between the two requests. The PUT (already authorized to read the file)
now starts the load, and the websocket awaits the same load instead of starting one.

A preloaded room nobody joins is freed ``preload_free_delay`` seconds after it loaded, as an
idle room is. At server stop the loads still running are awaited (and cancelled past
``STOP_TIMEOUT``) before the rooms are stopped, so no load outlives the server.
"""

from __future__ import annotations

import asyncio

from traitlets import Bool, Float, Integer
from traitlets.config import LoggingConfigurable

from .document import DocumentRoom

#: seconds a server stop waits for the loads in progress before cancelling them
STOP_TIMEOUT = 10.0


class RoomPreloads(LoggingConfigurable):
    """The room manager's preloading (a base class of :class:`~.manager.RoomManager`)."""

    preload_rooms = Bool(
        True,
        config=True,
        help=(
            "Start loading a document's room when a client asks for its session "
            "(PUT /api/collaboration/session), so the room's websocket, which the client "
            "opens next, finds it loaded or loading: the first collaborator of a big "
            "notebook does not wait for the load after its own work between the two "
            "requests. False loads a room only when a websocket or server code opens it."
        ),
    )
    preload_free_delay = Float(
        10.0,
        config=True,
        help=(
            "Seconds a room loaded for a session request stays in memory when no client "
            "joins it (nothing holds it and it is saved) before it is freed."
        ),
    )
    progressive_sync_cells = Integer(
        50,
        config=True,
        help=(
            "A notebook with more cells than this is sent to the first browser that opens "
            "it in two parts: its metadata and first cells in the answer to the browser's "
            "first sync (so the page shows them after a short task instead of building "
            "every cell first), the other cells right after as an ordinary update. Later "
            "joiners and non-browser clients (Python clients, tools) get the whole notebook "
            "at once. 0 turns it off."
        ),
    )

    progressive_sync_output_bytes = Integer(
        1024 * 1024,
        config=True,
        help=(
            "With progressive_sync_cells on, the first part a browser gets holds at most "
            "this many bytes of outputs (stream text and output data): the outputs of the "
            "cells over it follow with the rest, so a notebook holding a big output shows "
            "its cells before that output is sent and rendered (the page renders 20 MB of "
            "output in several seconds). 0: outputs are never held back."
        ),
    )

    #: the loads in progress, by room id (the manager's)
    _loading: dict[str, asyncio.Future[DocumentRoom]]

    def _start_loading(self, room_id: str) -> asyncio.Future[DocumentRoom]:
        """The load of ``room_id`` in progress, started if there is none (the manager's)."""
        raise NotImplementedError

    def find_room(self, room_id: str) -> DocumentRoom | None:
        raise NotImplementedError

    def preload(self, room_id: str) -> None:
        """Start loading ``room_id`` unless it is live or loading already (session PUT)."""
        if not self.preload_rooms or self.find_room(room_id) is not None:
            return
        if room_id in self._loading:
            return
        try:
            loading = self._start_loading(room_id)
        except RuntimeError:  # the server is stopping
            return
        loading.add_done_callback(self._preloaded)

    def _preloaded(self, loading: asyncio.Future[DocumentRoom]) -> None:
        if loading.cancelled():
            return
        error = loading.exception()
        if error is not None:
            # The websocket's own load (a fresh attempt) reports it to its client.
            self.log.debug("collab_kernels: loading a room for a session failed: %r", error)
            return
        room = loading.result()
        if not room.clients:
            room.schedule_free(delay=self.preload_free_delay)

    async def finish_loads(self) -> None:
        """Wait for the loads in progress (server stop), cancelling those past STOP_TIMEOUT."""
        loads = list(self._loading.values())
        if not loads:
            return
        _done, pending = await asyncio.wait(loads, timeout=STOP_TIMEOUT)
        for loading in pending:
            self.log.warning("collab_kernels: server stop: cancelling a document load")
            loading.cancel()
        await asyncio.gather(*loads, return_exceptions=True)
