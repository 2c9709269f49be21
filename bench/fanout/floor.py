"""The floor: what a raw jupyter_client, talking ZMQ straight to the kernel, sees of a cell's output.

Nothing downstream of the kernel can deliver the output sooner, so every server's time is
reported as a multiple of this. The time is from sending ``execute_request`` to receiving the
last ``stream`` message of the cell; the kernel's output (all stream text, concatenated, then
rendered like a terminal) must equal the pattern's expected text.
"""

from __future__ import annotations

import statistics
import time

from jupyter_client.manager import AsyncKernelManager

from .patterns import WARMUP_CODE, Pattern, render_terminal


async def _run_cell(kc, code: str, timeout: float = 120) -> tuple[float, float, str, int]:
    """(seconds to last stream message, seconds to idle, raw stdout, stream messages)."""
    t0 = time.monotonic()
    msg_id = kc.execute(code, store_history=False)
    raw: list[str] = []
    last_stream = t0
    messages = 0
    while True:
        msg = await kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream" and msg["content"]["name"] == "stdout":
            raw.append(msg["content"]["text"])
            last_stream = time.monotonic()
            messages += 1
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return last_stream - t0, time.monotonic() - t0, "".join(raw), messages


async def measure_floor(
    patterns: list[Pattern], repeats: int = 3, python: str | None = None
) -> dict:
    """Start one kernel, warm it up, run each pattern ``repeats`` times; median per pattern."""
    km = AsyncKernelManager(kernel_name="python3")
    if python:
        km.kernel_cmd = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        await _run_cell(kc, WARMUP_CODE)
        out = {}
        for p in patterns:
            runs = []
            for _ in range(repeats):
                t_stream, t_idle, raw, messages = await _run_cell(kc, p.code)
                runs.append(
                    {
                        "seconds": t_stream,
                        "idle_seconds": t_idle,
                        "messages": messages,
                        "equal": render_terminal(raw) == p.expected,
                        "raw_bytes": len(raw),
                    }
                )
            out[p.key] = {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "idle_seconds": statistics.median(r["idle_seconds"] for r in runs),
                "messages": statistics.median(r["messages"] for r in runs),
                "equal": all(r["equal"] for r in runs),
                "runs": runs,
            }
        return out
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


class IopubObserver:
    """A raw ZMQ subscriber on a server's kernel: sees the cell's output exactly when the
    kernel publishes it, in the same run as the watchers.

    It subscribes to the kernel's IOPub (PUB/SUB: a passive extra subscriber costs the kernel
    nothing measurable), finds the ``execute_input`` whose code is the benchmark cell's, and
    records the arrival time of that request's last stdout ``stream`` message and its idle
    status. No server can deliver the output before this.
    """

    def __init__(self, connection_file: str, code: str):
        import json
        import threading

        import zmq
        from jupyter_client.session import Session

        info = json.loads(open(connection_file).read())
        self.session = Session(
            key=info["key"].encode(), signature_scheme=info.get("signature_scheme", "hmac-sha256")
        )
        if info.get("transport", "tcp") == "ipc":
            url = f"ipc://{info['ip']}-{info['iopub_port']}"
        else:
            url = f"tcp://{info['ip']}:{info['iopub_port']}"
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.rcvhwm = 0  # never drop: this is the reference the servers are compared with
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(url)
        self.code = code
        self.parent: str | None = None
        self.last_stream: float | None = None
        #: the kernel's own clock (the header's date) when it made its last stream message
        self.last_stream_date: float | None = None
        self.idle_at: float | None = None
        self.messages = 0
        self.raw: list[str] = []
        self.stray: list[tuple[str | None, str]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="iopub-observer")
        self._thread.start()

    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._halt.is_set():
            if not poller.poll(100):
                continue
            frames = self.sock.recv_multipart(copy=True)
            now = time.monotonic()
            try:
                _, msg_list = self.session.feed_identities(frames, copy=True)
                msg = self.session.deserialize(msg_list, content=True, copy=True)
            except Exception:
                continue
            kind = msg["header"]["msg_type"]
            parent = msg["parent_header"].get("msg_id")
            if kind == "execute_input" and msg["content"].get("code") == self.code:
                self.parent = parent
                self.last_stream, self.idle_at, self.messages, self.raw = None, None, 0, []
                self.last_stream_date = None
                self.stray = []
            elif parent is None or parent != self.parent:
                if (
                    self.parent is not None
                    and kind == "stream"
                    and msg["content"].get("name") == "stdout"
                ):
                    # stdout the kernel published under another parent after the cell started
                    self.stray.append((parent, msg["content"]["text"]))
                continue
            elif kind == "stream" and msg["content"].get("name") == "stdout":
                self.last_stream = now
                date = msg["header"].get("date")
                self.last_stream_date = date.timestamp() if hasattr(date, "timestamp") else None
                self.messages += 1
                self.raw.append(msg["content"]["text"])
            elif kind == "status" and msg["content"].get("execution_state") == "idle":
                self.idle_at = now

    def result(self, t0: float, expected: str, t0_wall: float | None = None) -> dict:
        """``t0`` (monotonic) and ``t0_wall`` (``time.time()``): when the execute request was
        sent. ``published_seconds``: when the kernel stamped its last stream message, by its
        own clock (the same machine's): this subscriber receiving it later, when it does not
        get a core in time (5000 messages to decode), does not move it."""
        published = None
        if t0_wall is not None and self.last_stream_date is not None:
            published = self.last_stream_date - t0_wall
        return {
            "seconds": None if self.last_stream is None else self.last_stream - t0,
            "published_seconds": published,
            "idle_seconds": None if self.idle_at is None else self.idle_at - t0,
            "messages": self.messages,
            "equal": render_terminal("".join(self.raw)) == expected,
            "text_len": len(render_terminal("".join(self.raw))),
            "stray_messages": len(self.stray),
            "stray_parents": sorted({str(p) for p, _ in self.stray})[:3],
            "stray_tail": "".join(t for _, t in self.stray)[-60:],
        }

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self.sock.close(0)
        self.ctx.term()
