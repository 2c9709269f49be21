"""Cheap watchers: raw websocket readers that take in every frame but apply nothing.

A pycrdt :class:`~.watcher.Watcher` costs about 1 ms of CPU to receive, apply and check a
219 kB update; 300 of them on the server's 2 cores measure the watchers, not the server
(bench/README.md). A :class:`RawWatcher` does what a viewer must do on the wire and no more:
the websocket handshake (by hand; offering permessage-deflate as Chromium does when
``FANOUT_WATCHER_COMPRESSION=deflate``, see below), a y-sync handshake (an empty state vector as
its step1, an empty update as its step2 answer to the server's step1), one awareness state
as the full watchers send, then it parses frame headers and records, for every document
update it receives after :meth:`reset`, the arrival time and a fingerprint.

It cannot tell from the bytes alone when the cell's text is complete. The full watchers can:
they apply every update and compare the cell's text with the expected text exactly, and they
record the same fingerprints. Since the server writes the same frame to every connection,
a raw watcher whose first *k* update fingerprints equal a full watcher's, *k* being the
update after which that full watcher's document was complete, holds the same document at
that point: its completion time is the arrival of its *k*-th update (:meth:`resolve`).
A raw watcher that got different frames (a server that sends each connection its own
updates) is reported incomplete rather than guessed at.

The fingerprint is the frame's length with a CRC of its first 32 and last 64 bytes (a Y
update's head names the writing client and clock, its tail carries the newest content and the
delete set), ``watcher.fingerprint``: a raw watcher keeps only those bytes of a message,
so taking in a 219 kB update costs it the socket reads and no copy.

With permessage-deflate (``--watcher-compression deflate``) a browser's share of the work is
inflating what it gets. A server that compresses each message once for everyone (ours:
``server_no_context_takeover``, the same compressed frame to every connection) sends every
watcher the same compressed bytes, so one watcher per process (``inflates``) inflates each
compressed message and records which plain message it holds (:data:`INFLATED`); the others
fingerprint the compressed bytes, take the message type from its first inflated bytes (a
deflate block's header and first symbols fit in the first kilobyte), and map their
fingerprints through :data:`INFLATED` when they are resolved. A server that compresses per
connection (context takeover) is refused at the handshake: its frames differ per connection
and could not be checked this way.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

from .watcher import MSG_AWARENESS, MSG_SYNC, STEP1, awareness_frame, fingerprint

__all__ = ["INFLATED", "RawWatcher", "client_frame", "compressed_fingerprint", "fingerprint"]

#: {fingerprint of a compressed message: fingerprint of the message it inflates to}, filled by
#: this process's inflating watcher
INFLATED: dict[tuple[int, int], tuple[int, int]] = {}

#: what a browser offers (Chromium: the client may use a smaller window; the server answers)
_DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

#: a y-sync step1 with an empty state vector, and a step2 carrying an empty update
_STEP1_EMPTY = bytes((MSG_SYNC, 0, 1, 0))
_STEP2_EMPTY = bytes((MSG_SYNC, 1, 2, 0, 0))


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A client-to-server frame. Clients must mask (RFC 6455, 5.3); the all-zero key is a
    valid key that leaves the payload as it is (servers do not judge the key)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


_HEAD, _TAIL = 32, 64
#: bytes kept of a compressed message's start: enough to inflate its first two bytes
_ZHEAD = 1024


def compressed_fingerprint(body: bytes | bytearray | memoryview) -> tuple[int, int]:
    """The fingerprint of a compressed message body: its length negated, so that it never
    equals a plain message's."""
    length, crc = fingerprint(body)
    return -length, crc


def _inflate(body: bytes, max_length: int = 0) -> bytes:
    """A permessage-deflate message body inflated on its own (no context takeover)."""
    if max_length:
        return zlib.decompressobj(-15).decompress(body, max_length)
    return zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff")


class _Protocol(asyncio.BufferedProtocol):
    """Handshake answer, then frames, read into one reused buffer and never assembled: of a
    data message only its length, first 32 and last 64 bytes are kept (all a fingerprint and
    the y-sync message type need); control frames (at most 125 bytes) are kept whole."""

    def __init__(self, owner: RawWatcher):
        self.owner = owner
        self.rbuf = bytearray(256 * 1024)
        self.rview = memoryview(self.rbuf)
        self.pre = b""  # the handshake answer so far
        self.upgraded = False
        self.hdr = bytearray()  # a frame header in progress
        self.remaining = -1  # payload bytes still to come; -1: reading a header
        self.opcode = 0
        self.fin = True
        # the data message in progress (across fragments)
        self.head = bytearray()
        self.tail = b""
        self.length = 0
        self.compressed = False  # the message in progress is compressed (RSV1)
        self.negotiated = False  # the server accepted permessage-deflate
        #: the whole compressed message in progress, for the inflating watcher
        self.body: bytearray | None = None
        self.control = bytearray()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.rview

    def buffer_updated(self, nbytes: int) -> None:
        now = time.monotonic()
        view = self.rview[:nbytes]
        pos = 0
        if not self.upgraded:
            self.pre += bytes(view)
            end = self.pre.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.pre[:end].decode("latin-1")
            rest = self.pre[end + 4 :]
            if not head.startswith("HTTP/1.1 101"):
                self._fail(f"handshake refused: {head.splitlines()[0] if head else '?'}")
                return
            extensions = [
                line.split(":", 1)[1].strip().lower()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-extensions:")
            ]
            if extensions:
                if not self.owner.deflate or not extensions[0].startswith("permessage-deflate"):
                    self._fail("the server negotiated an extension that was not offered")
                    return
                if "server_no_context_takeover" not in extensions[0]:
                    self._fail(
                        "the server compresses with context takeover: its frames differ per "
                        "connection, so the raw watchers cannot check them"
                    )
                    return
                self.negotiated = True
            self.upgraded = True
            self.opened.set_result(None)
            view, nbytes = memoryview(rest), len(rest)
        while pos < nbytes:
            if self.remaining < 0:  # a header
                hdr = self.hdr
                need = 2
                if len(hdr) >= 2:
                    size = hdr[1] & 0x7F
                    need = 4 if size == 126 else 10 if size == 127 else 2
                take = min(need - len(hdr), nbytes - pos)
                hdr += view[pos : pos + take]
                pos += take
                if len(hdr) < need or (need == 2 and hdr[1] & 0x7F >= 126):
                    continue
                if hdr[0] & 0x30 or (hdr[0] & 0x40 and not self.negotiated):
                    self._fail("a frame with RSV bits set that no extension allows")
                    return
                size = hdr[1] & 0x7F
                if size == 126:
                    size = struct.unpack_from("!H", hdr, 2)[0]
                elif size == 127:
                    size = struct.unpack_from("!Q", hdr, 2)[0]
                self.opcode, self.fin = hdr[0] & 0x0F, bool(hdr[0] & 0x80)
                if self.opcode in (0x1, 0x2):  # a data message's first frame
                    self.compressed = bool(hdr[0] & 0x40)
                    if self.compressed and self.owner.inflates:
                        self.body = bytearray()
                self.remaining = size
                hdr.clear()
                self.control.clear()
            take = min(self.remaining, nbytes - pos)
            if take:
                chunk = view[pos : pos + take]
                pos += take
                self.remaining -= take
                if self.opcode >= 0x8:
                    self.control += chunk
                else:
                    keep = _ZHEAD if self.compressed else _HEAD
                    if len(self.head) < keep:
                        self.head += chunk[: keep - len(self.head)]
                    if self.body is not None:
                        self.body += chunk
                    self.tail = (
                        bytes(chunk[-_TAIL:])
                        if take >= _TAIL
                        else (self.tail + bytes(chunk))[-_TAIL:]
                    )
                    self.length += take
            if self.remaining == 0:
                self.remaining = -1
                self._frame_done(now)

    def _frame_done(self, now: float) -> None:
        opcode = self.opcode
        if opcode == 0x9:  # ping
            self.write(client_frame(0xA, bytes(self.control)))
        elif opcode == 0x8:  # close
            self.write(client_frame(0x8, bytes(self.control[:2])))
            if self.transport is not None:
                self.transport.close()
        elif opcode < 0x8 and self.fin:
            head, tail, length = bytes(self.head), self.tail, self.length
            compressed, body = self.compressed, self.body
            self.head.clear()
            self.tail, self.length, self.compressed, self.body = b"", 0, False, None
            if compressed:
                self.owner.on_compressed(head, tail, length, now, body)
            else:
                self.owner.on_message(head, tail, length, now)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, why: str) -> None:
        self.owner.error = why
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc}"))
        self.owner.lost.set()


class RawWatcher:
    """One cheap viewer of one room (see the module docstring)."""

    kind = "raw"

    def __init__(
        self,
        index: int,
        url: str,
        *,
        until: tuple[int, int] | None = None,
        on_complete: Callable[[RawWatcher], None] | None = None,
        deflate: bool | None = None,
        inflates: bool = False,
    ):
        self.index = index
        self.url = url
        #: a fingerprint that completes this watcher live (fanout_clients_floor)
        self.until = until
        self.on_complete = on_complete
        #: offer permessage-deflate (default: ``FANOUT_WATCHER_COMPRESSION=deflate``)
        self.deflate = (
            os.environ.get("FANOUT_WATCHER_COMPRESSION") == "deflate"
            if deflate is None
            else deflate
        )
        #: inflate every compressed message and record it in :data:`INFLATED`
        self.inflates = inflates
        self.opened = asyncio.Event()
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.lost = asyncio.Event()
        self.error: str | None = None
        self.protocol: _Protocol | None = None
        self.awareness_clock = 0
        self.client_id = int.from_bytes(os.urandom(4), "big") >> 1
        self.reset()

    def reset(self, **_ignored: object) -> None:
        self.frames = 0
        self.bytes = 0
        self.update_frames = 0
        self.awareness_frames = 0
        self.times: list[float] = []
        self.fps: list[tuple[int, int]] = []
        self.complete_at: float | None = None
        self.last_frame_at: float | None = None

    def on_compressed(
        self, head: bytes, tail: bytes, length: int, now: float, body: bytearray | None
    ) -> None:
        """One whole compressed message: its first kilobyte, last 64 bytes and length (and
        all of it for the inflating watcher)."""
        fp = (-length, zlib.crc32(tail, zlib.crc32(head[:_HEAD])))
        try:
            if body is not None:
                plain = _inflate(bytes(body))
                INFLATED[fp] = fingerprint(plain)
                kind = plain[:2]
            else:
                kind = _inflate(head, 2)
        except zlib.error as e:
            self.error = self.error or f"a compressed message does not inflate: {e}"
            return
        self.on_message(kind, b"", length, now, fp)

    def on_message(
        self,
        head: bytes,
        tail: bytes,
        length: int,
        now: float,
        compressed_fp: tuple[int, int] | None = None,
    ) -> None:
        """One whole message: its first 32 and last 64 bytes and its length (for a
        compressed one: its first two inflated bytes, and its fingerprint)."""
        self.frames += 1
        self.bytes += length
        self.last_frame_at = now
        if len(head) < 2:
            return
        if head[0] == MSG_SYNC:
            if head[1] == STEP1:
                assert self.protocol is not None
                self.protocol.write(client_frame(0x2, _STEP2_EMPTY))
                return
            self.update_frames += 1
            fp = compressed_fp or (length, zlib.crc32(tail, zlib.crc32(head)))
            self.times.append(now)
            self.fps.append(fp)
            self.synced.set()
            if self.until is not None and fp == self.until and self.complete_at is None:
                self.complete_at = now
                if self.on_complete is not None:
                    self.on_complete(self)
        elif head[0] == MSG_AWARENESS:
            self.awareness_frames += 1

    async def run(self, awareness_state: dict | None) -> None:
        try:
            parts = urlsplit(self.url)
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_connection(
                lambda: _Protocol(self), parts.hostname, parts.port or 80
            )
            self.protocol = proto
            key = base64.b64encode(os.urandom(16)).decode()
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            proto.write(
                (
                    f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    f"Sec-WebSocket-Version: 13\r\n{_DEFLATE_OFFER if self.deflate else ''}\r\n"
                ).encode()
            )
            await asyncio.wait_for(proto.opened, 60)
            self.opened.set()
            proto.write(client_frame(0x2, _STEP1_EMPTY))
            if awareness_state is not None:
                await self.send_awareness(awareness_state)
            await self.lost.wait()
        except Exception as e:
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            self.closed.set()
            self.synced.set()

    async def send_awareness(self, state: dict) -> None:
        self.awareness_clock += 1
        if self.protocol is not None:
            frame = awareness_frame(self.client_id, self.awareness_clock, state)
            self.protocol.write(client_frame(0x2, frame))

    async def aclose(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.write(client_frame(0x8, struct.pack("!H", 1000)))
            self.protocol.transport.close()

    def resolve(self, reference: list[tuple[int, int]]) -> bool:
        """Complete at the arrival of the last of ``reference``'s updates, if this watcher
        received exactly those updates first (a full watcher's, up to its completion)."""
        k = len(reference)
        got = [INFLATED.get(fp, fp) if fp[0] < 0 else fp for fp in self.fps[:k]]
        if k and len(got) >= k and got == reference:
            self.complete_at = self.times[k - 1]
        return self.complete_at is not None

    def result(self, t0: float) -> dict:
        done = self.complete_at is not None
        return {
            "index": self.index,
            "kind": self.kind,
            "complete": done,
            "seconds": (self.complete_at - t0) if done else None,
            "frames": self.frames,
            "update_frames": self.update_frames,
            "bytes": self.bytes,
            "text_len": None,
            "tail": "",
            "first_diff": None,
            "trace": None,
            "deflate": bool(self.protocol is not None and self.protocol.negotiated),
            "error": self.error,
        }
