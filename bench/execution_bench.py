"""Server-side execution latency: REST execute -> result and count in a collaborator's doc.

    .venv/bin/python bench/execution_bench.py             # 50 rounds
    .venv/bin/python bench/execution_bench.py --rounds 20

One run, same machine:

- raw:    a jupyter_client AsyncKernelManager/AsyncKernelClient in this process; one round is
          execute_request("1+1") until the execute_result, the execute_reply and the idle
          status arrived (what any client needs at the least).
- server: a `jupyter server` subprocess with collab_kernels; a Python collaborator
          (RoomConnection) is connected to the notebook's room; one round is
          POST /api/kernels/{id}/execute {cell_id, document_id} (keep-alive HTTP client) until
          the collaborator's doc shows the new execution_count and the execute_result.

Prints medians and the ratio (goal: server <= 1.25 x raw); writes bench/results/execution-*.json.
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
from jupyter_client.manager import AsyncKernelManager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from collab_kernels.client.connection import RoomConnection, open_session  # noqa: E402

CODE = "1+1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def raw_rounds(rounds: int, warmup: int) -> list[float]:
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    times: list[float] = []
    try:
        for i in range(warmup + rounds):
            t0 = time.perf_counter()
            msg_id = kc.execute(CODE)
            got_result = got_idle = False
            while not (got_result and got_idle):
                msg = await kc.get_iopub_msg(timeout=30)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "execute_result":
                    got_result = True
                elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    got_idle = True
            while True:
                reply = await kc.get_shell_msg(timeout=30)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return times


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.tmp = tempfile.TemporaryDirectory(prefix="ckx-")
        runtime = os.path.join(self.tmp.name, ".rt")
        os.makedirs(runtime)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=runtime, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.tmp.name}",
                "--ServerApp.jpserver_extensions=collab_kernels=True",
                "--ServerApp.jpserver_extensions=jupyter_server_fileid=True",
                "--ServerApp.log_level=WARN", "--allow-root",
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
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()


async def server_rounds(rounds: int, warmup: int) -> list[float]:
    server = Server()
    headers = {"Authorization": f"token {server.token}"}
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(CODE))
    nbformat.write(nb, os.path.join(server.tmp.name, "bench.ipynb"))
    cell_id = nb.cells[0]["id"]
    times: list[float] = []
    post_times: list[float] = []
    # Browsers set TCP_NODELAY; without it the POST's body segment waits for a delayed ACK.
    transport = httpx.AsyncHTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(headers=headers, timeout=60, transport=transport) as client:
        try:
            await server.wait_up(client)
            r = await client.post(
                server.base + "api/sessions",
                json={"path": "bench.ipynb", "type": "notebook", "name": "bench",
                      "kernel": {"name": "python3"}},
            )
            r.raise_for_status()
            kernel_id = r.json()["kernel"]["id"]
            session = await open_session(server.base, "bench.ipynb", "notebook", token=server.token)
            conn = RoomConnection.from_session(server.base, session, token=server.token)
            await conn.connect()
            await asyncio.wait_for(asyncio.shield(conn.synced), 30)
            url = server.base + f"api/kernels/{kernel_id}/execute"
            body = {"cell_id": cell_id, "document_id": session.room_id}

            def shows(count: int):
                def check(doc) -> bool:
                    for ycell in doc.ycells:
                        if ycell.get("id") == cell_id:
                            cell = ycell.to_py()
                            return cell.get("execution_count") == count and any(
                                o.get("output_type") == "execute_result"
                                for o in cell.get("outputs") or []
                            )
                    return False

                return check

            for i in range(warmup + rounds):
                t0 = time.perf_counter()
                r = await client.post(url, json=body)
                assert r.status_code == 202, r.text
                t_posted = time.perf_counter()
                await conn.wait_for(shows(i + 1), 60)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
                    post_times.append(t_posted - t0)
            gets = []
            for _ in range(20):
                t0 = time.perf_counter()
                await client.get(server.base + f"api/kernels/{kernel_id}/requests/{r.json()['request_id']}")
                gets.append(time.perf_counter() - t0)
            print(f"median GET of a request's status (HTTP floor): {statistics.median(gets) * 1000:.1f} ms")
            await conn.close()
        finally:
            server.stop()
    print(f"median time to the 202 answer: {statistics.median(post_times) * 1000:.1f} ms")
    return times


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    raw = await raw_rounds(args.rounds, args.warmup)
    served = await server_rounds(args.rounds, args.warmup)
    raw_ms = statistics.median(raw) * 1000
    served_ms = statistics.median(served) * 1000
    result = {
        "rounds": args.rounds,
        "raw_jupyter_client_median_ms": round(raw_ms, 2),
        "server_side_execution_median_ms": round(served_ms, 2),
        "ratio": round(served_ms / raw_ms, 2),
        "raw_p90_ms": round(sorted(raw)[int(len(raw) * 0.9) - 1] * 1000, 2),
        "server_p90_ms": round(sorted(served)[int(len(served) * 0.9) - 1] * 1000, 2),
    }
    print("| trivial cell `1+1` | median ms | p90 ms |")
    print("|---|---|---|")
    print(f"| raw jupyter_client round trip | {raw_ms:.1f} | {result['raw_p90_ms']} |")
    print(
        f"| POST execute -> count+result in a collaborator's doc | {served_ms:.1f} | "
        f"{result['server_p90_ms']} |"
    )
    print(f"ratio: {result['ratio']}x (goal <= 1.25x)")
    out = HERE / "results" / f"execution-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
