"""Soak: many collaborators editing at random while a kernel streams output, for minutes.

    .venv/bin/python bench/soak_bench.py --minutes 1
    .venv/bin/python bench/soak_bench.py --minutes 5 --clients 30 --store sqlite

A `jupyter server` subprocess with collab_kernels (loopback only, its own Jupyter dirs in a
temporary directory). One notebook: a code cell that prints a numbered line every
``--print-interval`` s for the whole soak (started headless through
POST /api/kernels/{id}/execute), plus ``--cells`` text cells that ``--clients`` Python
collaborators (RoomConnection, the y-websocket client) edit at random: each inserts or
deletes a few characters in a random cell every ``--edit-interval`` s (jittered), now and
then adding a cell.

At the end, edits stop, the streaming cell ends, and the bench checks:

- every collaborator's document and a late joiner's are byte-identical (the JSON of the
  notebook, keys sorted, and the Y state vector);
- the file is valid nbformat and holds the same cells and the full stream of lines;
- the server's RSS (psutil) before the room opened, at its peak, and after every client left
  and the room was freed (``RoomManager.free_delay``), after a full GC pass in the server
  (``/api/status`` is polled; the server frees rooms by itself).

Bounded in time (``--minutes`` plus at most a few minutes of settling) and traffic
(loopback only). Writes bench/results/soak-*.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from procs import free_port, stop_process  # noqa: E402 (bench/ is on sys.path)

from collab_kernels.client.connection import RoomConnection, open_session  # noqa: E402

TOKEN = "soak-token"
# ASCII only: pycrdt (client side) panics deleting a range that splits a multi-byte character
WORDS = ["alpha", "beta", "gamma", "delta", "x", "\n", "  ", "# note", "print(1)"]


class Server:
    def __init__(self, home: Path, root: Path, store: str):
        self.home, self.root, self.store = home, root, store
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        env = dict(os.environ)
        for name in ("config", "data", "runtime"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        (self.home / "config" / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {
                        "jpserver_extensions": {
                            "collab_kernels": True,
                            "jupyter_server_fileid": True,
                        }
                    }
                }
            )
        )
        env.update(
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_DATA_DIR=str(self.home / "data"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
        )
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={self.root}",
            "--RoomManager.free_delay=2",
            f"--RoomManager.update_store={self.store}",
        ]
        self.log = open(self.home / "server.log", "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    r = await http.get(self.base_url + "api/status", headers=self.headers)
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start; see " + str(self.home / "server.log"))
                await asyncio.sleep(0.2)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        children = psutil.Process(self.proc.pid).children(recursive=True)
        stop_process(self.proc, 30)
        for child in children:
            if child.is_running():
                child.kill()


def doc_json(conn: RoomConnection) -> str:
    return json.dumps(conn.document.get(), sort_keys=True)


def random_edit(conn: RoomConnection, rng: random.Random, n_text_cells: int) -> None:
    cells = conn.document.ycells
    if len(cells) < 2:
        return
    if rng.random() < 0.01 and len(cells) < n_text_cells + 20:
        conn.document.append_cell(
            {"cell_type": "markdown", "source": f"added by {id(conn) % 1000}", "metadata": {}}
        )
        return
    index = rng.randrange(1, len(cells))  # cell 0 is the streaming code cell
    source = cells[index]["source"]
    length = len(source)
    if length > 200 or (length and rng.random() < 0.3):
        start = rng.randrange(length)
        del source[start : min(length, start + rng.randint(1, 5))]
    else:
        source.insert(rng.randint(0, length), rng.choice(WORDS))


async def collaborator(conn, rng, stop: asyncio.Event, interval: float, n_cells: int, counter):
    while not stop.is_set():
        random_edit(conn, rng, n_cells)
        counter[0] += 1
        try:
            await asyncio.wait_for(stop.wait(), interval * rng.uniform(0.5, 1.5))
        except asyncio.TimeoutError:
            pass


async def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def sv_dict(state: bytes) -> dict[int, int]:
    """A Y state vector as {client: clock} (its encoding's order is not deterministic)."""
    from pycrdt import Decoder

    decoder = Decoder(state)
    return {
        decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())
    }


def write_notebook(path: Path, lines: int, args) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import time\n"
            f"for i in range({lines}):\n"
            "    print(f'line {i}', flush=True)\n"
            f"    time.sleep({args.print_interval})\n"
        )
    )
    for i in range(args.cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"cell {i}"))
    nbformat.write(nb, str(path))
    return nb.cells[0]["id"]


async def cycle(server: Server, http, kernel_id: str, name: str, seconds: float, args) -> dict:
    """One soak: clients join, edit while the cell streams, converge, leave; room freed."""
    root = server.root
    lines = int(seconds / args.print_interval)
    code_cell = write_notebook(root / name, lines, args)
    result: dict = {"seconds": seconds}
    session = await open_session(server.base_url, name, token=TOKEN)
    room_id = session.room_id
    conns = []
    for _ in range(args.clients):
        s = await open_session(server.base_url, name, token=TOKEN)
        conn = RoomConnection.from_session(server.base_url, s, token=TOKEN)
        await conn.connect()
        await asyncio.wait_for(asyncio.shield(conn.synced), 60)
        conns.append(conn)
    r = await http.post(
        f"api/kernels/{kernel_id}/execute", json={"cell_id": code_cell, "document_id": room_id}
    )
    r.raise_for_status()
    request_id = r.json()["request_id"]
    stop = asyncio.Event()
    counter = [0]
    rng = random.Random(args.seed)
    tasks = [
        asyncio.ensure_future(
            collaborator(
                c, random.Random(rng.random()), stop, args.edit_interval, args.cells, counter
            )
        )
        for c in conns
    ]
    peak = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.sleep(1)
        peak = max(peak, server.rss())
    stop.set()
    await asyncio.gather(*tasks)
    result["edits"] = counter[0]

    async def request_done():
        r = await http.get(f"api/kernels/{kernel_id}/requests/{request_id}")
        return r.json().get("status") == "done"

    deadline = time.monotonic() + 120
    while not await request_done() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    result["stream_done"] = await request_done()

    late = RoomConnection.from_session(
        server.base_url, await open_session(server.base_url, name, token=TOKEN), token=TOKEN
    )
    await late.connect()
    await asyncio.wait_for(asyncio.shield(late.synced), 60)
    everyone = [*conns, late]

    def converged() -> bool:
        first = doc_json(everyone[0])
        sv = sv_dict(everyone[0].ydoc.get_state())
        return all(doc_json(c) == first and sv_dict(c.ydoc.get_state()) == sv for c in everyone[1:])

    settle = time.monotonic()
    result["converged"] = await wait_for(converged, 120)
    result["converge_seconds"] = round(time.monotonic() - settle, 2)
    result["distinct_docs"] = len({doc_json(c) for c in everyone})
    final = json.loads(doc_json(late))
    expected_stream = "".join(f"line {i}\n" for i in range(lines))
    out = "".join(
        o.get("text", "")
        for o in final["cells"][0].get("outputs", [])
        if o.get("output_type") == "stream"
    )
    result["stream_complete"] = out == expected_stream
    result["stream_lines"] = out.count("\n")
    result["cells_final"] = len(final["cells"])
    result["rss_peak"] = max(peak, server.rss())
    for c in everyone:
        await c.close()

    async def room_freed() -> bool:
        r = await http.get(f"api/collaboration/room/{room_id}/presence")
        return r.status_code == 404

    deadline = time.monotonic() + 60
    while not await room_freed() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    result["room_freed"] = await room_freed()
    on_disk = nbformat.read(str(root / name), as_version=4)
    try:
        nbformat.validate(on_disk)
        result["file_valid"] = True
    except Exception as e:  # reported, not raised
        result["file_valid"] = False
        result["file_error"] = str(e)[:300]
    doc_sources = [
        c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        for c in final["cells"]
    ]
    result["file_matches_doc"] = [c.source for c in on_disk.cells] == doc_sources
    disk_out = "".join(
        o.get("text", "")
        for o in on_disk.cells[0].get("outputs", [])
        if o.get("output_type") == "stream"
    )
    result["file_stream_complete"] = disk_out == expected_stream
    samples = []
    for _ in range(5):
        await asyncio.sleep(1)
        samples.append(server.rss())
    result["rss_after"] = min(samples)
    result["file_bytes"] = (root / name).stat().st_size
    return result


CHECKS = (
    "converged",
    "stream_done",
    "stream_complete",
    "room_freed",
    "file_valid",
    "file_matches_doc",
    "file_stream_complete",
)


async def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    root = tmp / "root"
    root.mkdir()
    server = Server(tmp / "home", root, args.store)
    await server.start()
    result: dict = {
        "minutes": args.minutes,
        "clients": args.clients,
        "store": args.store,
        "cells": args.cells,
        "edit_interval": args.edit_interval,
        "print_interval": args.print_interval,
    }
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers, timeout=60
        ) as http:
            r = await http.post(
                "api/sessions",
                json={
                    "path": "soak.ipynb",
                    "type": "notebook",
                    "name": "soak.ipynb",
                    "kernel": {"name": "python3"},
                },
            )
            r.raise_for_status()
            kernel_id = r.json()["kernel"]["id"]
            await asyncio.sleep(3)
            # baseline: the server with its kernel running, before any room opened
            result["rss_baseline"] = server.rss()
            result["soak"] = await cycle(
                server, http, kernel_id, "soak.ipynb", args.minutes * 60, args
            )
            # a second, shorter round on another notebook: if the first room's memory was
            # given back to the allocator, this one reuses it and RSS stays where it was
            again = max(20.0, args.minutes * 60 / 5)
            result["again"] = await cycle(server, http, kernel_id, "again.ipynb", again, args)
            if args.store != "none":
                db = tmp / "home" / "data" / "collab_kernels"
                result["store_bytes"] = sum(p.stat().st_size for p in db.glob("updates.sqlite*"))
    finally:
        server.stop()
    mb = 1024 * 1024
    result["rss_mb"] = {
        "baseline": round(result["rss_baseline"] / mb, 1),
        "peak": round(result["soak"]["rss_peak"] / mb, 1),
        "after_free": round(result["soak"]["rss_after"] / mb, 1),
        "after_second_round": round(result["again"]["rss_after"] / mb, 1),
    }
    result["ok"] = all(result[c].get(k) for c in ("soak", "again") for k in CHECKS)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--edit-interval", type=float, default=0.5)
    parser.add_argument("--print-interval", type=float, default=0.05)
    parser.add_argument("--store", choices=["none", "sqlite"], default="none")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = HERE / "results" / f"soak-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"    {k:>22}: {v}")
        else:
            print(f"{key:>26}: {value}")
    print(f"written {out.relative_to(HERE.parent)}")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
