"""Watchers: y-websocket clients that each hold a pycrdt Doc, like a browser tab viewing a notebook.

A :class:`Watcher` connects to a room websocket, does the y-sync handshake (sends its step1
and an awareness state, answers the server's step1 with a step2, applies the server's step2
and every update), and records the arrival time of the frame after which the watched cell's
stdout text equals the expected text exactly.

Each update it receives after :meth:`Watcher.reset` is also recorded as a
:func:`fingerprint`, and the number of updates it had when its document was complete: the
reference by which the cheap :class:`~.raw_watcher.RawWatcher` instances, which apply
nothing, know when they were complete. Watchers run in worker processes (``worker.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from typing import Any

from pycrdt import Array, Doc, Map, Text, write_var_uint
from websockets.asyncio.client import connect

MSG_SYNC, MSG_AWARENESS = 0, 1
STEP1, STEP2, UPDATE = 0, 1, 2


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fingerprint(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(length, CRC-32 of the first 32 and last 64 bytes) of one message: what tells one
    update frame from another cheaply (a Y update's head names the writing client and clock,
    its tail the newest content and the delete set)."""
    return len(data), zlib.crc32(data[-64:], zlib.crc32(data[:32]))


def _frame(kind: int, sub: int | None, payload: bytes) -> bytes:
    head = bytes([kind]) if sub is None else bytes([kind, sub])
    return head + write_var_uint(len(payload)) + payload


def awareness_frame(client_id: int, clock: int, state: dict | None) -> bytes:
    """``[1][len][count=1, clientID, clock, JSON state]``: one client's awareness update."""
    body = json.dumps(state, separators=(",", ":")).encode() if state is not None else b"null"
    update = write_var_uint(1) + write_var_uint(client_id) + write_var_uint(clock)
    update += write_var_uint(len(body)) + body
    return _frame(MSG_AWARENESS, None, update)


def _output_text_len(output: Any) -> int:
    """Length of one output's stdout text, whatever shape a server stores it in."""
    if not isinstance(output, (Map, dict)):
        return 0
    if output.get("output_type") != "stream" or output.get("name", "stdout") != "stdout":
        return 0
    text = output.get("text")
    if isinstance(text, (Text, str)):
        return len(text)
    return len(_output_text(output))


def _output_text(output: Any) -> str:
    if isinstance(output, (Map, dict)):
        if output.get("output_type") != "stream" or output.get("name", "stdout") != "stdout":
            return ""
        text = output.get("text")
    else:
        return ""
    if isinstance(text, Array):
        text = text.to_py()
    if isinstance(text, list):
        return "".join(map(str, text))
    return str(text) if text is not None else ""


class CellView:
    """Reads one cell's stdout text out of a notebook Y document, cheaply enough to be asked
    after every update: lengths first (``len`` of a Y Text is constant time; outputs stored as
    plain JSON values are measured once and cached by index), the full text only when the
    length matches."""

    def __init__(self, doc: Doc, cell_id: str):
        self.doc = doc
        self.cell_id = cell_id
        self.cells = doc.get("cells", type=Array)
        self._fixed: list[int] = []  # text length per output index, for many-output cells
        self._fixed_sum = 0

    def _outputs(self) -> Array | None:
        for cell in self.cells:
            if isinstance(cell, Map) and cell.get("id") == self.cell_id:
                outputs = cell.get("outputs")
                return outputs if isinstance(outputs, Array) else None
        return None

    def length(self) -> int:
        outputs = self._outputs()
        if outputs is None:
            return -1
        n = len(outputs)
        if n <= 16:  # few outputs (merged streams): measure them all
            self._fixed, self._fixed_sum = [], 0
            return sum(_output_text_len(outputs[i]) for i in range(n))
        # Many outputs (one per fragment): earlier outputs no longer change, so measure only
        # the new ones and re-measure the previous last one.
        if n < len(self._fixed):  # cleared (re-execution): start over
            self._fixed, self._fixed_sum = [], 0
        start = max(len(self._fixed) - 1, 0)
        self._fixed_sum -= sum(self._fixed[start:])
        del self._fixed[start:]
        for i in range(start, n):
            length = _output_text_len(outputs[i])
            self._fixed.append(length)
            self._fixed_sum += length
        return self._fixed_sum

    def text(self) -> str:
        outputs = self._outputs()
        if outputs is None:
            return ""
        return "".join(_output_text(o) for o in outputs)

    def execution_count(self) -> Any:
        for cell in self.cells:
            if isinstance(cell, Map) and cell.get("id") == self.cell_id:
                return cell.get("execution_count")
        return None


class Watcher:
    """One viewer of one room, holding the whole document (a browser tab's work)."""

    kind = "full"

    def __init__(self, index: int, url: str, cell_id: str, expected: str | None = None):
        self.index = index
        self.url = url
        self.doc = Doc()
        self.view = CellView(self.doc, cell_id)
        self.expected = expected
        self.expected_len = len(expected) if expected is not None else -2
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.error: str | None = None
        self.ws = None
        self.awareness_clock = 0
        self.reset()

    def reset(self, expected: str | None = None, cell_id: str | None = None) -> None:
        if expected is not None:
            self.expected = expected
            self.expected_len = len(expected)
        if cell_id is not None:
            self.view = CellView(self.doc, cell_id)
        self.frames = 0
        self.bytes = 0
        self.update_frames = 0
        self.awareness_frames = 0
        self.complete_at: float | None = None
        self.last_frame_at: float | None = None
        self.fps: list[tuple[int, int]] = []
        #: updates received when the document was complete, and the last of them
        self.complete_frames: int | None = None
        self.complete_data: bytes | None = None
        self.trace: list | None = [] if os.environ.get("FANOUT_TRACE") else None

    def _check(self, now: float) -> None:
        if self.complete_at is not None or self.expected is None:
            return
        if self.view.length() == self.expected_len and self.view.text() == self.expected:
            self.complete_at = now
            self.complete_frames = len(self.fps)

    async def run(self, awareness_state: dict | None) -> None:
        try:
            # --watcher-compression: offer permessage-deflate as browsers do, or not
            offer = os.environ.get("FANOUT_WATCHER_COMPRESSION", "none")
            async with connect(
                self.url,
                compression="deflate" if offer == "deflate" else None,
                max_size=None,
                ping_interval=None,
                open_timeout=60,
                close_timeout=2,
            ) as ws:
                self.ws = ws
                await ws.send(_frame(MSG_SYNC, STEP1, self.doc.get_state()))
                if awareness_state is not None:
                    await self.send_awareness(awareness_state)
                async for data in ws:
                    now = time.monotonic()
                    if isinstance(data, str):
                        continue
                    self.frames += 1
                    self.bytes += len(data)
                    if self.trace is not None:
                        self.trace.append((now, len(data)))
                    self.last_frame_at = now
                    kind = data[0]
                    if kind == MSG_SYNC:
                        sub = data[1]
                        length, pos = read_var_uint(data, 2)
                        payload = data[pos : pos + length]
                        if sub == STEP1:
                            await ws.send(_frame(MSG_SYNC, STEP2, self.doc.get_update(payload)))
                        else:
                            self.update_frames += 1
                            self.fps.append(fingerprint(data))
                            self.doc.apply_update(payload)
                            if sub == STEP2:
                                self.synced.set()
                            self._check(now)
                            if self.complete_frames == len(self.fps) and self.complete_data is None:
                                self.complete_data = data
                    elif kind == MSG_AWARENESS:
                        self.awareness_frames += 1
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.closed.set()
            self.synced.set()

    async def send_awareness(self, state: dict) -> None:
        self.awareness_clock += 1
        if self.ws is not None:
            await self.ws.send(awareness_frame(self.doc.client_id, self.awareness_clock, state))

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def result(self, t0: float) -> dict:
        text_len = self.view.length()
        equal = self.complete_at is not None
        tail = ""
        first_diff = None
        if not equal:
            text = self.view.text()
            tail = text[-60:]
            if self.expected is not None:
                first_diff = next(
                    (
                        i
                        for i, (a, b) in enumerate(zip(text, self.expected, strict=False))
                        if a != b
                    ),
                    min(len(text), len(self.expected)),
                )
        k = self.complete_frames
        return {
            "index": self.index,
            "kind": self.kind,
            #: the updates up to completion (what the raw watchers are checked against)
            "reference": self.fps[:k] if k is not None else None,
            "complete": equal,
            "seconds": (self.complete_at - t0) if equal else None,
            "frames": self.frames,
            "update_frames": self.update_frames,
            "bytes": self.bytes,
            "text_len": text_len,
            "tail": tail,
            "first_diff": first_diff,
            "trace": [(round(t - t0, 4), n) for t, n in self.trace] if self.trace else None,
            "deflate": bool(self.ws is not None and self.ws.protocol.extensions),
            "complete_data": self.complete_data,
            "error": self.error,
        }


def browser_like_state(index: int) -> dict:
    """An awareness state shaped like JupyterLab's (user identity, no cursor)."""
    return {
        "user": {
            "username": f"viewer-{index}",
            "name": f"Viewer {index}",
            "display_name": f"Viewer {index}",
            "initials": "V",
            "color": f"var(--jp-collaborator-color{index % 7 + 1})",
        },
        "current": None,
    }
