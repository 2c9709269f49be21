"""Flood fairness: edit latency in a quiet room while a cell in another room floods output.

    .venv/bin/python bench/flood_bench.py --seconds 15
    .venv/bin/python bench/flood_bench.py --code /tmp/old-checkout   # another collab_kernels

A `jupyter server` subprocess with collab_kernels (loopback only, its own Jupyter dirs in a
temporary directory; ``--code`` puts another checkout's ``collab_kernels`` first on the
server's PYTHONPATH, to compare before and after a change). ``flood.ipynb`` runs one cell,
started headless through POST /api/kernels/{id}/execute, that prints 200-character lines in
a tight loop for ``--seconds``. Meanwhile, in ``quiet.ipynb``, a writer (RoomConnection, the
y-websocket client) appends a character every ``--interval`` s and a reader in the same room
notes when it sees it: the latency of each edit through the server. ``/api/status`` is polled
as well. Prints (and writes to bench/results/flood-*.json) the median, 95th percentile and
maximum of both, the size of the flooded notebook on disk, and the machine's load average
(the machine may be shared: compare runs made close together). ``--probe`` adds the server's
longest event-loop gaps during the flood (bench/loop_probe.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from procs import free_port, stop_process  # noqa: E402 (bench/ is on sys.path)

from collab_kernels.client.connection import RoomConnection, open_session  # noqa: E402

TOKEN = "flood-token"
HEADERS = {"Authorization": f"token {TOKEN}"}


def flood_cell(seconds: float) -> str:
    return (
        "import time\n"
        "line = 'x' * 199\n"
        f"end = time.time() + {seconds!r}\n"
        "while time.time() < end:\n"
        "    print(line)\n"
    )


async def start_server(
    home: Path, root: Path, code: str | None, extra: list[str], *, probe: bool = False
):
    """``probe``: load bench/loop_probe.py (GET /loop-probe: the event loop's gaps)."""
    for name in ("config", "data", "runtime"):
        (home / name).mkdir(parents=True, exist_ok=True)
    extensions = {"collab_kernels": True, "jupyter_server_fileid": True}
    if probe:
        extensions["loop_probe"] = True
    (home / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": extensions}})
    )
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    if code:
        env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
    if probe:
        env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        *extra,
    ]
    log = open(home / "server.log", "wb")  # kept open for the server's life
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(home))
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(base + "api/status", headers=HEADERS)).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {home / 'server.log'}")
            await asyncio.sleep(0.2)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def measure_edits(base: str, stop: asyncio.Event, interval: float) -> list[float]:
    session = await open_session(base, "quiet.ipynb", token=TOKEN)
    writer = RoomConnection.from_session(base, session, token=TOKEN)
    session2 = await open_session(base, "quiet.ipynb", token=TOKEN)
    reader = RoomConnection.from_session(base, session2, token=TOKEN)
    for conn in (writer, reader):
        await conn.connect()
        await asyncio.wait_for(asyncio.shield(conn.synced), 30)
    latencies: list[float] = []
    try:
        n = len(str(writer.document.ycells[0]["source"]))
        while not stop.is_set():
            source = writer.document.ycells[0]["source"]
            sent = time.perf_counter()
            source.insert(len(source), "a")
            n += 1
            await reader.wait_for(
                lambda doc, n=n: len(str(doc.ycells[0]["source"])) >= n, timeout=120
            )
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(interval)
    finally:
        await writer.close()
        await reader.close()
    return latencies


async def measure_status(base: str, stop: asyncio.Event, interval: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as http:
        while not stop.is_set():
            sent = time.perf_counter()
            await http.get(base + "api/status", headers=HEADERS)
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(interval)
    return latencies


async def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "root"
        root.mkdir()
        flood = nbformat.v4.new_notebook()
        flood.cells.append(nbformat.v4.new_code_cell(flood_cell(args.seconds)))
        nbformat.write(flood, str(root / "flood.ipynb"))
        quiet = nbformat.v4.new_notebook()
        quiet.cells.append(nbformat.v4.new_markdown_cell("quiet"))
        nbformat.write(quiet, str(root / "quiet.ipynb"))
        proc, base = await start_server(home, root, args.code, args.server_arg, probe=args.probe)
        try:
            async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=120) as http:
                r = await http.post(
                    "api/sessions",
                    json={
                        "path": "flood.ipynb",
                        "type": "notebook",
                        "name": "flood.ipynb",
                        "kernel": {"name": "python3"},
                    },
                )
                kernel_id = r.json()["kernel"]["id"]
                session = await open_session(base, "flood.ipynb", token=TOKEN)
                stop = asyncio.Event()
                baseline_stop = asyncio.Event()
                # quiet baseline first (no flood), then during the flood
                edits = asyncio.ensure_future(measure_edits(base, baseline_stop, args.interval))
                await asyncio.sleep(3)
                baseline_stop.set()
                baseline = await edits
                edits = asyncio.ensure_future(measure_edits(base, stop, args.interval))
                status = asyncio.ensure_future(measure_status(base, stop, args.interval))
                if args.probe:
                    (await http.get("loop-probe")).raise_for_status()
                r = await http.post(
                    f"api/kernels/{kernel_id}/execute",
                    json={"cell_id": flood.cells[0]["id"], "document_id": session.room_id},
                )
                assert r.status_code == 202, r.text
                request = r.headers["Location"]
                started = time.monotonic()
                while True:
                    r = await http.get(request.lstrip("/"))
                    if r.status_code == 200 or time.monotonic() - started > args.seconds + 120:
                        break
                    await asyncio.sleep(0.5)
                stop.set()
                during, status_during = await edits, await status
                probe = (await http.get("loop-probe")).json() if args.probe else None
                await asyncio.sleep(3)  # the last save
                size = (root / "flood.ipynb").stat().st_size
        finally:
            stop_process(proc, 30)
            if args.server_log:
                shutil.copyfile(home / "server.log", args.server_log)
    return {
        "code": args.code or "this checkout",
        "server_args": args.server_arg,
        "seconds": args.seconds,
        "load_average": os.getloadavg(),
        "notebook_bytes": size,
        "quiet_edits_before_flood": summary(baseline),
        "quiet_edits_during_flood": summary(during),
        "status_during_flood": summary(status_during),
        **(
            {
                "loop_gap_max_ms": probe["max_ms"],
                "loop_gaps_over_3ms": len(probe["gaps"]),
                "loop_gaps_over_20ms": sum(1 for g in probe["gaps"] if g[1] > 20),
                "worst_loop_gaps": sorted(probe["gaps"], key=lambda g: -g[1])[:6],
                "gc_over_2ms": probe["gc"],
            }
            if probe
            else {}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--code", default=None, help="a directory holding collab_kernels/")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="load bench/loop_probe.py: the server's event-loop gaps during the flood "
        "(LOOP_PROBE_STACKS=1: where the loop was)",
    )
    parser.add_argument("--server-log", default=None, help="copy the server's log here")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra server option (repeatable)"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = out / f"flood-{time.strftime('%Y%m%d-%H%M%S')}.json"
    name.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
