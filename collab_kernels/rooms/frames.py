"""Server-to-client websocket frames built once and written to every connection.

Why not ``WebSocketHandler.write_message``: for each call, tornado's
``WebSocketProtocol13.write_message`` / ``_write_frame`` packs a frame header for that one
connection, copies the payload into a new ``header + payload`` bytes object, writes it to the
connection's ``IOStream`` and wraps the stream's future in a new coroutine task (only to turn
``StreamClosedError`` into ``WebSocketClosedError``). A room update sent to 1000 watchers paid
that 1000 times: about 80 us of server CPU per frame per watcher (bench/README.md). Tornado has
no public way to write an already encoded frame, nor to send one message to many connections.

What makes sharing possible: a frame from server to client is never masked (RFC 6455, 5.1), so
without per-message compression the bytes on the wire are the same for every connection; with
permessage-deflate and no context takeover (each message compressed on its own, which the
room handler negotiates) so are the compressed bytes, for every connection of the same window
size. The smallest replacement is therefore:

- :class:`Frame`: one binary message; its wire encoding (FIN + binary opcode, 7/16/64-bit
  length, payload) is built at most once, on first use, and shared by every connection; so
  is its compressed encoding (RSV1 set) for the connections that negotiated compression;
- :class:`WebsocketWriter`: writes a :class:`Frame` to one tornado websocket. It writes the
  shared bytes to the connection's socket when nothing waits in the connection's
  ``IOStream`` and returns None when the socket took them all (the usual case); otherwise
  it hands what is left to ``IOStream.write`` and returns that future (it resolves once
  the socket took the bytes: the same back-pressure signal ``write_message`` gives).
  A connection that negotiated permessage-deflate the room's way (``deflate.py``: each
  message compressed on its own) gets the frame's compressed encoding, also built once and
  shared; one compressed otherwise (``ServerApp.websocket_compression_options`` without
  ``RoomManager.websocket_deflate_threshold``) keeps ``write_message``, as does any
  connection whose protocol is not the room handler's :class:`.deflate.RoomProtocol`.

Whole frames go into the stream's buffer, so they never interleave with tornado's own pings
or close frame. The clients' byte bounds (``clients.py``) count a frame's uncompressed size
for every connection, compressed or not: an upper bound of what waits for it. Tornado's
per-connection byte counters (``_message_bytes_out``) are not updated for shared frames;
nothing in jupyter_server reads them.
"""

from __future__ import annotations

import struct
from asyncio import Future
from typing import Any

from tornado.iostream import IOStream
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .deflate import Deflate, RoomProtocol, deflate_message

#: FIN bit plus the binary opcode: a complete, unfragmented binary message.
_FIN_BINARY = 0x82
#: ...with RSV1, which marks a permessage-deflate compressed message (RFC 7692, 6)
_FIN_RSV1_BINARY = 0xC2


def _head(first: int, n: int) -> bytes:
    if n < 126:
        return bytes((first, n))
    if n <= 0xFFFF:
        return struct.pack("!BBH", first, 126, n)
    return struct.pack("!BBQ", first, 127, n)


def _encode(first: int, payload: bytes | memoryview) -> bytes:
    return _head(first, len(payload)) + payload


def encode_binary_frame(payload: bytes | memoryview) -> bytes:
    """The unmasked wire encoding of one binary websocket message carrying ``payload``."""
    return _encode(_FIN_BINARY, payload)


def encode_deflated_frame(payload: bytes | memoryview, level: int, wbits: int) -> bytes | None:
    """The wire encoding of ``payload`` as one compressed message, or None if compressing
    does not make it smaller."""
    body = deflate_message(payload, level, wbits)
    return _encode(_FIN_RSV1_BINARY, body) if len(body) < len(payload) else None


class Frame:
    """One server-to-client binary message, encoded for the wire at most once."""

    __slots__ = ("_deflated", "_wire", "payload")

    def __init__(self, payload: bytes | memoryview) -> None:
        self.payload = payload
        self._wire: bytes | None = None
        #: (level, window bits) -> compressed wire bytes, or None: not smaller compressed
        self._deflated: dict[tuple[int, int], bytes | None] | None = None

    def __len__(self) -> int:
        return len(self.payload)

    def __repr__(self) -> str:
        return f"Frame({len(self.payload)} bytes)"

    @classmethod
    def joined(cls, pieces: list[bytes]) -> Frame:
        """The message made of ``pieces`` (exact ``bytes``), encoded for the wire in one
        join, its payload a view of the wire bytes (one copy of a 65 MB first sync, not
        two): in a worker thread for a big one (``bytes.join`` of big ``bytes`` gives the
        GIL back; on the loop, a 65 MB first sync's two copies held it 80 ms)."""
        head = _head(_FIN_BINARY, sum(len(piece) for piece in pieces))
        wire = b"".join([head, *pieces])
        frame = cls(memoryview(wire)[len(head) :])
        frame._wire = wire
        return frame

    @property
    def wire(self) -> bytes:
        """The frame as sent on an uncompressed connection (built on first use)."""
        if self._wire is None:
            self._wire = encode_binary_frame(self.payload)
        return self._wire

    def deflated_wire(self, deflate: Deflate) -> bytes:
        """The frame as sent on a connection with permessage-deflate: compressed once per
        window size (on first use) if it has from ``deflate.threshold`` to ``deflate.limit``
        bytes and compressing makes it smaller, else the uncompressed :attr:`wire`."""
        if not deflate.threshold <= len(self.payload) <= deflate.limit:
            return self.wire
        key = (deflate.level, deflate.wbits)
        if self._deflated is None:
            self._deflated = {}
        if key not in self._deflated:
            self._deflated[key] = encode_deflated_frame(self.payload, *key)
        return self._deflated[key] or self.wire

    @classmethod
    def of(cls, data: bytes | Frame) -> Frame:
        return data if isinstance(data, Frame) else cls(data)


class WebsocketWriter:
    """Writes :class:`Frame` objects to one tornado websocket (see the module docstring).

    Call it with a frame; it returns None when the connection's socket took the bytes at
    once, else a future that resolves once it took them, or raises ``WebSocketClosedError``
    / ``StreamClosedError`` when the connection is gone. ``deflate``: how to compress for
    this connection if it negotiated permessage-deflate with the room handler
    (``deflate.accept_offer``).
    """

    def __init__(self, handler: WebSocketHandler, deflate: Deflate | None = None) -> None:
        self._handler = handler
        self._offered = deflate
        self._deflate: Deflate | None = None
        self._stream: IOStream | None = None
        self._decided = False

    @property
    def shares_frames(self) -> bool | None:
        """Whether shared frame bytes are written (None until the first write decides)."""
        return (self._stream is not None) if self._decided else None

    @property
    def compresses(self) -> bool:
        """Whether this connection gets the shared compressed frames."""
        return self._deflate is not None

    def _shared_stream(self, connection: Any) -> IOStream | None:
        """The stream to write shared frames to, or None when this connection needs
        tornado's own framing (its own compression, client-side masking, another protocol)."""
        if not self._decided:
            self._decided = True
            stream = getattr(connection, "stream", None)
            if isinstance(connection, RoomProtocol) and isinstance(stream, IOStream):
                if not connection.deflated:
                    self._stream = stream
                elif connection.shared_deflate and self._offered is not None:
                    self._stream = stream
                    self._deflate = self._offered
        return self._stream

    def __call__(self, frame: Frame) -> Future[None] | None:
        connection = self._handler.ws_connection
        if connection is None or connection.is_closing():
            raise WebSocketClosedError()
        stream = self._shared_stream(connection)
        if stream is None:
            return self._handler.write_message(bytes(frame.payload), binary=True)
        if self._deflate is not None:
            return self._write(stream, frame.deflated_wire(self._deflate))
        return self._write(stream, frame.wire)

    @staticmethod
    def _write(stream: IOStream, data: bytes) -> Future[None] | None:
        """Write ``data``: to the socket itself while tornado has nothing waiting for it
        (None: the socket took it all), the rest through ``stream.write``.

        ``IOStream.write`` makes a future, a done callback and a loop callback for each
        write, which a room update sent to 1000 watchers paid 1000 times. Order is kept:
        the socket is written to only when the stream's buffer is empty, and what the
        socket did not take goes first into that buffer, before anything tornado writes
        later. A TLS stream (``SSLIOStream``) always goes through tornado.
        """
        if type(stream) is IOStream and not stream.writing() and not stream.closed():
            try:
                sent = stream.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # tornado finds the same error on the socket and closes it
                return stream.write(data)
            if sent == len(data):
                return None
            if sent:
                return stream.write(memoryview(data)[sent:])
        return stream.write(data)
