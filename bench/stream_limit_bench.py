"""The output limit's cut of a flooding cell, with and without what it knew (issue 15.5).

    .venv/bin/python bench/stream_limit_bench.py --rounds 6

A cell's one stream output gets a 4 MB ASCII chunk (the newest part of a longer one, as the
execution stage writes it) per transaction, on top of the 4 MB the last cut kept, and
``repair.trim_cell_streams`` cuts it back: once reading the whole ``Text`` (no memo: what it
does for any other cell) and once from ``repair.StreamFacts`` (the memo the room keeps).
Rounds alternate. Also times the first checkpoint of a 65 MB file, through the manager on
the loop (``create_checkpoint``) and through ``offload.first_checkpoint`` in a thread, as
the longest gap of a 0.5 ms ticker on the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.largefilemanager import (
    AsyncLargeFileManager,
    LargeFileManager,
)
from pycrdt import Array, Doc, Map, Text

from collab_kernels.rooms import offload, repair

LIMIT = 5_000_000
KEEP = repair.kept_bytes(LIMIT)


def trim_times(memo: dict[str, Any] | None, chunks: int) -> list[float]:
    doc: Doc[Any] = Doc()
    cells = doc.get("cells", type=Array)
    with doc.transaction():
        cells.append(Map({"cell_type": "code", "id": "c", "source": Text(""), "outputs": Array()}))
        cells[0]["outputs"].append(
            Map({"output_type": "stream", "name": "stdout", "text": Text("")})
        )
    cell = cells[0]
    chunk = ("y" * 99 + "\n") * (KEEP // 100)
    times = []
    for _ in range(chunks):
        with doc.transaction():
            text = cell["outputs"][0]["text"]
            text += chunk
            started = time.perf_counter()
            known = {} if memo is None else {"memo": memo, "appended": len(chunk)}
            repair.trim_cell_streams(cell, LIMIT, keep=KEEP, dropped_before=1_000_000, **known)
            times.append((time.perf_counter() - started) * 1e3)
    return times[2:]  # the first cuts read in both cases


async def _ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.0005)
        now = time.perf_counter()
        gaps.append((now - last) * 1e3)
        last = now


async def checkpoint_gaps(rounds: int, megabytes: int) -> dict[tuple[str, str], list[float]]:
    root = tempfile.mkdtemp()
    path = os.path.join(root, "a.ipynb")
    with open(path, "wb") as f:
        f.write(b"x" * (megabytes << 20))
    out: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for cls in (LargeFileManager, AsyncLargeFileManager):
                for way in ("manager", "thread"):
                    cm = cls(root_dir=root)
                    shutil.rmtree(os.path.join(root, ".ipynb_checkpoints"), ignore_errors=True)
                    gaps: list[float] = []
                    stop = asyncio.Event()
                    ticker = asyncio.create_task(_ticker(gaps, stop))
                    await asyncio.sleep(0.01)
                    gaps.clear()
                    if way == "manager":
                        if not await ensure_async(cm.checkpoints.list_checkpoints("a.ipynb")):
                            await ensure_async(cm.create_checkpoint("a.ipynb"))
                    else:
                        checkpoints = offload.stock_checkpoints(cm)
                        await asyncio.to_thread(
                            offload.first_checkpoint, checkpoints, "a.ipynb", path
                        )
                    await asyncio.sleep(0.005)
                    stop.set()
                    await ticker
                    out.setdefault((cls.__name__, way), []).append(max(gaps))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--megabytes", type=int, default=65)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[float]] = {"read": [], "memo": []}
    for _ in range(args.rounds):
        results["read"] += trim_times(None, 8)
        results["memo"] += trim_times({}, 8)
    for name, values in results.items():
        values.sort()
        print(
            f"cut of a 4 MB chunk on ~8 MB, {name}: median {statistics.median(values):.2f} ms"
            f", p90 {values[int(len(values) * 0.9)]:.2f}, max {values[-1]:.2f} ms"
        )
    for (manager, way), gaps in asyncio.run(checkpoint_gaps(args.rounds, args.megabytes)).items():
        print(
            f"first checkpoint, {manager}, {way}: longest loop gap median "
            f"{statistics.median(gaps):.1f} ms, max {max(gaps):.1f} ms"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
