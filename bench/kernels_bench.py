"""Kernel layer benchmark: collab_kernels' shared kernel client vs stock jupyter_server.

    .venv/bin/python bench/kernels_bench.py            # full run
    .venv/bin/python bench/kernels_bench.py --quick    # fewer prints

Each variant runs as its own `jupyter server` subprocess (same run, same machine):

- stock:  collab_kernels loaded with --CollabKernelsApp.shared_kernel_client=False, i.e.
          jupyter_server's own kernel manager and websocket connection class;
- shared (tcp): the shared client, kernels over TCP (comparable connection count);
- shared (ipc): the shared client with the default IPC transport.

Figures:
1. server-to-kernel TCP connections with 10 kernel websockets on one kernel (psutil on the
   server process, remote port in the kernel's connection file);
2. messages per second relayed from a kernel printing as fast as it can (flushed prints) to
   1 and to 20 kernel websockets (v1 protocol): stream messages each websocket received per
   second, until every websocket saw the idle status, plus the server's CPU seconds.

iopub rate limiting is turned off in every variant (it would drop the flood). Results go to
bench/results/kernels-<time>.json; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
from procs import ROOT, free_port, save_results, stop_process
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

V1 = "v1.kernel.websocket.jupyter.org"

VARIANTS = {
    "stock jupyter_server": ["--CollabKernelsApp.shared_kernel_client=False"],
    "shared client (tcp)": ["--SharedClientKernelManager.ipc_transport=False"],
    "shared client (ipc)": [],
}


class Server:
    def __init__(self, name: str, extra: list[str]):
        self.name = name
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.tmp = tempfile.TemporaryDirectory(prefix="ckb-")
        self.runtime = os.path.join(self.tmp.name, "rt")
        os.makedirs(self.runtime)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=self.runtime, PYTHONUNBUFFERED="1")
        cmd = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.tmp.name}",
            "--ServerApp.jpserver_extensions=collab_kernels=True",
            "--ZMQChannelsWebsocketConnection.limit_rate=False",
            "--ServerApp.log_level=WARN",
            "--allow-root",
            *extra,
        ]
        self.log = open(os.path.join(self.tmp.name, "server.log"), "w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self.ps = psutil.Process(self.proc.pid)
        self.http = AsyncHTTPClient()

    def url(self, path: str, ws: bool = False) -> str:
        return f"{'ws' if ws else 'http'}://127.0.0.1:{self.port}/{path}"

    async def api(self, method: str, path: str, body: dict | None = None) -> dict | list | None:
        req = HTTPRequest(
            self.url(path),
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=json.dumps(body) if body is not None else (None if method == "GET" else ""),
            allow_nonstandard_methods=True,
            request_timeout=60,
        )
        resp = await self.http.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def wait_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await self.api("GET", "api/status")
                return
            except Exception:
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name}: server did not start; see {self.log.name}")

    async def start_kernel(self) -> str:
        model = await self.api("POST", "api/kernels", {"name": "python3"})
        return model["id"]

    def kernel_ports(self, kid: str) -> set[int]:
        with open(os.path.join(self.runtime, f"kernel-{kid}.json")) as f:
            info = json.load(f)
        if info.get("transport", "tcp") != "tcp":
            return set()
        return {
            info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        }

    def tcp_connections_to(self, ports: set[int]) -> int:
        return sum(
            1
            for c in self.ps.net_connections(kind="tcp")
            if c.raddr and c.raddr.port in ports and c.status == "ESTABLISHED"
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
        self.tmp.cleanup()


def v1_frame(channel: str, msg_type: str, content: dict, session: str) -> tuple[str, bytes]:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": session,
        "username": "bench",
        "date": "2026-01-01T00:00:00Z",
        "version": "5.4",
    }
    parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
    chan = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(chan))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return msg_id, head + chan + b"".join(parts)


def v1_parse(data: bytes) -> tuple[str, dict, bytes, bytes]:
    n = int.from_bytes(data[:8], "little")
    offs = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
    channel = data[offs[0] : offs[1]].decode()
    header = json.loads(data[offs[1] : offs[2]])
    return channel, header, data[offs[2] : offs[3]], data[offs[4] : offs[5]]


class Tab:
    """A browser tab's kernel websocket, in the v1 protocol (binary frames)."""

    #: the websocket subprotocols the tab asks for
    subprotocols: list[str] | None = [V1]

    def __init__(self, conn, session: str):
        self.conn = conn
        self.session = session

    @classmethod
    async def open(cls, server: Server, kid: str):
        session = uuid.uuid4().hex
        req = HTTPRequest(
            server.url(f"api/kernels/{kid}/channels?session_id={session}", ws=True),
            headers={"Authorization": f"token {server.token}"},
        )
        conn = await websocket_connect(req, subprotocols=cls.subprotocols, max_message_size=1 << 30)
        return cls(conn, session)

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        msg_id, frame = v1_frame(channel, msg_type, content, self.session)
        self.conn.write_message(frame, binary=True)
        return msg_id

    async def until_reply(self, msg_id: str) -> None:
        while True:
            data = await self.conn.read_message()
            if data is None:
                raise RuntimeError("websocket closed")
            channel, _header, parent, _ = v1_parse(data)
            if channel == "shell" and msg_id.encode() in parent:
                return

    async def count_until_idle(self, msg_id: str) -> tuple[int, float]:
        streams = 0
        needle = msg_id.encode()
        while True:
            data = await self.conn.read_message()
            if data is None:
                raise RuntimeError("websocket closed")
            channel, header, parent, content = v1_parse(data)
            if channel != "iopub" or needle not in parent:
                continue
            if header["msg_type"] == "stream":
                streams += 1
            elif header["msg_type"] == "status" and b'"idle"' in content:
                return streams, time.monotonic()

    def close(self) -> None:
        self.conn.close()


async def connections_figure(server: Server) -> dict:
    kid = await server.start_kernel()
    tabs = [await Tab.open(server, kid) for _ in range(10)]
    for tab in tabs:
        await tab.until_reply(tab.send("shell", "kernel_info_request", {}))
    ports = server.kernel_ports(kid)
    tcp = server.tcp_connections_to(ports) if ports else 0
    fds = server.ps.num_fds()
    for tab in tabs:
        tab.close()
    await server.api("DELETE", f"api/kernels/{kid}")
    return {"tcp_connections_10_tabs": tcp, "server_fds_10_tabs": fds}


async def throughput_figure(server: Server, n_tabs: int, n_prints: int) -> dict:
    kid = await server.start_kernel()
    tabs = [await Tab.open(server, kid) for _ in range(n_tabs)]
    for tab in tabs:
        await tab.until_reply(tab.send("shell", "kernel_info_request", {}))
    # warm up
    warm = tabs[0].send("shell", "execute_request", {"code": "print('warm')", "silent": False})
    await asyncio.gather(*(t.count_until_idle(warm) for t in tabs))
    cpu0 = sum(server.ps.cpu_times()[:2])
    t0 = time.monotonic()
    code = f"for i in range({n_prints}):\n    print(i, flush=True)"
    msg_id = tabs[0].send(
        "shell", "execute_request", {"code": code, "silent": False, "store_history": False}
    )
    results = await asyncio.gather(*(t.count_until_idle(msg_id) for t in tabs))
    cpu = sum(server.ps.cpu_times()[:2]) - cpu0
    end = max(r[1] for r in results)
    elapsed = end - t0
    received = [r[0] for r in results]
    for tab in tabs:
        tab.close()
    await server.api("DELETE", f"api/kernels/{kid}")
    return {
        "tabs": n_tabs,
        "prints": n_prints,
        "stream_msgs_per_tab_min": min(received),
        "elapsed_s": round(elapsed, 3),
        "msgs_per_s_per_tab": round(min(received) / elapsed, 1),
        "msgs_per_s_total": round(sum(received) / elapsed, 1),
        "server_cpu_s": round(cpu, 2),
    }


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "variants": {},
        "prints": args.prints,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for name, extra in VARIANTS.items():
        server = Server(name, extra)
        try:
            await server.wait_up()
            out = {"connections": await connections_figure(server)}
            for n in (1, 20):
                out[f"throughput_{n}"] = await throughput_figure(server, n, args.prints)
            results["variants"][name] = out
            print(f"{name}: done", file=sys.stderr)
        finally:
            server.stop()
    return results


def table(results: dict) -> str:
    rows = [
        "| variant | TCP conns, 10 tabs | server fds, 10 tabs | msgs/s to 1 tab | msgs/s per tab, 20 tabs | total msgs/s, 20 tabs | server CPU s (1 / 20 tabs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        t1, t20 = v["throughput_1"], v["throughput_20"]
        rows.append(
            f"| {name} | {v['connections']['tcp_connections_10_tabs']} | "
            f"{v['connections']['server_fds_10_tabs']} | {t1['msgs_per_s_per_tab']} | "
            f"{t20['msgs_per_s_per_tab']} | {t20['msgs_per_s_total']} | "
            f"{t1['server_cpu_s']} / {t20['server_cpu_s']} |"
        )
    rows.append("")
    rows.append(
        f"{results['prints']} flushed single-line prints; a tab's rate counts the stream "
        "messages it received until it saw the idle status (lowest tab)."
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1000 prints instead of 5000")
    parser.add_argument("--prints", type=int, default=None)
    args = parser.parse_args()
    if args.prints is None:
        args.prints = 1000 if args.quick else 5000
    results = asyncio.run(run(args))
    save_results("kernels", results, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
