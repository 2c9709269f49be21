"""Watchers: y-websocket clients that each hold a pycrdt Doc, like a browser tab viewing a notebook.

A :class:`Watcher` connects to a room websocket, does the y-sync handshake (sends its step1
and an awareness state, answers the server's step1 with a step2, applies the server's step2
and every update), and records the arrival time of the frame after which the watched cell's
stdout text equals the expected text exactly.

Watchers run in worker processes (:func:`worker_main`), driven by the benchmark process over a
``multiprocessing`` pipe, so that the client side can use more than one core and its CPU time
is measured apart from the server's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import traceback
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
    """One viewer of one room."""

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
        self.trace: list | None = [] if os.environ.get("FANOUT_TRACE") else None

    def _check(self, now: float) -> None:
        if self.complete_at is not None or self.expected is None:
            return
        if self.view.length() == self.expected_len and self.view.text() == self.expected:
            self.complete_at = now

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
                            self.doc.apply_update(payload)
                            if sub == STEP2:
                                self.synced.set()
                            self._check(now)
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
        return {
            "index": self.index,
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


# ---------------------------------------------------------------- worker process


class _Worker:
    def __init__(self, conn, worker_id: int):
        self.conn = conn
        self.worker_id = worker_id
        self.watchers: list[Watcher] = []
        self.tasks: list[asyncio.Task] = []

    async def connect(
        self,
        url: str,
        count: int,
        first_index: int,
        cell_id: str,
        awareness: bool,
        concurrency: int = 16,
        timeout: float = 120,
    ) -> dict:
        sem = asyncio.Semaphore(concurrency)

        new: list[Watcher] = []

        async def one(i: int) -> None:
            w = Watcher(first_index + i, url, cell_id)
            self.watchers.append(w)
            new.append(w)
            async with sem:
                self.tasks.append(
                    asyncio.create_task(w.run(browser_like_state(w.index) if awareness else None))
                )
                await w.synced.wait()

        t = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout)
        except asyncio.TimeoutError:
            pass
        ok = sum(1 for w in new if w.synced.is_set() and w.error is None)
        errors = sorted({w.error for w in new if w.error})[:3]
        return {"synced": ok, "errors": errors, "seconds": time.monotonic() - t}

    async def quiet(self, quiet_for: float, timeout: float) -> dict:
        """Wait until no watcher received anything for ``quiet_for`` seconds."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            last = max((w.last_frame_at or 0 for w in self.watchers), default=0)
            if time.monotonic() - last >= quiet_for:
                break
            await asyncio.sleep(0.05)
        return {"seconds": time.monotonic() - start}

    async def executed(self, cell_id: str, timeout: float) -> dict:
        """Wait until the first watcher's document shows an execution count for the cell."""
        deadline = time.monotonic() + timeout
        w = self.watchers[0]
        view = CellView(w.doc, cell_id)
        while time.monotonic() < deadline and not w.closed.is_set():
            if view.execution_count() is not None:
                return {"ok": True}
            await asyncio.sleep(0.05)
        return {"ok": False}

    def mark(self, cell_id: str, expected: str) -> dict:
        for w in self.watchers:
            w.reset(expected=expected, cell_id=cell_id)
        self.cpu0 = time.process_time()
        return {"ok": True}

    async def wait(self, t0: float, timeout: float, idle: float) -> dict:
        deadline = t0 + timeout
        reason = "complete"
        while True:
            now = time.monotonic()
            if all(w.complete_at is not None or w.closed.is_set() for w in self.watchers):
                reason = "complete" if all(w.complete_at for w in self.watchers) else "closed"
                break
            if now > deadline:
                reason = "timeout"
                break
            last = max((w.last_frame_at or 0 for w in self.watchers), default=0)
            if now - t0 > idle and now - max(last, t0) > idle:
                reason = "idle"
                break
            await asyncio.sleep(0.02)
        return {
            "reason": reason,
            "client_cpu": time.process_time() - self.cpu0,
            "watchers": [w.result(t0) for w in self.watchers],
        }

    async def awareness(self, duration: float, renew_every: float) -> dict:
        """Every watcher renews its awareness state every ``renew_every`` seconds (random
        phase), as browsers do, for ``duration`` seconds."""
        for w in self.watchers:
            w.reset()
        cpu0 = time.process_time()

        async def renew(w: Watcher) -> None:
            await asyncio.sleep(random.uniform(0, renew_every))
            while True:
                try:
                    await w.send_awareness(browser_like_state(w.index))
                except Exception:
                    return
                await asyncio.sleep(renew_every)

        tasks = [asyncio.create_task(renew(w)) for w in self.watchers]
        await asyncio.sleep(duration)
        for t in tasks:
            t.cancel()
        return {
            "client_cpu": time.process_time() - cpu0,
            "frames": sum(w.frames for w in self.watchers),
            "awareness_frames": sum(w.awareness_frames for w in self.watchers),
        }

    async def close(self) -> dict:
        closing = [asyncio.ensure_future(w.ws.close()) for w in self.watchers if w.ws is not None]
        if closing:
            await asyncio.wait(closing, timeout=3)
        for t in closing + self.tasks:
            t.cancel()
        await asyncio.sleep(0)
        self.watchers.clear()
        self.tasks.clear()
        return {"ok": True}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, self.conn.recv)
            op = cmd.pop("op")
            try:
                if op == "connect":
                    res = await self.connect(**cmd)
                elif op == "quiet":
                    res = await self.quiet(**cmd)
                elif op == "executed":
                    res = await self.executed(**cmd)
                elif op == "mark":
                    res = self.mark(**cmd)
                elif op == "wait":
                    res = await self.wait(**cmd)
                elif op == "awareness":
                    res = await self.awareness(**cmd)
                elif op == "close":
                    res = await self.close()
                elif op == "exit":
                    await self.close()
                    self.conn.send({"ok": True})
                    return
                else:
                    res = {"error": f"unknown op {op}"}
            except Exception:
                res = {"error": traceback.format_exc()}
            self.conn.send(res)


def worker_main(conn, worker_id: int) -> None:
    """Entry point of a watcher worker process."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(_Worker(conn, worker_id).serve())
