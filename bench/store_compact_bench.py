"""The update store alone: how long the event loop's appends wait while the store's thread
compacts a big room, and how long a ``reset`` of that room takes on the loop.

    .venv/bin/python bench/store_compact_bench.py --megabytes 65 --rounds 3 --code /tmp/old

Per tree (this checkout, and each ``--code`` checkout, interleaved round by round, each in a
subprocess of its own on a fresh store in a temporary directory): ``reset`` of a
``--megabytes`` state on the "loop" (the main thread), then ``--compactions`` compactions of
states of that size in the store's thread while the main thread appends a 200-byte update
every millisecond, as a room's coalesced edits would; prints the longest and the 99th
percentile append, and how long each compaction took. The quiet room's appends share the
database with the big room (one SQLite file for all rooms), which is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from collab_kernels.rooms.store import SQLiteUpdateStore

megabytes, compactions, directory = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
store = SQLiteUpdateStore(os.path.join(directory, "updates.sqlite"))
state = os.urandom(int(megabytes * (1 << 20)))
store.reset("quiet", "h", b"\0\0")

def appends(until):
    waits = []
    while not until():
        started = time.perf_counter()
        store.append("quiet", [os.urandom(200)])
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(0.001)
    waits.sort()
    return {"appends": len(waits), "max_ms": round(waits[-1], 2) if waits else None,
            "p99_ms": round(waits[int(len(waits) * 0.99)], 2) if waits else None}

started = time.perf_counter()
store.reset("big", "h", state, reclaim=False)
out = {"reset_ms": round((time.perf_counter() - started) * 1000, 1), "compactions": []}
for i in range(compactions):
    future = store.compact("big", state[: len(state) - i - 1], in_file=False)
    started = time.perf_counter()
    during = appends(future.done)
    during["compaction_ms"] = round((time.perf_counter() - started) * 1000, 1)
    out["compactions"].append(during)
store.close()
print(json.dumps(out))
"""


def run_one(code: str, megabytes: float, compactions: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="store-compact-bench-") as tmp:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, code, str(megabytes), str(compactions), tmp],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=65)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compactions", type=int, default=3)
    parser.add_argument("--code", action="append", default=[], help="another checkout")
    args = parser.parse_args()
    trees = [str(HERE.parent), *args.code]
    results: dict[str, list[dict]] = {tree: [] for tree in trees}
    for round_ in range(args.rounds):
        for tree in trees:
            result = run_one(tree, args.megabytes, args.compactions)
            results[tree].append(result)
            worst = max(c["max_ms"] or 0 for c in result["compactions"])
            p99 = max(c["p99_ms"] or 0 for c in result["compactions"])
            took = ", ".join(f"{c['compaction_ms']:.0f}" for c in result["compactions"])
            print(
                f"round {round_} {tree}: reset {result['reset_ms']:.0f} ms on the loop; appends "
                f"during compactions: max {worst:.1f} ms, p99 {p99:.1f} ms; compactions took "
                f"{took} ms; load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "store-compact-latest.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
