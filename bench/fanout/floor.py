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


async def measure_floor(patterns: list[Pattern], repeats: int = 3, python: str | None = None) -> dict:
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
                runs.append({"seconds": t_stream, "idle_seconds": t_idle, "messages": messages,
                             "equal": render_terminal(raw) == p.expected, "raw_bytes": len(raw)})
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
