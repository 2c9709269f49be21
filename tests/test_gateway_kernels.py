"""Gateway kernels: browser tabs and the server listen to one websocket per remote kernel.

The tab-level tests of test_kernels_websocket.py run here again, unchanged, against kernels
on a real Kernel Gateway (imported below: same test bodies, this module's server config).
"""

from __future__ import annotations

import asyncio

import pytest
from fixtures_kernels import TIMEOUT, wait_until
from jupyter_client.session import json_packer
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from test_kernels_websocket import (  # noqa: F401 (collected here with the gateway config)
    test_comm_round_trip_reaches_every_tab,
    test_input_prompts_only_the_tab_that_executed,
    test_reconnect_buffer_replays_messages_missed_while_away,
    test_replies_go_only_to_the_requesting_tab_iopub_to_all,
    test_request_hook_withholds_outputs_from_the_sending_tab_only,
    test_tab_executes_and_gets_its_reply_and_output,
)

from collab_kernels.kernels.gateway import CollabGatewayMappingKernelManager, GatewayKernelClient


@pytest.fixture
def jp_server_config(gateway_server_config):
    return gateway_server_config


async def test_gateway_mode_uses_the_shared_gateway_client(jp_serverapp, start_kernel):
    assert isinstance(jp_serverapp.kernel_manager, CollabGatewayMappingKernelManager)
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_kernel(kid).shared_client
    assert isinstance(client, GatewayKernelClient)
    info = await client.wait_ready(TIMEOUT)
    assert info["language_info"]["name"] == "python"
    # Kernel Gateway 3 runs jupyter_server 2: the binary protocol is negotiated
    assert client.protocol == "v1.kernel.websocket.jupyter.org"


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
async def test_ten_tabs_share_one_gateway_websocket(
    jp_serverapp, start_kernel, open_kernel_ws, kernel_model, kernel_gateway, protocol
):
    kid = await start_kernel()
    tabs = [await open_kernel_ws(kid, protocol) for _ in range(10)]
    msg_id, reply = await tabs[0].run("print('to everyone')")
    assert reply["content"]["status"] == "ok"
    for tab in tabs:
        await tab.idle(msg_id)
        assert tab.stream_text(msg_id) == "to everyone\n"
    # the gateway sees one connection (ours); the server counts ten tabs
    assert kernel_gateway.connections(kid) == 1
    assert (await kernel_model(kid))["connections"] == 10
    for tab in tabs[:4]:
        tab.close()
    await wait_until(lambda: jp_serverapp.kernel_manager._kernel_connections[kid] == 6)
    assert (await kernel_model(kid))["connections"] == 6
    assert kernel_gateway.connections(kid) == 1


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
async def test_binary_widget_buffers_both_ways(start_kernel, open_kernel_ws, protocol):
    """A comm message with binary buffers from a tab reaches the kernel and the kernel's
    reply with buffers reaches every tab, in both protocols (stock's proxy breaks here)."""
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, protocol)
    other = await open_kernel_ws(kid, "legacy" if protocol == "v1" else "v1")
    code = (
        "from comm import create_comm\n"
        "c = create_comm(target_name='test.bytes', data={})\n"
        "def echo(m):\n"
        "    bufs = [bytes(b) for b in m['buffers']]\n"
        "    c.send({'sizes': [len(b) for b in bufs]}, buffers=[b[::-1] for b in bufs])\n"
        "c.on_msg(echo)\n"
    )
    await tab.run(code)
    opened = await tab.wait_for(lambda m: m["msg_type"] == "comm_open")
    comm_id = opened["content"]["comm_id"]
    payload = bytes(range(256)) * 4  # not UTF-8
    msg = tab.session.msg("comm_msg", {"comm_id": comm_id, "data": {}})
    buffers = [payload, b"\xff\x00"]
    if protocol == "v1":
        parts = [json_packer(msg[k]) for k in ("header", "parent_header", "metadata", "content")]
        frame = serialize_msg_to_ws_v1([*parts, *buffers], "shell")
    else:
        frame = serialize_binary_message(dict(msg, channel="shell", buffers=buffers))
    tab.conn.write_message(frame, binary=True)
    for t in (tab, other):
        echo = await t.wait_for(
            lambda m: m["msg_type"] == "comm_msg" and m["channel"] == "iopub" and m["buffers"]
        )
        assert echo["content"]["data"] == {"sizes": [1024, 2]}
        assert [bytes(b) for b in echo["buffers"]] == [payload[::-1], b"\x00\xff"]


async def test_interrupt_over_rest_reaches_the_gateway_kernel(
    start_kernel, open_kernel_ws, jp_fetch
):
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, "v1")
    msg_id = tab.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    await tab.wait_for(lambda m: m["msg_type"] == "stream" and "sleeping" in m["content"]["text"])
    await jp_fetch("api", "kernels", kid, "interrupt", method="POST", body="{}")
    reply = await tab.reply(msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"


async def test_restart_over_rest_keeps_tabs_and_listeners(
    jp_serverapp, start_kernel, open_kernel_ws, jp_fetch, gateway_client
):
    kid = await start_kernel()
    client = gateway_client(kid)
    events = []
    client.add_lifecycle_listener(events.append)
    tab = await open_kernel_ws(kid, "v1")
    await tab.run("x = 41")
    await jp_fetch("api", "kernels", kid, "restart", method="POST", body="{}")
    assert events == ["restarted"]  # POST returns once restarted, before ready (as stock)
    msg_id, _reply = await tab.run("print(x + 1 if 'x' in dir() else 'fresh')")
    assert tab.stream_text(msg_id) == "fresh\n"
    assert client.reconnects == 0  # the same websocket to the gateway


async def test_kernel_death_is_reported_and_the_gateway_restart_is_followed(
    jp_serverapp, start_kernel, open_kernel_ws, gateway_client
):
    kid = await start_kernel()
    client = gateway_client(kid)
    restarted = asyncio.get_running_loop().create_future()
    client.add_lifecycle_listener(lambda e: restarted.done() or restarted.set_result(e))
    tab = await open_kernel_ws(kid, "legacy")
    tab.execute("import os; os._exit(1)")
    assert await asyncio.wait_for(restarted, TIMEOUT) == "restarted"
    await tab.wait_for(
        lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting"
    )
    await client.wait_ready(TIMEOUT)
    msg_id, _reply = await tab.run("print('alive again')")
    assert tab.stream_text(msg_id) == "alive again\n"


async def test_dropped_gateway_websocket_reconnects_and_gets_the_buffered_output(
    jp_serverapp,
    start_kernel,
    open_kernel_ws,
    gateway_client,
    kernel_gateway,
    tmp_path,
    monkeypatch,
):
    """The websocket to the gateway drops mid-cell; what the kernel printed meanwhile is
    buffered by the gateway under our session and replayed on the reconnect."""
    kid = await start_kernel()
    client = gateway_client(kid)
    tab = await open_kernel_ws(kid, "v1")
    flag = tmp_path / "go"
    code = (
        "import os, time\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print('while the gateway link was down')\n"
    )
    msg_id = tab.execute(code)
    await tab.wait_for(lambda m: m["msg_type"] == "execute_input")
    # hold the reconnect until the kernel has printed
    release = asyncio.Event()
    original = client._open

    async def held_open():
        await release.wait()
        return await original()

    monkeypatch.setattr(client, "_open", held_open)
    mark = kernel_gateway.mark()
    client.ws.close()
    await asyncio.to_thread(kernel_gateway.wait_log, f"Starting buffering for {kid}", 30, mark)
    flag.write_text("")

    def finished():
        return kernel_gateway.api("GET", f"api/kernels/{kid}")["execution_state"] == "idle"

    await wait_until(lambda: finished(), TIMEOUT)
    release.set()
    await tab.idle(msg_id)
    assert tab.stream_text(msg_id) == "while the gateway link was down\n"
    assert (await tab.reply(msg_id))["content"]["status"] == "ok"
    assert client.reconnects == 1
    await asyncio.to_thread(kernel_gateway.wait_log, "Replaying", 30, mark)


async def test_the_gateway_websocket_needs_the_token_the_client_sends(
    jp_serverapp, start_kernel, kernel_gateway
):
    """The test gateway refuses a kernel websocket without its token (what stock's
    in-process GatewayKernelClient gets: 401), so every test here proves the shared client
    authenticates; the token travels in a header, not in the URL the server logs."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_kernel(kid).shared_client
    await client.wait_ready(TIMEOUT)
    url = client.websocket_url()
    assert kernel_gateway.token not in url
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url))
    assert refused.value.code == 401


async def _reply_to(get, msg_id: str, timeout: float = TIMEOUT) -> dict:
    """The next message from ``get`` (a client's channel) answering ``msg_id``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await get(timeout=max(0.1, deadline - loop.time()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


async def test_in_process_client_of_a_gateway_kernel(
    jp_serverapp, start_kernel, open_kernel_ws, kernel_gateway
):
    """``km.client()`` (what extensions and debugger tools use) on a token-protected gateway:
    it authenticates, its stdin and control messages reach their channels (an input() is
    answered, a control request replied), a comm message with buffers does not stop it, and
    the tabs keep theirs."""
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, "v1")
    kc = jp_serverapp.kernel_manager.get_kernel(kid).client()
    await kc.start_channels()
    try:
        msg_id = kc.execute("name = input('name? '); print('hi', name)", allow_stdin=True)
        prompt = await kc.get_stdin_msg(timeout=TIMEOUT)
        assert prompt["content"]["prompt"] == "name? "
        kc.input("ada")
        reply = await _reply_to(kc.get_shell_msg, msg_id)
        assert reply["content"]["status"] == "ok"
        request = kc.session.msg("kernel_info_request")
        kc.control_channel.send(request)
        info = await _reply_to(kc.get_control_msg, request["header"]["msg_id"])
        assert info["msg_type"] == "kernel_info_reply"
        code = (
            "from comm import create_comm\n"
            "c = create_comm(target_name='test.bytes', data={})\n"
            "c.send({'n': 1}, buffers=[b'\\xff\\x00' * 8])\n"
        )
        sent = kc.execute(code)
        await _reply_to(kc.get_shell_msg, sent)
        # still alive after the binary frame
        again = kc.kernel_info()
        assert (await _reply_to(kc.get_shell_msg, again))["msg_type"] == "kernel_info_reply"
    finally:
        kc.stop_channels()
    # the tab was not disturbed
    msg_id, reply = await tab.run("print('tab still here')")
    assert reply["content"]["status"] == "ok"
    assert tab.stream_text(msg_id) == "tab still here\n"
