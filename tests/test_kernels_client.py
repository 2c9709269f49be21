"""The shared kernel client: one socket set per kernel, listeners, filters, isolation."""

from __future__ import annotations

import asyncio

from collab_kernels.kernels.client import KernelMessage, SharedKernelClient
from collab_kernels.kernels.manager import SharedClientKernelManager

TIMEOUT = 30


async def _idle_for(client, msg_id, seen):
    """Future resolved when an idle status for msg_id is seen by a listener."""


async def test_kernel_has_one_connected_shared_client(jp_serverapp, start_kernel):
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    assert isinstance(km, SharedClientKernelManager)
    client = km.shared_client
    assert isinstance(client, SharedKernelClient)
    info = await client.wait_ready(TIMEOUT)
    assert info["status"] == "ok"
    assert client.kernel_id == kid
    assert jp_serverapp.kernel_manager.get_shared_client(kid) is client


async def test_listener_receives_execution_messages_in_order(jp_serverapp, start_kernel):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    await client.wait_ready(TIMEOUT)
    got: list[KernelMessage] = []
    done = asyncio.get_running_loop().create_future()
    msg = client.session.msg("execute_request", {"code": "for i in range(50): print(i, flush=True)"})
    msg_id = msg["header"]["msg_id"]

    def on_msg(m: KernelMessage):
        if m.parent_msg_id != msg_id:
            return
        got.append(m)
        if m.msg_type == "status" and m.content["execution_state"] == "idle":
            done.set_result(None)

    listener = client.add_listener(on_msg, channels=["iopub", "shell"])
    client.send("shell", msg, owner=listener)
    await asyncio.wait_for(done, TIMEOUT)
    text = "".join(m.parsed["content"]["text"] for m in got if m.msg_type == "stream")
    assert text == "".join(f"{i}\n" for i in range(50))
    iopub_types = [m.msg_type for m in got if m.channel == "iopub"]
    assert iopub_types[0] == "status" and iopub_types[1] == "execute_input"
    assert any(m.msg_type == "execute_reply" for m in got)
