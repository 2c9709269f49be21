"""Server-to-client websocket frames built once and written to every connection.

Why not ``WebSocketHandler.write_message``: for each call, tornado's
``WebSocketProtocol13.write_message`` / ``_write_frame`` packs a frame header for that one
connection, copies the payload into a new ``header + payload`` bytes object, writes it to the
connection's ``IOStream`` and wraps the stream's future in a new coroutine task (only to turn
``StreamClosedError`` into ``WebSocketClosedError``). A room update sent to 1000 watchers paid
that 1000 times: about 80 us of server CPU per frame per watcher (bench/README.md). Tornado has
no public way to write an already encoded frame, nor to send one message to many connections.

What makes sharing possible: a frame from server to client is never masked (RFC 6455, 5.1), so
without per-message compression the bytes on the wire are the same for every connection. The
smallest replacement is therefore:

- :class:`Frame`: one binary message; its wire encoding (FIN + binary opcode, 7/16/64-bit
  length, payload) is built at most once, on first use, and shared by every connection;
- :class:`WebsocketWriter`: writes a :class:`Frame` to one tornado websocket. For a
  connection that negotiated no compression it hands the shared bytes to the connection's
  ``IOStream.write`` and returns that future (it resolves once the socket took the bytes: the
  same back-pressure signal ``write_message`` gives). A connection with permessage-deflate
  keeps ``write_message`` (its frames depend on its own compressor's state), as does anything
  that does not look like tornado's server-side protocol 13.

Whole frames go into the stream's buffer, so they never interleave with tornado's own pings
or close frame. Tornado's per-connection byte counters (``_message_bytes_out``) are not
updated for shared frames; nothing in jupyter_server reads them.
"""

from __future__ import annotations

import struct
from asyncio import Future
from typing import Any

from tornado.iostream import IOStream
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

#: FIN bit plus the binary opcode: a complete, unfragmented binary message.
_FIN_BINARY = 0x82


def encode_binary_frame(payload: bytes) -> bytes:
    """The unmasked wire encoding of one binary websocket message carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((_FIN_BINARY, n))
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", _FIN_BINARY, 126, n)
    else:
        head = struct.pack("!BBQ", _FIN_BINARY, 127, n)
    return head + payload


class Frame:
    """One server-to-client binary message, encoded for the wire at most once."""

    __slots__ = ("_wire", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._wire: bytes | None = None

    def __len__(self) -> int:
        return len(self.payload)

    def __repr__(self) -> str:
        return f"Frame({len(self.payload)} bytes)"

    @property
    def wire(self) -> bytes:
        """The frame as sent on an uncompressed connection (built on first use)."""
        if self._wire is None:
            self._wire = encode_binary_frame(self.payload)
        return self._wire

    @classmethod
    def of(cls, data: bytes | Frame) -> Frame:
        return data if isinstance(data, Frame) else cls(data)


class WebsocketWriter:
    """Writes :class:`Frame` objects to one tornado websocket (see the module docstring).

    Call it with a frame; it returns a future that resolves once the connection's socket took
    the bytes, or raises ``WebSocketClosedError`` / ``StreamClosedError`` when the connection is
    gone.
    """

    def __init__(self, handler: WebSocketHandler) -> None:
        self._handler = handler
        self._stream: IOStream | None = None
        self._decided = False

    @property
    def shares_frames(self) -> bool | None:
        """Whether shared frame bytes are written (None until the first write decides)."""
        return (self._stream is not None) if self._decided else None

    def _shared_stream(self, connection: Any) -> IOStream | None:
        """The stream to write shared frames to, or None when this connection needs
        tornado's own framing (compression, client-side masking, an unknown protocol)."""
        if not self._decided:
            self._decided = True
            stream = getattr(connection, "stream", None)
            if (
                isinstance(connection, WebSocketProtocol13)
                and not connection.mask_outgoing
                # tornado exposes no public flag for a negotiated permessage-deflate; a
                # missing attribute (another tornado) falls back to write_message.
                and getattr(connection, "_compressor", True) is None
                and isinstance(stream, IOStream)
            ):
                self._stream = stream
        return self._stream

    def __call__(self, frame: Frame) -> Future[None]:
        connection = self._handler.ws_connection
        if connection is None or connection.is_closing():
            raise WebSocketClosedError()
        stream = self._shared_stream(connection)
        if stream is None:
            return self._handler.write_message(frame.payload, binary=True)
        return stream.write(frame.wire)
