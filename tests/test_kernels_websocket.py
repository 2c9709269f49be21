"""Kernel websockets as listeners of the shared client: protocols, routing, stdin, comms,
the reconnect buffer, request hooks and listener isolation."""

from __future__ import annotations

import asyncio
import json

import pytest
from fixtures_kernels import TIMEOUT, wait_until

PROTOCOLS = ["v1", "legacy"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tab_executes_and_gets_its_reply_and_output(start_kernel, open_kernel_ws, protocol):
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, protocol)
    msg_id, reply = await tab.run("print('hello'); 6 * 7")
    assert reply["msg_type"] == "execute_reply"
    assert reply["content"]["status"] == "ok"
    assert tab.stream_text(msg_id) == "hello\n"
    result = [m for m in tab.children(msg_id, "iopub") if m["msg_type"] == "execute_result"]
    assert result[0]["content"]["data"]["text/plain"] == "42"


async def test_replies_go_only_to_the_requesting_tab_iopub_to_all(start_kernel, open_kernel_ws):
    kid = await start_kernel()
    tab_a = await open_kernel_ws(kid, "v1")
    tab_b = await open_kernel_ws(kid, "legacy")
    info_a = tab_a.send("shell", "kernel_info_request")
    info_b = tab_b.send("shell", "kernel_info_request")
    await tab_a.reply(info_a)
    await tab_b.reply(info_b)
    msg_id, _ = await tab_a.run("print('from a')")
    # tab b sees the iopub side of a's execution...
    await tab_b.idle(msg_id)
    assert tab_b.stream_text(msg_id) == "from a\n"
    # ...but none of a's replies, and a none of b's
    own_b, _ = await tab_b.run("1")
    assert tab_b.children(msg_id, "shell") == []
    assert all(m["channel"] == "iopub" for m in tab_b.children(info_a))
    assert all(m["channel"] == "iopub" for m in tab_a.children(own_b))
    assert all(m["channel"] == "iopub" for m in tab_a.children(info_b))


async def test_input_prompts_only_the_tab_that_executed(start_kernel, open_kernel_ws):
    kid = await start_kernel()
    tab_a = await open_kernel_ws(kid, "v1")
    tab_b = await open_kernel_ws(kid, "legacy")
    msg_id = tab_a.execute("name = input('name? '); print('hi', name)", allow_stdin=True)
    prompt = await tab_a.wait_for(lambda m: m["channel"] == "stdin")
    assert prompt["msg_type"] == "input_request"
    assert prompt["content"]["prompt"] == "name? "
    tab_a.send("stdin", "input_reply", {"value": "ada"}, parent=prompt["header"])
    await tab_a.reply(msg_id)
    await tab_b.idle(msg_id)
    assert "hi ada\n" in tab_a.stream_text(msg_id)
    assert "hi ada\n" in tab_b.stream_text(msg_id)
    assert not any(m["channel"] == "stdin" for m in tab_b.messages)


async def test_comm_round_trip_reaches_every_tab(start_kernel, open_kernel_ws):
    """The ipywidgets path: the kernel opens a comm, one tab messages it, all tabs see the echo."""
    kid = await start_kernel()
    tab_a = await open_kernel_ws(kid, "v1")
    tab_b = await open_kernel_ws(kid, "legacy")
    code = (
        "from comm import create_comm\n"
        "c = create_comm(target_name='test.echo', data={'value': 1})\n"
        "c.on_msg(lambda m: c.send({'echo': m['content']['data']['value']}))\n"
    )
    await tab_a.run(code)
    opens = [await tab.wait_for(lambda m: m["msg_type"] == "comm_open") for tab in (tab_a, tab_b)]
    comm_id = opens[0]["content"]["comm_id"]
    assert opens[1]["content"]["comm_id"] == comm_id
    tab_b.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"value": 7}})
    for tab in (tab_a, tab_b):
        echo = await tab.wait_for(lambda m: m["msg_type"] == "comm_msg" and m["channel"] == "iopub")
        assert echo["content"]["data"] == {"echo": 7}


async def test_reconnect_buffer_replays_messages_missed_while_away(
    jp_serverapp, start_kernel, open_kernel_ws, kernel_model, tmp_path
):
    kid = await start_kernel()
    flag = tmp_path / "go"
    tab = await open_kernel_ws(kid, "v1")
    session_id = tab.session_id
    code = (
        "import os, time\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print('while you were away')\n"
    )
    msg_id = tab.execute(code)
    await tab.wait_for(lambda m: m["msg_type"] == "execute_input")
    tab.close()
    await wait_until(lambda: jp_serverapp.kernel_manager._kernel_connections[kid] == 0)
    flag.write_text("")
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    # wait until the kernel finished: its idle status reached the shared client
    done = asyncio.get_running_loop().create_future()

    def on_idle(m):
        if m.parent_msg_id == msg_id and m.content.get("execution_state") == "idle":
            done.set_result(None)

    watcher = client.add_listener(on_idle, msg_types=[("status", "iopub")])
    await asyncio.wait_for(done, TIMEOUT)
    client.remove_listener(watcher)
    back = await open_kernel_ws(kid, "v1", session_id=session_id)
    await back.reply(msg_id)
    await back.idle(msg_id)
    assert back.stream_text(msg_id) == "while you were away\n"
    # a different session does not get someone else's buffer
    other = await open_kernel_ws(kid, "legacy")
    _own, _ = await other.run("1")
    assert other.children(msg_id) == []


async def test_request_hook_withholds_outputs_from_the_sending_tab_only(
    jp_serverapp, start_kernel, open_kernel_ws
):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    seen = []

    def hook(msg, origin):
        seen.append((msg["header"]["msg_type"], origin))
        return bool(msg.get("metadata", {}).get("cellId"))

    client.add_request_hook(hook)
    notebook = await open_kernel_ws(kid, "v1")
    console = await open_kernel_ws(kid, "legacy")
    msg_id, _reply = await notebook.run("print('into the document'); 1 + 1", cellId="cell-1")
    await console.idle(msg_id)
    assert ("execute_request", f"websocket:{kid}:{notebook.session_id}") in seen
    kinds = {m["msg_type"] for m in notebook.children(msg_id)}
    assert {"status", "execute_input", "execute_reply"} <= kinds
    assert not kinds & {"stream", "execute_result"}
    # a console on the same kernel still shows the notebook's output
    assert console.stream_text(msg_id) == "into the document\n"
    # requests the hook does not claim keep their outputs
    plain, _ = await notebook.run("print('plain')")
    assert notebook.stream_text(plain) == "plain\n"
    assert not client.router.withheld  # the idle status released the entry


async def test_failing_and_slow_listeners_do_not_block_tabs(
    jp_serverapp, start_kernel, open_kernel_ws
):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    gate = asyncio.Event()
    slow_got = []

    def broken(msg):
        raise RuntimeError("listener bug")

    async def slow(msg):
        await gate.wait()
        slow_got.append(msg.msg_id)

    client.add_listener(broken)
    client.listener_queue_limit = 5
    slow_listener = client.add_listener(slow, channels=["iopub"])
    tab = await open_kernel_ws(kid, "v1")
    msg_id, reply = await tab.run("for i in range(20): print(i, flush=True)")
    assert reply["content"]["status"] == "ok"
    assert tab.stream_text(msg_id) == "".join(f"{i}\n" for i in range(20))
    assert slow_listener.pending <= 5
    assert slow_listener.dropped > 0
    gate.set()
    await wait_until(lambda: slow_listener.pending == 0)
    assert len(slow_got) == 1 + 5  # the one in flight, then the bounded queue, in order


async def test_bad_websocket_messages_are_ignored(start_kernel, open_kernel_ws):
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, "legacy")
    tab.conn.write_message("not json")
    tab.conn.write_message(json.dumps({"channel": "nope", "header": {"msg_type": "x"}}))
    _, reply = await tab.run("1")
    assert reply["content"]["status"] == "ok"
