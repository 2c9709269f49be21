"""Watcher worker processes: each holds some full watchers and some raw ones, driven by the
benchmark process over a ``multiprocessing`` pipe, so that the client side can use more than
one core and its CPU time is measured apart from the server's.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import traceback

from .raw_watcher import INFLATED, RawWatcher
from .watcher import CellView, Watcher, browser_like_state


class _Worker:
    def __init__(self, conn, worker_id: int):
        self.conn = conn
        self.worker_id = worker_id
        self.watchers: list[Watcher | RawWatcher] = []
        self.tasks: list[asyncio.Task] = []

    async def connect(
        self,
        url: str,
        count: int,
        first_index: int,
        cell_id: str,
        awareness: bool,
        full: int = -1,
        concurrency: int = 16,
        timeout: float = 120,
    ) -> dict:
        """Connect ``count`` watchers: the first ``full`` of them pycrdt ones (all: -1), the
        others raw."""
        sem = asyncio.Semaphore(concurrency)

        new: list[Watcher | RawWatcher] = []

        async def one(i: int) -> None:
            w: Watcher | RawWatcher
            if full < 0 or i < full:
                w = Watcher(first_index + i, url, cell_id)
            else:
                # with compression, the first raw watcher of this process inflates for all
                inflates = not any(isinstance(x, RawWatcher) and x.inflates for x in self.watchers)
                w = RawWatcher(first_index + i, url, inflates=inflates)
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
        assert isinstance(w, Watcher), "the first watcher is a full one"
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
        full = [w for w in self.watchers if isinstance(w, Watcher)]
        while True:
            now = time.monotonic()
            if all(w.complete_at is not None or w.closed.is_set() for w in full):
                reason = "complete" if all(w.complete_at for w in full) else "closed"
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
            "watchers": [w.result(t0) for w in full],
        }

    async def resolve(self, t0: float, reference: list | None, timeout: float) -> dict:
        """The raw watchers' results: each is complete when its first updates are exactly a
        full watcher's ``reference`` (its updates up to completion); waits up to ``timeout``
        for the raw watchers to have received that many."""
        raw = [w for w in self.watchers if isinstance(w, RawWatcher)]
        ref = [tuple(fp) for fp in reference or []]
        deadline = time.monotonic() + timeout
        while ref and time.monotonic() < deadline:
            if all(len(w.fps) >= len(ref) or w.closed.is_set() for w in raw):
                break
            await asyncio.sleep(0.01)
        for w in raw:
            w.resolve(ref)
        return {"watchers": [w.result(t0) for w in raw]}

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
        closing = [asyncio.ensure_future(w.aclose()) for w in self.watchers]
        if closing:
            await asyncio.wait(closing, timeout=3)
        for t in closing + self.tasks:
            t.cancel()
        await asyncio.sleep(0)
        self.watchers.clear()
        self.tasks.clear()
        INFLATED.clear()
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
                elif op == "resolve":
                    res = await self.resolve(**cmd)
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
