"""What a user feels while a room saves a big notebook: the server's longest event-loop gap
and the edit latency in another room.

    .venv/bin/python bench/room_save_bench.py --megabytes 65 --cells 50
    .venv/bin/python bench/room_save_bench.py --code /tmp/old-checkout   # compare a checkout

A `jupyter server` subprocess (flood_bench's: loopback, its own Jupyter dirs, ``--code``
puts another checkout's ``collab_kernels`` first on its PYTHONPATH) with
``bench/loop_probe.py`` loaded: a task on the server's event loop that notes every gap
longer than 3 ms between its 1 ms wake-ups. ``big.ipynb`` (``--cells`` code cells whose
stream outputs add up to ``--megabytes``) is opened in a room by a RoomConnection (the
y-websocket client), as a browser would; ``quiet.ipynb`` by a writer and a reader.

Save rounds alternate with idle rounds (``--idle-seconds`` of the same typing in the quiet
room, no save: the machine's and the server's own noise). Each save round: the loop probe is
cleared, one character is typed into the big notebook, the
bench waits until the room has saved it (the file on disk changes) and a second more, then
asks the probe for the gaps. Meanwhile the quiet room's writer types a character every
``--interval`` s and the reader notes when it sees it. Prints per round the longest loop
gap, the quiet room's longest edit latency, and how long the save took (from the edit to
the file's change, ``save_delay`` included), plus the machine's load average (shared
machine: compare runs made close together); ``LOOP_PROBE_STACKS=1`` adds where the loop was
during each gap longer than 4 ms.

``--first-build``: each round instead opens a fresh copy of ``big.ipynb`` (a room built from
its file, nothing stored for it; its collaborator a process of its own, whose loop applying
the 65 MB first sync is not this one's) and waits until the update store holds its history (one
more state file beside the store) and half a second more. Prints the longest loop gap over
that whole window (the build itself included), about how long the loop spent in the update
store within one gap (the probe's stacks are on: its 1 ms samples whose innermost frame is
in the store's modules, waits for the store's lock included), and the quiet room's longest
edit latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from flood_bench import HEADERS, TOKEN, start_server  # noqa: E402 (bench/ is on sys.path)
from procs import stop_process  # noqa: E402
from save_stall_bench import big_notebook  # noqa: E402

from collab_kernels.client.connection import RoomConnection, open_session  # noqa: E402


async def connect(base: str, path: str) -> RoomConnection:
    session = await open_session(base, path, token=TOKEN)
    conn = RoomConnection.from_session(base, session, token=TOKEN)
    await conn.connect()
    await asyncio.wait_for(asyncio.shield(conn.synced), 300)
    return conn


async def quiet_edits(writer: RoomConnection, reader: RoomConnection, interval: float, out):
    n = len(str(writer.document.ycells[0]["source"]))
    while True:
        source = writer.document.ycells[0]["source"]
        sent = time.perf_counter()
        source.insert(len(source), "a")
        n += 1
        await reader.wait_for(lambda doc, n=n: len(str(doc.ycells[0]["source"])) >= n, 120)
        out.append(time.perf_counter() - sent)
        await asyncio.sleep(interval)


def kinds_of(args) -> list[str]:
    return ["idle", "save"] * args.rounds if args.idle_seconds else ["save"] * args.rounds


STORE_FILES = ("store.py", "state_files.py", "store_worker.py", "store_sessions.py")


def store_ms(gap: list) -> float:
    """About how many ms of a probe gap the loop spent in the update store (its stack
    samples, LOOP_PROBE_STACKS=1, whose innermost frame is in the store's modules; a wait
    for the store's lock counts)."""
    total = 0
    for sample in filter(None, gap[2].split(" | ")):
        frames, _, count = sample.rpartition(" x")
        if frames.split(":", 1)[0] in STORE_FILES:
            total += int(count)
    return float(total)


def memory_mb(pid: int) -> dict[str, float]:
    """The server's resident and peak resident memory (MB, /proc/PID/status)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def reset_peak(pid: int) -> bool:
    """Start the server's peak resident memory afresh (Linux: ``5`` to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def first_build(
    base: str, http, root: Path, big: Path, states: Path, i: int, pid: int
) -> dict:
    """Open a fresh copy of the big notebook; the loop's gaps until its history is stored,
    and the server's memory: its peak over that window and what it holds at the end, both
    above what it held before."""
    name = f"big-{i}.ipynb"
    shutil.copyfile(big, root / name)
    files = len(list(states.glob("*.ystate"))) if states.exists() else 0
    # The big notebook's collaborator is a process of its own: applying a 65 MB SyncStep2
    # holds its event loop for a second or more, which in this process would be counted
    # as the quiet room's edit latency.
    opener = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--open",
        base,
        name,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert opener.stdin is not None and opener.stdout is not None
    await opener.stdout.readline()  # "ready": imported, nothing opened yet
    (await http.get("loop-probe")).raise_for_status()
    peak_reset = reset_peak(pid)
    rss_before = memory_mb(pid)["VmRSS"]
    opened = time.perf_counter()
    opener.stdin.write(b"go\n")
    await opener.stdin.drain()
    await opener.stdout.readline()  # "synced"
    synced = time.perf_counter() - opened
    while (len(list(states.glob("*.ystate"))) if states.exists() else 0) <= files:
        await asyncio.sleep(0.02)
    stored = time.perf_counter() - opened
    await asyncio.sleep(0.5)
    probe = (await http.get("loop-probe")).json()
    memory = memory_mb(pid)
    opener.stdin.close()
    await opener.wait()
    store_gaps = [[g[0], g[1], g[2], store_ms(g)] for g in probe["gaps"] if store_ms(g)]
    return {
        "kind": "first-build",
        "max_loop_gap_ms": probe["max_ms"],
        "max_store_gap_ms": max((g[1] for g in store_gaps), default=0.0),
        "max_ms_in_store": max((g[3] for g in store_gaps), default=0.0),
        "gaps_over_3ms": len(probe["gaps"]),
        "synced_after_s": round(synced, 2),
        "stored_after_s": round(stored, 2),
        "worst_store_gaps": sorted(store_gaps, key=lambda g: -g[3])[:3],
        "worst_gaps": sorted(probe["gaps"], key=lambda g: -g[1])[:3],
        "gc_over_2ms": probe["gc"],
        "peak_rss_growth_mb": round(memory["VmHWM"] - rss_before, 1) if peak_reset else None,
        "rss_growth_mb": round(memory["VmRSS"] - rss_before, 1),
        "rss_mb": round(memory["VmRSS"], 1),
    }


async def run(args) -> dict:
    rounds = []
    with tempfile.TemporaryDirectory(prefix="room-save-bench-") as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "root"
        root.mkdir()
        big = root / "big.ipynb"
        nbformat.write(nbformat.from_dict(big_notebook(args.megabytes, args.cells)), str(big))
        quiet = nbformat.v4.new_notebook()
        quiet.cells.append(nbformat.v4.new_markdown_cell("quiet"))
        nbformat.write(quiet, str(root / "quiet.ipynb"))
        extra = [f"--RoomManager.save_delay={args.save_delay}", *args.server_arg]
        proc, base = await start_server(home, root, args.code, extra, probe=True)
        try:
            async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=120) as http:
                editor = await connect(base, "big.ipynb")
                writer, reader = (
                    await connect(base, "quiet.ipynb"),
                    await connect(base, "quiet.ipynb"),
                )
                latencies: list[float] = []
                typing = asyncio.ensure_future(
                    quiet_edits(writer, reader, args.interval, latencies)
                )
                await asyncio.sleep(2)  # the load's aftermath (first checks, stored text)
                if args.first_build:
                    states = home / "data" / "collab_kernels" / "updates.sqlite.states"
                    for i in range(args.rounds):
                        latencies.clear()
                        line = await first_build(base, http, root, big, states, i, proc.pid)
                        line["quiet_edit_max_ms"] = round(max(latencies, default=0) * 1000, 1)
                        line["load_average"] = os.getloadavg()
                        rounds.append(line)
                        print(
                            f"round {i} (first build): loop blocked {line['max_loop_gap_ms']:.1f}"
                            f" ms at most ({line['gaps_over_3ms']} gaps > 3 ms); in the update "
                            f"store ~{line['max_ms_in_store']:.0f} ms of one gap (longest gap "
                            f"with store samples {line['max_store_gap_ms']:.1f} ms); synced after "
                            f"{line['synced_after_s']} s, stored after {line['stored_after_s']} "
                            f"s; quiet room edit max {line['quiet_edit_max_ms']:.1f} ms; "
                            f"server memory peak +{line['peak_rss_growth_mb']} MB, held "
                            f"+{line['rss_growth_mb']} MB at the end ({line['rss_mb']} MB); load "
                            f"{line['load_average']}",
                            flush=True,
                        )
                        for gap in line["worst_store_gaps"]:
                            print(f"   gap {gap[1]} ms, ~{gap[3]:.0f} ms in the store: {gap[2]}")
                kinds = [] if args.first_build else kinds_of(args)
                for round_, kind in enumerate(kinds):
                    (await http.get("loop-probe")).raise_for_status()
                    latencies.clear()
                    saved = None
                    if kind == "idle":  # the control: the same server, no save
                        await asyncio.sleep(args.idle_seconds)
                    else:
                        before = big.stat().st_mtime_ns
                        source = editor.document.ycells[0]["source"]
                        typed = time.perf_counter()
                        source.insert(len(source), "#")
                        while big.stat().st_mtime_ns == before:
                            await asyncio.sleep(0.02)
                        saved = time.perf_counter() - typed
                        await asyncio.sleep(1)
                    probe = (await http.get("loop-probe")).json()
                    worst = sorted(probe["gaps"], key=lambda g: -g[1])[:3]
                    rounds.append(
                        {
                            "kind": kind,
                            "max_loop_gap_ms": probe["max_ms"],
                            "gaps_over_3ms": len(probe["gaps"]),
                            "window_s": round(probe["seconds"], 1),
                            "quiet_edit_max_ms": round(max(latencies, default=0) * 1000, 1),
                            "quiet_edits": len(latencies),
                            "save_seen_after_s": None if saved is None else round(saved, 2),
                            "worst_gaps": worst,
                            "gc_over_2ms": probe["gc"],
                        }
                    )
                    line = rounds[-1]
                    seen = "" if saved is None else f"; file changed {saved:.2f} s after the edit"
                    print(
                        f"round {round_} ({kind}, {line['window_s']} s): loop blocked "
                        f"{line['max_loop_gap_ms']:.1f} ms at most ({line['gaps_over_3ms']} gaps "
                        f"> 3 ms); quiet room edit max {line['quiet_edit_max_ms']:.1f} ms over "
                        f"{line['quiet_edits']} edits{seen}; load {os.getloadavg()}",
                        flush=True,
                    )
                    if os.environ.get("LOOP_PROBE_STACKS") == "1":
                        for gap in worst:
                            print(f"   {gap[1]} ms: {gap[2]}")
                    if probe["gc"]:
                        print(f"   garbage collections > 2 ms: {probe['gc']}")
                typing.cancel()
                for conn in (editor, writer, reader):
                    await conn.close()
        finally:
            stop_process(proc, 30)
    return {
        "code": args.code or "this checkout",
        "megabytes": args.megabytes,
        "cells": args.cells,
        "file_bytes": big.stat().st_size if big.exists() else None,
        "load_average": os.getloadavg(),
        "rounds": rounds,
    }


async def open_one(base: str, path: str) -> None:
    """``--open BASE PATH`` (a first-build round's collaborator): "ready" once imported,
    then on "go" open the room and print "synced"; close when stdin closes."""
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    conn = await connect(base, path)
    print("synced", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    await conn.close()


def main() -> None:
    if sys.argv[1:2] == ["--open"]:
        asyncio.run(open_one(sys.argv[2], sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=65)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=8,
        help="before each save round, a control round of this many seconds without a save "
        "(0: none)",
    )
    parser.add_argument("--save-delay", type=float, default=0.2)
    parser.add_argument("--code", default=None, help="a directory holding collab_kernels/")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server option")
    parser.add_argument(
        "--first-build",
        action="store_true",
        help="rounds open fresh copies of the big notebook: the loop while a room is built "
        "from its file and its history stored",
    )
    args = parser.parse_args()
    if args.first_build:
        os.environ["LOOP_PROBE_STACKS"] = "1"  # the server's probe: which gaps are the store's
    result = asyncio.run(run(args))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"room-save-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(result, indent=1)
    )


if __name__ == "__main__":
    main()
