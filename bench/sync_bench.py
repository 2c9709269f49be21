"""Initial sync of a big notebook: collab_kernels against jupyter-collaboration, same run.

    .venv/bin/python bench/sync_bench.py                       # 2000 cells, 50 MB, 3 rounds
    .venv/bin/python bench/sync_bench.py --cells 2000 --megabytes 50 --rounds 4 \\
        --collab-venv /work/venvs/thirdparty

Each server (a `jupyter server` subprocess, bench/fanout/servers.py) gets one fresh copy of
the notebook per round, so every round opens a room that is not loaded yet, as the first
person opening a notebook does. One round, as the JupyterLab frontend does it:
``PUT /api/collaboration/session/{path}``, the room websocket, the client's SyncStep1 with an
empty state; measured until the client's pycrdt Doc has applied the server's SyncStep2 and
holds every cell ("synced"), with the time of the SyncStep2's arrival and its size. The
servers alternate round by round (ours, collab, collab, ours, ...). Prints a Markdown table
with the load average; writes bench/results/sync-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
from pycrdt import Array, Doc, write_var_uint
from websockets.asyncio.client import connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fanout.servers import Collaboration, Ours, Server  # noqa: E402
from fanout.watcher import MSG_SYNC, STEP1, STEP2, read_var_uint  # noqa: E402


class OursFrom(Ours):
    """collab_kernels from another checkout (``--base-tree``): a before/after in one run."""

    key = "base"
    tree = ""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = self.tree
        return env


def big_notebook(cells: int, megabytes: float) -> dict[str, Any]:
    per_cell = int(megabytes * 1e6 / cells)
    line = "y" * 79 + "\n"
    text = line * max(1, per_cell // len(line))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"x = {i}\nprint(x)", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        nb.cells.append(cell)
    return dict(nb)


async def initial_sync(server: Server, path: str, cells: int) -> dict[str, float]:
    t0 = time.perf_counter()
    r = server.http.put(
        f"/api/collaboration/session/{quote(path)}", json={"format": "json", "type": "notebook"}
    )
    r.raise_for_status()
    body = r.json()
    room = f"json:notebook:{body['fileId']}"
    url = f"ws://127.0.0.1:{server.port}/api/collaboration/room/{room}?token={server.token}"
    if body.get("sessionId"):
        url += f"&sessionId={body['sessionId']}"
    t_session = time.perf_counter()
    doc = Doc()
    async with connect(url, max_size=None, open_timeout=300, ping_interval=None) as ws:
        t_open = time.perf_counter()
        # SyncStep1 with an empty state vector.
        sv = doc.get_state()
        await ws.send(bytes([MSG_SYNC, STEP1]) + write_var_uint(len(sv)) + sv)
        step2_at = step2_size = 0.0
        while True:
            frame = await asyncio.wait_for(ws.recv(), 600)
            if not isinstance(frame, bytes) or not frame or frame[0] != MSG_SYNC:
                continue
            kind = frame[1]
            length, pos = read_var_uint(frame, 2)
            payload = frame[pos : pos + length]
            if kind == STEP1:
                # Answer the server's step1 with our (empty) diff, as a browser does.
                diff = doc.get_update(payload)
                await ws.send(bytes([MSG_SYNC, STEP2]) + write_var_uint(len(diff)) + diff)
                continue
            if kind == STEP2 and not step2_at:
                step2_at, step2_size = time.perf_counter(), len(payload)
            doc.apply_update(payload)
            if len(doc.get("cells", type=Array)) >= cells:
                break
        t_done = time.perf_counter()
    return {
        "session_s": t_session - t0,
        "open_s": t_open - t0,
        "step2_s": (step2_at or t_done) - t0,
        "synced_s": t_done - t0,
        "step2_mb": step2_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--collab-venv",
        default=os.environ.get("SYNC_COLLAB_VENV", "/work/venvs/thirdparty"),
        help="a virtual environment with jupyter-collaboration (jupyter-server-ydoc)",
    )
    parser.add_argument("--servers", default="ours,collab")
    parser.add_argument(
        "--base-tree",
        help="also measure the collab_kernels of this directory (git archive <commit> "
        "collab_kernels | tar -x -C DIR), interleaved: a before/after under the same load",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0,
        help="seconds to wait after the servers started (to attach a profiler)",
    )
    args = parser.parse_args()
    wanted = args.servers.split(",")
    servers: dict[str, Server] = {"ours": Ours()} if "ours" in wanted else {}
    if args.base_tree:
        base = OursFrom()
        base.tree = str(Path(args.base_tree).resolve())
        servers["base"] = base
    collab_venv = Path(args.collab_venv)
    if "collab" not in wanted:
        pass
    elif (collab_venv / "bin" / "jupyter-server").exists():
        collab = Collaboration(venv=collab_venv)
        collab.extra_args = ("--ServerApp.jpserver_extensions=collab_kernels=False",)
        servers["collab"] = collab
    else:
        print(f"no jupyter-collaboration environment at {collab_venv}: ours only")
    text = json.dumps(big_notebook(args.cells, args.megabytes))
    print(f"notebook: {args.cells} cells, {len(text) / 1e6:.1f} MB on disk")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    loads: list[float] = []
    try:
        for server in servers.values():
            for r in range(args.rounds):
                (server.root / f"big-{r}.ipynb").write_text(text)
            server.start()
            print(f"{server.key}: pid {server.proc.pid if server.proc else None}", flush=True)
        time.sleep(args.pause)
        names = list(servers)
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                loads.append(os.getloadavg()[0])
                res = asyncio.run(initial_sync(servers[name], f"big-{r}.ipynb", args.cells))
                results[name].append(res)
                print(
                    f"round {r} {name}: synced {res['synced_s']:.2f} s (step2 at "
                    f"{res['step2_s']:.2f} s, {res['step2_mb']:.1f} MB), load {loads[-1]:.1f}",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"sync-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"results": results, "load": loads, "args": vars(args)}, indent=1))
    print("\n| server | synced (median s) | SyncStep2 at (s) | SyncStep2 MB | load avg |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        med = statistics.median(x["synced_s"] for x in runs)
        step2 = statistics.median(x["step2_s"] for x in runs)
        size = statistics.median(x["step2_mb"] for x in runs)
        print(
            f"| {name} | {med:.2f} | {step2:.2f} | {size:.1f} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
