"""One collaborator's connection to a room: a bounded send queue drained by one writer.

A client whose queue holds more than ``max_queue`` frames or ``max_bytes`` bytes (queued, or
handed to a socket that has not taken them yet) is closed with 1013: it reconnects and
resyncs, so a stalled viewer never slows the others down nor grows server memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import protocol
from .frames import Frame

if TYPE_CHECKING:  # pragma: no cover
    from .fanout import Fanout


class RoomClosed(Exception):
    """The room was closed (file deleted, server stopping) while something waited on it."""


class RoomClient:
    """One websocket connected to a room.

    ``write(frame)`` sends one :class:`~.frames.Frame` (the same object goes to every client of
    a broadcast; ``frames.WebsocketWriter`` writes its shared wire bytes) and returns an
    awaitable that resolves once the transport accepted it; ``close(code, reason)`` closes the
    websocket. The client owns a bounded queue drained by a single writer task.
    """

    def __init__(
        self,
        *,
        write: Callable[[Frame], Awaitable[Any] | None],
        close: Callable[[int, str], None],
        can_write: bool,
        name: str,
        max_queue: int,
        log: logging.Logger,
        max_bytes: int = 0,
    ):
        self._write = write
        #: bytes that may wait for this client (queued or not yet taken by the socket); 0: any
        self.max_bytes = max_bytes
        self._queued_bytes = 0
        self._inflight_bytes = 0
        self._close = close
        self.can_write = can_write
        self.name = name
        self.max_queue = max_queue
        self.log = log
        self.room: Fanout | None = None
        self.closed = False
        #: jupyter_server's User of the connection, and what it may do (for presence)
        self.user: Any = None
        self.can_execute = False
        #: a browser: may get a big notebook's first cells before the rest (progressive.py)
        self.progressive = False
        self.awareness_ids: set[int] = set()
        self.dropped_updates = 0
        self.refused_awareness = 0
        self._queue: collections.deque[Frame] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_write: asyncio.Future[Any] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())

    def send(self, data: bytes | Frame) -> None:
        """Queue a frame; close the client if its queue is full."""
        if self.closed:
            return
        frame = Frame.of(data)
        pending = self.pending_bytes
        if len(self._queue) >= self.max_queue or (
            self.max_bytes and pending and pending + len(frame) > self.max_bytes
        ):
            where = self.room.describe() if self.room else "?"
            self.log.warning(
                "collab_kernels: closing %s on %s: it fell behind (%d frames, %d bytes waiting); "
                "it will reconnect and resync",
                self.name,
                where,
                len(self._queue),
                pending,
            )
            self.close(protocol.CLOSE_TRY_AGAIN_LATER, "send queue overflow")
            return
        if not self._queue and (self._last_write is None or self._last_write.done()):
            # Nothing queued or in flight: write now rather than one loop iteration later
            # in the writer task (the end of a cell is on every collaborator's critical path).
            try:
                self._track(self._write(frame), len(frame))
            except Exception as e:  # the socket went away under us
                self.log.debug("collab_kernels: writing to %s failed: %s", self.name, e)
                self.close(protocol.CLOSE_GOING_AWAY, "")
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for this client plus those its socket has not taken yet."""
        inflight = self._inflight_bytes
        if self._last_write is None or self._last_write.done():
            inflight = 0
        return self._queued_bytes + inflight

    def _track(self, result: Awaitable[Any] | None, size: int) -> None:
        """Remember the last write's future, so the writer task waits for it (back-pressure);
        ``size`` bytes stay pending until it resolves. A write the socket already took (the
        usual case) leaves nothing to track; one that already failed raises."""
        if result is None:
            self._last_write = None
            self._inflight_bytes = 0
            return
        future = asyncio.ensure_future(result)
        if future.done():
            self._last_write = None
            self._inflight_bytes = 0
            error = None if future.cancelled() else future.exception()
            if error is not None:
                raise error
            return
        self._inflight_bytes = size
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
                size = self._queued_bytes
                self._queued_bytes = 0
                while self._queue:
                    last = self._write(self._queue.popleft())
                self._track(last, size)
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
        self._queued_bytes = self._inflight_bytes = 0
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


def same_user(a: RoomClient, b: RoomClient) -> bool:
    """Whether two connections belong to the same (named) user."""
    name_a = getattr(a.user, "username", None)
    return name_a is not None and name_a == getattr(b.user, "username", None)
