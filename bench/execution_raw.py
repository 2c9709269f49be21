"""The raw side of execution_bench.py: a jupyter_client round trip on its own kernel."""

from __future__ import annotations

import os
import tempfile
import time

from jupyter_client.manager import AsyncKernelManager

CODE = "1+1"


class RawRunner:
    """A raw jupyter_client round trip on its own kernel."""

    def __init__(self, transport: str = "ipc") -> None:
        self.transport = transport
        self.tmp = tempfile.TemporaryDirectory(prefix="ckx-raw-")

    async def start(self) -> None:
        kwargs = {}
        if self.transport == "ipc":
            kwargs = {"transport": "ipc", "ip": os.path.join(self.tmp.name, "kernel-ipc")}
        self.km = AsyncKernelManager(kernel_name="python3", **kwargs)
        await self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)

    async def round(self) -> float:
        kc = self.kc
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
        return time.perf_counter() - t0

    async def stop(self) -> None:
        try:
            self.kc.stop_channels()
            await self.km.shutdown_kernel(now=True)
        finally:
            self.tmp.cleanup()
