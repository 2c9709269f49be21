"""The iopub socket's reader: every message the socket holds, at each wake-up of the loop.

Why not pyzmq's ``ZMQStream`` here (it stays on shell, control and stdin, which also send):
for each message it receives, a ``ZMQStream`` reads the socket's events twice through
``PollEvent`` flags, tests its send queue under a lock, checks the callback's result for an
awaitable and schedules one more loop callback when another message is waiting. On 2 cores
that was about 20 us per message besides the receive itself, and a kernel that prints 2000
lines sends 2000 messages. ``recv_multipart`` itself builds an enum member per part (18 us
for a seven-part message, against 12 us with plain ints). iopub only receives, so the
reader needs none of it: on each readable event it receives while the socket's events (an
int) show a message, at most ``limit`` at a time.

The ZMQ file descriptor is edge-triggered: it signals a change, not a state. The reader
stops only when the events show nothing to receive (reading them also resets the
descriptor), so a message that arrives later signals again; when it stops at ``limit``
with messages left, it continues on the loop's next iteration, after whatever else is
ready.
"""

from __future__ import annotations

import asyncio
import logging
import typing as t

import zmq

#: Messages handled per wake-up before other callbacks get their turn.
DEFAULT_LIMIT = 200

# Plain ints: pyzmq's constants are enums, and each operation on one builds a new member.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)


class DrainingReader:
    """Calls ``on_recv(frames)`` for each message received on ``socket``, on the loop.

    The part of ``ZMQStream``'s interface the shared client uses: ``socket``,
    ``on_recv(None)`` (stop), ``flush()``, ``closed()`` and ``close(linger)``.
    """

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        on_recv: t.Callable[[list[bytes]], None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        log: logging.Logger | logging.LoggerAdapter[t.Any],
        limit: int = DEFAULT_LIMIT,
    ):
        self.socket: zmq.Socket[bytes] = socket
        self.limit = limit
        self.log = log
        self._callback: t.Callable[[list[bytes]], None] | None = on_recv
        self._loop = loop or asyncio.get_event_loop()
        self._fd: int = t.cast(int, socket.get(zmq.FD))
        self._continuing = False
        self._loop.add_reader(self._fd, self._drain)
        # A message may already be queued (its edge came before the reader was added).
        self._continue_soon()

    def _continue_soon(self) -> None:
        if not self._continuing:
            self._continuing = True
            self._loop.call_soon(self._continue)

    def _continue(self) -> None:
        self._continuing = False
        self._drain()

    def _drain(self) -> int:
        """Receive and hand over up to ``limit`` messages; how many were handed over."""
        socket = self.socket
        recv, get = socket.recv, socket.get
        count = 0
        while self._callback is not None and not socket.closed:
            try:
                if not t.cast(int, get(_EVENTS)) & _POLLIN:
                    return count
                # the parts of a message arrive together: none of these receives waits
                frames: list[bytes] = [recv(_NOBLOCK)]
                while get(_RCVMORE):
                    frames.append(recv(_NOBLOCK))
            except zmq.Again:  # the events said a message; the receive did not find one
                return count
            except zmq.ZMQError as e:  # closed behind our back (context terminated)
                self.log.debug("iopub reader stopped: %s", e)
                self._stop()
                return count
            try:
                self._callback(frames)
            except Exception:
                self.log.error("Uncaught exception handling an iopub message", exc_info=True)
            count += 1
            if count >= self.limit:
                self._continue_soon()
                return count
        return count

    def flush(self) -> int:
        """Hand over, now, what the socket already received; how many messages."""
        total = 0
        while self._callback is not None and not self.socket.closed:
            count = self._drain()
            total += count
            if count < self.limit:
                break
        return total

    def on_recv(self, callback: t.Callable[[list[bytes]], None] | None) -> None:
        """Set the callback; ``None`` stops reading."""
        if callback is None:
            self._stop()
        elif not self.socket.closed:
            if self._callback is None:
                self._loop.add_reader(self._fd, self._drain)
                self._continue_soon()
            self._callback = callback

    def _stop(self) -> None:
        if self._callback is not None:
            self._callback = None
            self._loop.remove_reader(self._fd)

    def closed(self) -> bool:
        return self.socket.closed

    def close(self, linger: int | None = None) -> None:
        self._stop()
        if not self.socket.closed:
            self.socket.close(linger=linger)


__all__ = ["DEFAULT_LIMIT", "DrainingReader"]
