"""Server-side execution latency: REST execute -> result and count in a collaborator's doc.

    .venv/bin/python bench/execution_bench.py             # 50 rounds
    .venv/bin/python bench/execution_bench.py --rounds 30 --runs 5

One run, same machine, both sides set up first and then measured in alternation (raw round,
server round, server round, raw round, ...), so that the load of a shared, noisy machine
hits both alike; the ratio of the medians is the figure to compare across runs:

- raw:    a jupyter_client AsyncKernelManager/AsyncKernelClient in this process; one round is
          execute_request("1+1") until the execute_result, the execute_reply and the idle
          status arrived (what any client needs at the least).
- server: a `jupyter server` subprocess with collab_kernels; a Python collaborator
          (RoomConnection) is connected to the notebook's room; one round is
          POST /api/kernels/{id}/execute {cell_id, document_id} (keep-alive HTTP client) until
          the collaborator's doc shows the new execution_count and the execute_result.

Both clients run on this process's asyncio loop, whose TCP transports set TCP_NODELAY
(the HTTP client and the room websocket alike). The POST goes through a minimal HTTP/1.1
keep-alive client (``--http-client httpx`` for httpx, which adds 1-2 ms of client-side Python
per request); the raw client's kernel uses the same
transport as the server's kernels (``--raw-transport``, default ipc like
``SharedClientKernelManager.ipc_transport``; ``tcp`` is jupyter_client's default).

Prints medians and the ratio (goal: server <= 1.25 x raw); writes bench/results/execution-*.json.
With ``--runs N`` the whole thing is repeated N times (fresh kernel and server each time) and
the median of the per-run medians and ratios is reported as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from execution_raw import CODE, RawRunner  # noqa: E402 (bench/ is on sys.path)
from mini_http import MiniHTTP  # noqa: E402
from procs import free_port, stop_process  # noqa: E402

from collab_kernels.client.connection import RoomConnection, open_session  # noqa: E402


class Server:
    def __init__(self, launcher: list[str] | None = None, source_tree: str | None = None) -> None:
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.tmp = tempfile.TemporaryDirectory(prefix="ckx-")
        runtime = os.path.join(self.tmp.name, ".rt")
        os.makedirs(runtime)
        # Jupyter's data and config dirs of this run only: not the user's file-id database,
        # notebook signatures or settings (peers and older versions write other schemas).
        data, config = os.path.join(self.tmp.name, ".data"), os.path.join(self.tmp.name, ".cfg")
        env = dict(
            os.environ,
            JUPYTER_RUNTIME_DIR=runtime,
            JUPYTER_DATA_DIR=data,
            JUPYTER_CONFIG_DIR=config,
            PYTHONUNBUFFERED="1",
        )
        if source_tree:
            # Another checkout's collab_kernels first on the path (an A/B run in one process
            # tree): e.g. `git archive <commit> collab_kernels | tar -x -C /tmp/base`.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (source_tree, env.get("PYTHONPATH")) if p
            )
        launcher = launcher or [sys.executable, "-m", "jupyter_server"]
        self.proc = subprocess.Popen(
            [
                *launcher,
                "--no-browser",
                f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.tmp.name}",
                "--ServerApp.jpserver_extensions=collab_kernels=True",
                "--ServerApp.jpserver_extensions=jupyter_server_fileid=True",
                "--ServerApp.log_level=WARN",
                "--allow-root",
            ],
            env=env,
            cwd=self.tmp.name,
        )
        self.base = f"http://127.0.0.1:{self.port}/"

    async def wait_up(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = await client.get(self.base + "api/status")
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        stop_process(self.proc)
        self.tmp.cleanup()


class ServerRunner:
    """POST execute on a collab_kernels server -> count and result in a collaborator's doc.

    ``client_events`` (optional) receives ``(perf_counter, label)`` of the client's steps,
    for ``execution_trace.py``.
    """

    def __init__(
        self,
        launcher: list[str] | None = None,
        client_events: list | None = None,
        http_client: str = "mini",
        source_tree: str | None = None,
    ):
        self.launcher = launcher
        self.source_tree = source_tree
        self.http_client = http_client
        self.events = client_events
        self.count = 0
        self.post_times: list[float] = []

    def mark(self, label: str) -> None:
        if self.events is not None:
            self.events.append((time.perf_counter(), label))

    async def start(self) -> None:
        self.server = server = Server(self.launcher, self.source_tree)
        headers = {"Authorization": f"token {server.token}"}
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell(CODE))
        nbformat.write(nb, os.path.join(server.tmp.name, "bench.ipynb"))
        self.cell_id = nb.cells[0]["id"]
        # asyncio's TCP transports already set TCP_NODELAY; explicit, as browsers do: without
        # it the POST's body segment would wait for a delayed ACK.
        transport = httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self.client = httpx.AsyncClient(headers=headers, timeout=60, transport=transport)
        await server.wait_up(self.client)
        r = await self.client.post(
            server.base + "api/sessions",
            json={
                "path": "bench.ipynb",
                "type": "notebook",
                "name": "bench",
                "kernel": {"name": "python3"},
            },
        )
        r.raise_for_status()
        self.kernel_id = r.json()["kernel"]["id"]
        session = await open_session(server.base, "bench.ipynb", "notebook", token=server.token)
        self.conn = conn = RoomConnection.from_session(server.base, session, token=server.token)
        await conn.connect()
        await asyncio.wait_for(asyncio.shield(conn.synced), 30)
        # The round's condition is checked as each update is applied and resolves a future the
        # round awaits directly: one loop hop, as the raw client's awaits of its messages
        # (RoomConnection.wait_for re-checks on a later loop iteration, behind asyncio.wait_for).
        self._check: tuple | None = None
        handle = conn._handle

        def handle_and_check(frame: bytes) -> None:
            self.mark("client: room frame received")
            handle(frame)
            check = self._check
            if check is not None and not check[1].done() and check[0](conn.document):
                check[1].set_result(None)

        conn._handle = handle_and_check
        self.cells_changed = False

        def cells_changed(_event) -> None:
            self.cells_changed = True

        self._cells_subscription = (
            conn.document.ycells,
            conn.document.ycells.observe(cells_changed),
        )
        self.mini = MiniHTTP("127.0.0.1", server.port, headers)
        self.path = f"/api/kernels/{self.kernel_id}/execute"
        self.url = server.base + self.path[1:]
        self.body = {"cell_id": self.cell_id, "document_id": session.room_id}

    def shows(self, count: int):
        """The round's condition: the cell holds ``count`` and an execute_result. Checked
        after each frame, so it reads only what it needs (count first, then the outputs'
        types), on the cell Map found once per round."""
        cell_id = self.cell_id
        found: list = []

        def check(doc) -> bool:
            if not found or self.cells_changed:
                # (re)find it: a cell may be re-inserted in place (moved, or made trusted on
                # its first server-side run)
                self.cells_changed = False
                found.clear()
                for ycell in doc.ycells:
                    if ycell.get("id") == cell_id:
                        found.append(ycell)
                        break
                else:
                    return False
            ycell = found[0]
            if ycell.get("execution_count") != count:
                return False
            outputs = ycell.get("outputs")
            return outputs is not None and any(
                o.get("output_type") == "execute_result" for o in outputs
            )

        return check

    async def round(self) -> float:
        self.count += 1
        shown = asyncio.get_event_loop().create_future()
        self._check = (self.shows(self.count), shown)
        t0 = time.perf_counter()
        self.mark("client: POST sent")
        if self.http_client == "httpx":
            r = await self.client.post(self.url, json=self.body)
            status, payload = r.status_code, r.content
        else:
            status, payload = await self.mini.request("POST", self.path, self.body)
        t_posted = time.perf_counter()
        self.mark("client: 202 received")
        assert status == 202, payload
        self.last_request = json.loads(payload)["request_id"]
        timeout = asyncio.get_event_loop().call_later(
            30, lambda: shown.done() or shown.set_exception(TimeoutError("doc not updated"))
        )
        try:
            await shown
        except TimeoutError:
            cell = next(
                (c.to_py() for c in self.conn.document.ycells if c.get("id") == self.cell_id), None
            )
            status, view = await self.mini.request(
                "GET", f"/api/kernels/{self.kernel_id}/requests/{self.last_request}"
            )
            raise TimeoutError(
                f"round {self.count} on {self.source_tree or 'this tree'}: the doc never showed "
                f"count {self.count} and the result; cell: {cell}; request: {status} {view!r}"
            ) from None
        finally:
            timeout.cancel()
            self._check = None
        t1 = time.perf_counter()
        self.mark("client: doc shows count + result")
        self.post_times.append(t_posted - t0)
        return t1 - t0

    async def http_floor(self, n: int = 20) -> float:
        gets = []
        for _ in range(n):
            path = f"/api/kernels/{self.kernel_id}/requests/{self.last_request}"
            t0 = time.perf_counter()
            if self.http_client == "httpx":
                await self.client.get(self.server.base + path[1:])
            else:
                await self.mini.request("GET", path)
            gets.append(time.perf_counter() - t0)
        return statistics.median(gets)

    async def stop(self) -> None:
        try:
            await self.conn.close()
            await self.mini.close()
            await self.client.aclose()
        finally:
            self.server.stop()


async def server_rounds(
    rounds: int, warmup: int, launcher: list[str] | None = None, client_events: list | None = None
) -> list[float]:
    """Only the server's rounds (used by execution_trace.py)."""
    runner = ServerRunner(launcher, client_events)
    await runner.start()
    try:
        times = [await runner.round() for _ in range(warmup + rounds)]
    finally:
        await runner.stop()
    return times[warmup:]


async def one_run(
    rounds: int,
    warmup: int,
    transport: str,
    http_client: str = "mini",
    compare_tree: str | None = None,
) -> dict:
    raw, served = RawRunner(transport), ServerRunner(http_client=http_client)
    runners: list = [raw, served]
    other = None
    if compare_tree:
        other = ServerRunner(http_client=http_client, source_tree=compare_tree)
        runners.append(other)
    await asyncio.gather(*(r.start() for r in runners))
    times: dict[int, list[float]] = {id(r): [] for r in runners}
    try:
        for i in range(warmup + rounds):
            # Rotate which goes first, so none always follows another's work.
            k = i % len(runners)
            for runner in runners[k:] + runners[:k]:
                t = await runner.round()
                if i >= warmup:
                    times[id(runner)].append(t)
        floor = await served.http_floor()
    finally:
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)

    def p90(values: list[float]) -> float:
        return sorted(values)[max(int(len(values) * 0.9) - 1, 0)] * 1000

    def p25(values: list[float]) -> float:
        return sorted(values)[max(int(len(values) * 0.25) - 1, 0)] * 1000

    raw_times, server_times = times[id(raw)], times[id(served)]
    raw_ms = statistics.median(raw_times) * 1000
    served_ms = statistics.median(server_times) * 1000
    result = {
        "rounds": rounds,
        "raw_transport": transport,
        "http_client": http_client,
        "raw_jupyter_client_median_ms": round(raw_ms, 2),
        "server_side_execution_median_ms": round(served_ms, 2),
        "ratio": round(served_ms / raw_ms, 3),
        "raw_p90_ms": round(p90(raw_times), 2),
        "server_p90_ms": round(p90(server_times), 2),
        # The lower quartile is less exposed to the machine's load than the median.
        "raw_p25_ms": round(p25(raw_times), 2),
        "server_p25_ms": round(p25(server_times), 2),
        "p25_ratio": round(p25(server_times) / p25(raw_times), 3),
        "post_202_median_ms": round(statistics.median(served.post_times[warmup:]) * 1000, 2),
        "http_get_floor_median_ms": round(floor * 1000, 2),
    }
    if other is not None:
        other_ms = statistics.median(times[id(other)]) * 1000
        result["compare_tree"] = compare_tree
        result["compare_median_ms"] = round(other_ms, 2)
        result["compare_ratio"] = round(other_ms / raw_ms, 3)
        result["compare_p25_ratio"] = round(p25(times[id(other)]) / p25(raw_times), 3)
        result["compare_post_202_median_ms"] = round(
            statistics.median(other.post_times[warmup:]) * 1000, 2
        )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the run (fresh kernel and server)"
    )
    parser.add_argument(
        "--raw-transport",
        choices=("ipc", "tcp"),
        default="ipc",
        help="ZMQ transport of the raw client's kernel (the server's kernels use ipc by default)",
    )
    parser.add_argument(
        "--http-client",
        choices=("mini", "httpx"),
        default="mini",
        help="HTTP client of the POST: a minimal keep-alive client (default) or httpx",
    )
    parser.add_argument(
        "--compare-tree",
        default=None,
        help="also measure, interleaved, a server whose collab_kernels comes from this directory",
    )
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        result = await one_run(
            args.rounds, args.warmup, args.raw_transport, args.http_client, args.compare_tree
        )
        runs.append(result)
        line = (
            f"run {n + 1}: raw {result['raw_jupyter_client_median_ms']:.2f} ms, "
            f"server {result['server_side_execution_median_ms']:.2f} ms, "
            f"ratio {result['ratio']:.2f}x, p25 ratio {result['p25_ratio']:.2f}x "
            f"(202 after {result['post_202_median_ms']:.2f} ms, "
            f"HTTP GET floor {result['http_get_floor_median_ms']:.2f} ms)"
        )
        if args.compare_tree:
            line += (
                f"; compared tree {result['compare_median_ms']:.2f} ms, "
                f"ratio {result['compare_ratio']:.2f}x, p25 ratio "
                f"{result['compare_p25_ratio']:.2f}x (202 after "
                f"{result['compare_post_202_median_ms']:.2f} ms)"
            )
        print(line, flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    keys = [
        "raw_jupyter_client_median_ms",
        "server_side_execution_median_ms",
        "ratio",
        "p25_ratio",
        "post_202_median_ms",
        "http_get_floor_median_ms",
    ]
    if args.compare_tree:
        keys += [
            "compare_median_ms",
            "compare_ratio",
            "compare_p25_ratio",
            "compare_post_202_median_ms",
        ]
    summary = {"runs": runs, "median_of_medians": {k: round(med(k), 3) for k in keys}}
    m = summary["median_of_medians"]
    print(
        f"| trivial cell `1+1` ({args.runs} run(s) x {args.rounds} rounds, medians of medians) | ms |"
    )
    print("|---|---|")
    print(
        f"| raw jupyter_client round trip ({args.raw_transport}) | {m['raw_jupyter_client_median_ms']:.1f} |"
    )
    print(
        f"| POST execute -> count+result in a collaborator's doc | {m['server_side_execution_median_ms']:.1f} |"
    )
    print(f"| of which until the 202 answer | {m['post_202_median_ms']:.1f} |")
    if args.compare_tree:
        print(f"| the same from {args.compare_tree} | {m['compare_median_ms']:.1f} |")
        print(f"| of which until the 202 answer | {m['compare_post_202_median_ms']:.1f} |")
        print(
            f"ratio of {args.compare_tree}: {m['compare_ratio']:.2f}x "
            f"(lower quartiles: {m['compare_p25_ratio']:.2f}x)"
        )
    print(
        f"ratio: {m['ratio']:.2f}x (median of per-run ratios; goal <= 1.25x; "
        f"lower quartiles: {m['p25_ratio']:.2f}x)"
    )
    out = HERE / "results" / f"execution-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
