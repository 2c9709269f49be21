"""A Jupyter server extension for benchmarks: how long the server's event loop stood still.

Loaded by a bench's server (``bench/`` on its PYTHONPATH, ``jpserver_extensions``
``{"loop_probe": true}``). A task on the server's event loop wakes every millisecond and
keeps every gap between two wake-ups longer than ``LOOP_PROBE_MIN_MS`` (default 3 ms):
during such a gap no edit was applied or broadcast and no request answered, in any room.
``GET /loop-probe`` (token required) returns the gaps kept since the previous call and
forgets them::

    {"gaps": [[start (time.time()), milliseconds, where], ...], "max_ms": ..., "seconds": ...}

``gc`` lists the garbage collections longer than 2 ms meanwhile (``[start, ms, generation,
thread]``): a collection holds the GIL, so every thread waits for it.

``LOOP_PROBE_DUMP_MS=50``: whenever the loop has not ticked for that long, faulthandler's
C thread writes every thread's stack to ``LOOP_PROBE_DUMP_FILE`` (``loop-dumps.txt`` in the
server's directory; "Current thread" is the one holding the GIL).

``where`` is filled when ``LOOP_PROBE_STACKS=1``: a watchdog thread looks at the loop's
thread whenever it has not ticked for 4 ms and notes its innermost frames (what the loop was
doing; a long C call shows as the Python line that made it), each as ``frames xN``: N
samples about a millisecond apart, so about N ms spent there; else it is ``""``.
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import gc
import os
import sys
import threading
import time
import traceback
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.ioloop import IOLoop

MIN_GAP = float(os.environ.get("LOOP_PROBE_MIN_MS", "3")) / 1000


class Probe:
    def __init__(self) -> None:
        self.gaps: list[list[Any]] = []
        self.since = time.time()
        self.last_tick = time.perf_counter()
        self.loop_thread = threading.get_ident()
        self.where: list[str] = []
        self.collections: list[list[Any]] = []
        self._gc_started = 0.0
        gc.callbacks.append(self.on_gc)

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        if took > 0.002:
            self.collections.append(
                [
                    time.time() - took,
                    round(took * 1000, 2),
                    info["generation"],
                    threading.current_thread().name,
                ]
            )

    async def tick(self) -> None:
        dump_after = float(os.environ.get("LOOP_PROBE_DUMP_MS", "0")) / 1000
        dumps = (
            open(os.environ.get("LOOP_PROBE_DUMP_FILE", "loop-dumps.txt"), "w")
            if dump_after
            else None
        )
        while True:
            if dumps is not None:  # a C thread, no GIL needed: shows who holds it
                dumps.write(f"\n=== armed {time.time():.3f}\n")
                dumps.flush()
                faulthandler.dump_traceback_later(dump_after, file=dumps)
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gap = now - self.last_tick
            if gap > MIN_GAP:
                counts = collections.Counter(self.where)  # samples 1 ms apart: ~ms each
                where = " | ".join(f"{frames} x{n}" for frames, n in counts.items())
                self.gaps.append([time.time() - gap, round(gap * 1000, 2), where])
            self.where = []
            self.last_tick = now

    def watch(self) -> None:
        """In a thread: note what the loop's thread runs while it has not ticked for 4 ms."""
        while True:
            time.sleep(0.001)
            if time.perf_counter() - self.last_tick < 0.004:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is not None:
                stack = traceback.extract_stack(frame)[-4:]
                self.where.append(
                    " < ".join(
                        f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"
                        for f in reversed(stack)
                    )
                )

    def take(self) -> dict[str, Any]:
        gaps, self.gaps = self.gaps, []
        collections, self.collections = self.collections, []
        now = time.time()
        result = {
            "gaps": gaps,
            "gc": collections,
            "max_ms": max((g[1] for g in gaps), default=0.0),
            "seconds": now - self.since,
        }
        self.since = now
        return result


class ProbeHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(self.settings["loop_probe"].take())


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "loop_probe"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    if os.environ.get("LOOP_PROBE_SWITCH_MS"):  # experiments: Python's GIL switch interval
        sys.setswitchinterval(float(os.environ["LOOP_PROBE_SWITCH_MS"]) / 1000)
    probe = Probe()
    serverapp.web_app.settings["loop_probe"] = probe
    serverapp.web_app.add_handlers(".*$", [("/loop-probe", ProbeHandler)])

    def start() -> None:
        probe.loop_thread = threading.get_ident()
        probe.last_tick = time.perf_counter()
        serverapp.loop_probe_task = asyncio.ensure_future(probe.tick())
        if os.environ.get("LOOP_PROBE_STACKS") == "1":
            threading.Thread(target=probe.watch, name="loop-probe", daemon=True).start()

    IOLoop.current().add_callback(start)
