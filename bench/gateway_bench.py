"""Remote kernels benchmark: gateway kernels through collab_kernels vs local kernels vs stock.

    .venv/bin/python bench/gateway_bench.py            # full run
    .venv/bin/python bench/gateway_bench.py --quick    # fewer executions and prints

One Jupyter Kernel Gateway 3 (loopback, auth token, rate limits off) and, in turn, three
`jupyter server` subprocesses (same run, same machine; kernels_bench.py's Server and Tab):

- local:          collab_kernels' shared client, local kernels (the baseline);
- gateway:        collab_kernels with GatewayClient.url set: one shared websocket per kernel;
- gateway stock:  the same gateway with --CollabKernelsApp.shared_kernel_client=False, i.e.
                  jupyter_server's own gateway classes (one gateway websocket per tab, JSON).

Figures:
1. execute latency: a tab sends ``execute_request`` for ``1 + 1`` and waits for the reply and
   the idle status, sequentially (median and 95th percentile, ms);
2. websocket connections the gateway counts (its REST model) for 10 tabs on one kernel;
3. stream messages per second relayed from a kernel printing as fast as it can to 1 and to 20
   tabs (v1 protocol; JSON for stock, which only speaks JSON to tabs in gateway mode).

Results go to bench/results/gateway-<time>.json; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from kernels_bench import Server, Tab, throughput_figure, v1_parse
from procs import free_port, save_results, stop_process
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

GATEWAY_TOKEN = uuid.uuid4().hex


class Gateway:
    """A Kernel Gateway subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="ckg-")
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=self.tmp.name)
        self.log = open(os.path.join(self.tmp.name, "gateway.log"), "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernel_gateway",
                "--KernelGatewayApp.ip=127.0.0.1",
                f"--KernelGatewayApp.port={self.port}",
                f"--KernelGatewayApp.auth_token={GATEWAY_TOKEN}",
                "--JupyterWebsocketPersonality.list_kernels=True",
                "--ZMQChannelsWebsocketConnection.limit_rate=False",
                "--KernelGatewayApp.log_level=WARN",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp.name,
        )
        self.http = AsyncHTTPClient()

    async def api(self, path: str) -> dict | list:
        resp = await self.http.fetch(
            HTTPRequest(
                f"{self.url}/{path}",
                headers={"Authorization": f"token {GATEWAY_TOKEN}"},
                request_timeout=60,
            )
        )
        return json.loads(resp.body)

    async def wait_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await self.api("api/kernelspecs")
                return
            except Exception:
                await asyncio.sleep(0.2)
        raise RuntimeError("the gateway did not start")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
        self.tmp.cleanup()


def variants(gateway: Gateway) -> dict[str, list[str]]:
    remote = [f"--GatewayClient.url={gateway.url}", f"--GatewayClient.auth_token={GATEWAY_TOKEN}"]
    return {
        "local": [],
        "gateway": remote,
        "gateway stock": [*remote, "--CollabKernelsApp.shared_kernel_client=False"],
    }


class JsonTab(Tab):
    """A tab in the legacy JSON protocol (what stock gateway mode speaks to tabs)."""

    subprotocols = None

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "bench",
            "date": "2026-01-01T00:00:00Z",
            "version": "5.4",
        }
        msg = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
        }
        self.conn.write_message(json.dumps(msg))
        return msg_id

    async def reply_and_idle(self, msg_id: str) -> None:
        replied = idle = False
        while not (replied and idle):
            data = await self.conn.read_message()
            if data is None:
                raise RuntimeError("websocket closed")
            msg = json.loads(data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["channel"] == "shell":
                replied = True
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True

    async def count_until_idle(self, msg_id: str) -> tuple[int, float]:
        streams = 0
        while True:
            data = await self.conn.read_message()
            if data is None:
                raise RuntimeError("websocket closed")
            msg = json.loads(data)
            if msg["channel"] != "iopub" or msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                streams += 1
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return streams, time.monotonic()


async def json_throughput_figure(server: Server, n_tabs: int, n_prints: int) -> dict:
    """kernels_bench's throughput figure for tabs speaking JSON (stock gateway mode)."""
    kid = await server.start_kernel()
    tabs = [await open_tab(server, kid, True) for _ in range(n_tabs)]
    warm = tabs[0].send("shell", "execute_request", {"code": "print('warm')", "silent": False})
    await asyncio.gather(*(t.count_until_idle(warm) for t in tabs))  # type: ignore[union-attr]
    t0 = time.monotonic()
    code = f"for i in range({n_prints}):\n    print(i, flush=True)"
    msg_id = tabs[0].send(
        "shell", "execute_request", {"code": code, "silent": False, "store_history": False}
    )
    results = await asyncio.gather(*(t.count_until_idle(msg_id) for t in tabs))  # type: ignore[union-attr]
    elapsed = max(r[1] for r in results) - t0
    received = min(r[0] for r in results)
    for tab in tabs:
        tab.close()
    await server.api("DELETE", f"api/kernels/{kid}")
    return {
        "tabs": n_tabs,
        "prints": n_prints,
        "stream_msgs_per_tab_min": received,
        "elapsed_s": round(elapsed, 3),
        "msgs_per_s_per_tab": round(received / elapsed, 1),
    }


async def v1_reply_and_idle(tab: Tab, msg_id: str) -> None:
    replied = idle = False
    needle = msg_id.encode()
    while not (replied and idle):
        data = await tab.conn.read_message()
        if data is None:
            raise RuntimeError("websocket closed")
        channel, header, parent, content = v1_parse(data)
        if needle not in parent:
            continue
        if channel == "shell":
            replied = True
        elif header["msg_type"] == "status" and b'"idle"' in content:
            idle = True


async def open_tab(server: Server, kid: str, stock: bool) -> Tab | JsonTab:
    tab = await (JsonTab.open(server, kid) if stock else Tab.open(server, kid))
    msg_id = tab.send("shell", "kernel_info_request", {})
    await (tab.reply_and_idle(msg_id) if stock else v1_reply_and_idle(tab, msg_id))
    return tab


async def latency_figure(server: Server, stock: bool, n: int) -> dict:
    kid = await server.start_kernel()
    tab = await open_tab(server, kid, stock)
    samples = []
    content = {"code": "1 + 1", "silent": False, "store_history": False}
    for i in range(n + 5):
        t0 = time.perf_counter()
        msg_id = tab.send("shell", "execute_request", content)
        await (tab.reply_and_idle(msg_id) if stock else v1_reply_and_idle(tab, msg_id))
        if i >= 5:  # warm-up
            samples.append((time.perf_counter() - t0) * 1000)
    tab.close()
    await server.api("DELETE", f"api/kernels/{kid}")
    samples.sort()
    return {
        "executions": n,
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2),
    }


async def gateway_connections_figure(server: Server, gateway: Gateway, stock: bool) -> int:
    kid = await server.start_kernel()
    tabs = [await open_tab(server, kid, stock) for _ in range(10)]
    model = await gateway.api(f"api/kernels/{kid}")
    for tab in tabs:
        tab.close()
    await server.api("DELETE", f"api/kernels/{kid}")
    assert isinstance(model, dict)
    return int(model["connections"])


async def run(args: argparse.Namespace) -> dict:
    gateway = Gateway()
    results: dict = {
        "variants": {},
        "executions": args.executions,
        "prints": args.prints,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        await gateway.wait_up()
        for name, extra in variants(gateway).items():
            stock = name == "gateway stock"
            server = Server(name, extra)
            try:
                await server.wait_up()
                out: dict = {"latency": await latency_figure(server, stock, args.executions)}
                print(f"{name}: latency {out['latency']}", file=sys.stderr)
                if name != "local":
                    out["gateway_connections_10_tabs"] = await gateway_connections_figure(
                        server, gateway, stock
                    )
                figure = json_throughput_figure if stock else throughput_figure
                for n in (1, 20):
                    out[f"throughput_{n}"] = await asyncio.wait_for(
                        figure(server, n, args.prints), 300
                    )
                    print(f"{name}: {n} tab(s) {out[f'throughput_{n}']}", file=sys.stderr)
                results["variants"][name] = out
                print(f"{name}: done", file=sys.stderr)
            finally:
                server.stop()
    finally:
        gateway.stop()
    return results


def table(results: dict) -> str:
    rows = [
        "| variant | execute median ms | execute p95 ms | gateway websockets, 10 tabs "
        "| msgs/s to 1 tab | msgs/s per tab, 20 tabs |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        lat = v["latency"]
        conns = v.get("gateway_connections_10_tabs", "-")
        t1 = v.get("throughput_1", {}).get("msgs_per_s_per_tab", "-")
        t20 = v.get("throughput_20", {}).get("msgs_per_s_per_tab", "-")
        rows.append(f"| {name} | {lat['median_ms']} | {lat['p95_ms']} | {conns} | {t1} | {t20} |")
    rows.append("")
    rows.append(
        f"{results['executions']} sequential executions of `1 + 1` per variant; "
        f"{results['prints']} flushed prints for the relay rates (lowest tab)."
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer executions and prints")
    parser.add_argument("--executions", type=int, default=None)
    parser.add_argument("--prints", type=int, default=None)
    args = parser.parse_args()
    if args.executions is None:
        args.executions = 50 if args.quick else 200
    if args.prints is None:
        args.prints = 1000 if args.quick else 5000
    results = asyncio.run(run(args))
    save_results("gateway", results, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
