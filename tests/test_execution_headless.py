"""Headless execution, kernel lifecycle, late output, browser-sent executions, stdin."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from fixtures_execution import (
    LONG_CELL,
    TIMEOUT,
    LongCell,
    cell_py,
    died_mid_cell,
    entry,
    gate_code,
    post_execute,
    post_input,
    stream_text,
    submit,
)
from fixtures_kernels import wait_until
from fixtures_rooms import read_notebook


def saved_cell(root, path, index):
    try:
        return read_notebook(root, path)["cells"][index]
    except ValueError:  # the file was caught mid-write: no cell yet
        return {"outputs": [], "execution_count": None}


def saved_text(cell, name="stdout"):
    return "".join(
        "".join(o["text"])
        for o in cell["outputs"]
        if o["output_type"] == "stream" and o["name"] == name
    )


async def test_long_cell_keeps_writing_after_its_collaborator_left(
    notebook_session, api, collab_client, wait_request, jp_root_dir
):
    nb = await notebook_session([LONG_CELL.code])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    rid = await submit(api, nb, cid)
    await asyncio.sleep(0.1)  # the scenario: the browser goes away 0.1 s after starting
    await alice.close()
    result = await wait_request(rid, timeout=TIMEOUT + LONG_CELL.lines * LONG_CELL.interval)
    assert result["result"] == "ok" and result["execution_count"] == 1

    def saved():
        cell = saved_cell(jp_root_dir, nb.path, 0)
        return cell["execution_count"] == 1 and saved_text(cell) == LONG_CELL.expected()

    await wait_until(saved, TIMEOUT)
    bob = await collab_client(nb.path)
    cell = cell_py(bob.document, cid)
    assert stream_text(cell) == LONG_CELL.expected()
    assert cell["execution_count"] == 1 and cell["execution_state"] == "idle"


async def test_rest_request_for_unopened_notebook_and_late_joiner_sees_it_live(
    notebook_session, api, collab_client, wait_request, execution_manager, jp_root_dir
):
    short = LongCell(lines=8, interval=0.3)
    nb = await notebook_session([short.code, "print('next')"])
    a, b = nb.cell_ids
    rm = execution_manager.room_manager
    # Nobody has the notebook open.
    assert rm.find_room(nb.room_id) is None or not rm.find_room(nb.room_id).clients
    ra = await submit(api, nb, a)
    rb = await submit(api, nb, b)
    room = rm.find_room(nb.room_id)
    assert room is not None and room.holds  # created and held by the queue

    def first_line_written():
        return "line 1\n" in stream_text(room.document.ycells[0].to_py())

    await wait_until(first_line_written, TIMEOUT)
    bob = await collab_client(nb.path)
    cell = cell_py(bob.document, a)
    assert cell["execution_state"] == "running" and cell["execution_count"] is None
    assert entry(bob.document, b)["status"] == "queued"
    assert cell_py(bob.document, b)["execution_state"] == "running"
    await bob.wait_for(lambda d: f"line {short.lines - 1}\n" in stream_text(cell_py(d, a)), TIMEOUT)
    await bob.wait_for(lambda d: cell_py(d, b).get("execution_count") == 2, TIMEOUT)
    assert stream_text(cell_py(bob.document, a)) == short.expected()
    assert (await wait_request(ra))["result"] == "ok"
    assert (await wait_request(rb))["result"] == "ok"
    await wait_until(lambda: saved_cell(jp_root_dir, nb.path, 1)["execution_count"] == 2, TIMEOUT)


async def test_restart_mid_queue(notebook_session, api, collab_client, wait_request, tmp_path):
    nb = await notebook_session([gate_code(tmp_path / "never"), "print('b')"])
    a, b = nb.cell_ids
    alice = await collab_client(nb.path)
    ra, rb = await submit(api, nb, a), await submit(api, nb, b)
    await alice.wait_for(lambda d: (entry(d, b) or {}).get("status") == "queued", TIMEOUT)
    code, _, _ = await api("POST", "api", "kernels", nb.kernel_id, "restart")
    assert code == 200
    assert (await wait_request(ra))["result"] == "error"
    assert (await wait_request(rb))["result"] == "aborted"
    await alice.wait_for(
        lambda d: all(cell_py(d, x)["execution_state"] == "idle" for x in (a, b)), TIMEOUT
    )
    outputs = cell_py(alice.document, a)["outputs"]
    assert outputs[-1]["ename"] == "KernelRestarted"
    rid = await submit(api, nb, b)
    result = await wait_request(rid)
    assert result["result"] == "ok" and result["execution_count"] == 1


async def test_kernel_killed_mid_cell(
    notebook_session, api, collab_client, wait_request, tmp_path, jp_serverapp
):
    nb = await notebook_session(
        [
            gate_code(tmp_path / "never", "").replace(
                "import os", "print('started', flush=True)\nimport os"
            ),
            "print('b')",
        ]
    )
    a, b = nb.cell_ids
    alice = await collab_client(nb.path)
    ra, rb = await submit(api, nb, a), await submit(api, nb, b)
    await alice.wait_for(lambda d: stream_text(cell_py(d, a)) == "started\n", TIMEOUT)
    kernel = jp_serverapp.kernel_manager.get_kernel(nb.kernel_id)
    os.kill(kernel.provisioner.process.pid, signal.SIGKILL)
    cell = await died_mid_cell(wait_request, alice, (ra, a), (rb, b))
    assert "died" in cell["outputs"][-1]["evalue"]
    assert entry(alice.document, a) is None


async def test_background_thread_output_lands_after_room_was_freed(
    notebook_session, api, collab_client, wait_request, tmp_path, execution_manager, jp_root_dir
):
    flag = tmp_path / "late"
    code = (
        "import threading, os, time\n"
        "def later():\n"
        f"    while not os.path.exists({str(flag)!r}):\n"
        "        time.sleep(0.02)\n"
        "    print('late output', flush=True)\n"
        "threading.Thread(target=later).start()\n"
        "print('cell done')\n"
    )
    nb = await notebook_session([code, "print('again')"])
    a, b = nb.cell_ids
    rm = execution_manager.room_manager
    old_delay = rm.free_delay
    rm.free_delay = 0
    try:
        alice = await collab_client(nb.path)
        rid = await submit(api, nb, a)
        assert (await wait_request(rid))["result"] == "ok"
        await alice.wait_for(lambda d: cell_py(d, a).get("execution_count") == 1, TIMEOUT)
        await alice.close()
        await wait_until(lambda: rm.find_room(nb.room_id) is None, TIMEOUT)
        flag.write_text("")

        def landed():
            cell = saved_cell(jp_root_dir, nb.path, 0)
            return saved_text(cell) == "cell done\nlate output\n"

        await wait_until(landed, TIMEOUT)
        # The recreated room is still linked: executions work and count on.
        rid = await submit(api, nb, b)
        assert (await wait_request(rid))["execution_count"] == 2
    finally:
        rm.free_delay = old_delay


async def test_kernel_switch_follows_the_session(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["import os; print(os.getpid())"])
    cid = nb.cell_ids[0]
    code, session, _ = await api(
        "PATCH", "api", "sessions", nb.session_id, body={"kernel": {"name": "python3"}}
    )
    assert code == 200
    new_kid = session["kernel"]["id"]
    assert new_kid != nb.kernel_id
    code, data, _ = await post_execute(api, nb, cid, kernel_id=new_kid)
    assert code == 202, data
    assert (await wait_request(data["request_id"]))["result"] == "ok"
    code, data, _ = await post_execute(api, nb, cid)
    assert code in (400, 404), data


async def test_browser_websocket_execute_is_written_once_by_the_server(
    notebook_session, collab_client, open_kernel_ws, execution_manager
):
    nb = await notebook_session(["print('x')"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    ws = await open_kernel_ws(nb.kernel_id)
    console = await open_kernel_ws(nb.kernel_id)
    msg_id = ws.execute("print('from the browser')", cellId=cid)
    await ws.reply(msg_id)
    await ws.idle(msg_id)
    # The browser's websocket got the reply but none of the output.
    assert ws.stream_text(msg_id) == ""
    await alice.wait_for(lambda d: cell_py(d, cid).get("execution_count") == 1, TIMEOUT)
    cell = cell_py(alice.document, cid)
    assert cell["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "from the browser\n"}
    ]
    # A console execution (no cellId) is untouched: its output reaches its websocket only.
    cmsg = console.execute("print('console')")
    await console.idle(cmsg)
    assert console.stream_text(cmsg) == "console\n"
    assert cell_py(alice.document, cid)["outputs"][0]["text"] == "from the browser\n"


async def test_input_answered_by_a_collaborator(notebook_session, api, collab_client, wait_request):
    nb = await notebook_session(["name = input('name? ')\nprint('hello', name)"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    rid = await submit(api, nb, cid)
    await alice.wait_for(lambda d: (entry(d, cid) or {}).get("input_request") is not None, TIMEOUT)
    assert entry(alice.document, cid)["input_request"] == {"prompt": "name? ", "password": False}
    code, polled, _ = await api("GET", "api", "kernels", nb.kernel_id, "requests", rid)
    # Still running (202: anyone in the document may answer), with the prompt.
    assert code == 202 and polled["input_request"]["prompt"] == "name? "
    code, data, _ = await post_input(api, nb, cid, "bob")
    assert code == 200, data
    assert (await wait_request(rid))["result"] == "ok"
    await alice.wait_for(lambda d: cell_py(d, cid).get("execution_count") == 1, TIMEOUT)
    assert stream_text(cell_py(alice.document, cid)) == "name? bob\nhello bob\n"
    code, data, _ = await post_input(api, nb, cid, "again")
    assert code == 409


async def test_unanswered_input_times_out(
    notebook_session, api, collab_client, wait_request, execution_manager
):
    nb = await notebook_session(["input('never answered: ')", "print('after')"])
    a, b = nb.cell_ids
    old = execution_manager.input_timeout
    execution_manager.input_timeout = 1.0
    try:
        alice = await collab_client(nb.path)
        ra, rb = await submit(api, nb, a), await submit(api, nb, b)
        assert (await wait_request(ra))["result"] == "error"
        assert (await wait_request(rb))["result"] == "aborted"
        await alice.wait_for(
            lambda d: (
                cell_py(d, a)["execution_state"] == "idle"
                and any(o.get("ename") == "StdinTimeout" for o in cell_py(d, a)["outputs"])
            ),
            TIMEOUT,
        )
        assert entry(alice.document, a) is None
        rid = await submit(api, nb, b)
        assert (await wait_request(rid))["result"] == "ok"
    finally:
        execution_manager.input_timeout = old


async def test_cell_whose_idle_status_was_lost_ends_with_a_note(
    notebook_session, api, collab_client, wait_request, execution_manager, monkeypatch
):
    """A kernel's PUB socket drops iopub messages for a subscriber that could not read (a
    server that got no CPU for a while): a lost idle must not leave the cell [*] for ever."""
    monkeypatch.setattr(execution_manager, "idle_grace", 0.5)
    router = execution_manager.router
    deliver = router.on_kernel_message

    def drop_idle(link, msg):  # the fault: this kernel's idle statuses never arrive
        if msg.channel == "iopub" and msg.msg_type == "status":
            if msg.content.get("execution_state") == "idle":
                return
        deliver(link, msg)

    monkeypatch.setattr(router, "on_kernel_message", drop_idle)
    nb = await notebook_session(["print('still here')"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    result = await wait_request(await submit(api, nb, cid))
    assert result["result"] == "ok" and result["execution_count"] == 1
    await alice.wait_for(lambda d: cell_py(d, cid)["execution_state"] == "idle", TIMEOUT)
    cell = cell_py(alice.document, cid)
    assert cell["execution_count"] == 1
    assert stream_text(cell) == "still here\n"
    assert "may be missing" in stream_text(cell, "stderr")


@pytest.mark.parametrize("queued_meanwhile", [False, True])
async def test_output_and_requests_between_a_cells_reply_and_its_idle_status(
    queued_meanwhile, notebook_session, api, collab_client, wait_request, execution_manager
):
    """ipykernel replies before it publishes idle, and output (its iopub thread) or another
    request can come in between: the cell ends with all of its output and its count, and
    the execution map holds only what still waits."""
    router = execution_manager.router
    deliver = router.on_kernel_message
    held: list = []
    replied = asyncio.Event()

    def reorder(link, msg):  # stream output and idle statuses wait until release()
        idle = msg.msg_type == "status" and msg.content.get("execution_state") == "idle"
        if held is not None and msg.channel == "iopub" and (idle or msg.msg_type == "stream"):
            held.append((link, msg))
            return
        deliver(link, msg)
        if msg.msg_type == "execute_reply":
            replied.set()

    def release():
        nonlocal held
        waiting, held = held, None
        for link, msg in waiting:
            deliver(link, msg)

    router.on_kernel_message = reorder
    try:
        nb = await notebook_session(["print('late')\n1+1", "2+2"])
        a, b = nb.cell_ids
        alice = await collab_client(nb.path)
        ra = await submit(api, nb, a)
        await asyncio.wait_for(replied.wait(), TIMEOUT)
        rb = await submit(api, nb, b) if queued_meanwhile else None
        release()
        assert (await wait_request(ra))["result"] == "ok"
        if rb is not None:
            assert (await wait_request(rb))["result"] == "ok"
    finally:
        router.on_kernel_message = deliver

    def ended(d) -> bool:
        cell = cell_py(d, a)
        return cell.get("execution_state") == "idle" and stream_text(cell) == "late\n"

    await alice.wait_for(ended, TIMEOUT)
    cell = cell_py(alice.document, a)
    assert cell["execution_count"] == 1
    assert [o["data"]["text/plain"] for o in cell["outputs"] if "data" in o] == ["2"]
    if rb is not None:
        await alice.wait_for(lambda d: cell_py(d, b).get("execution_count") == 2, TIMEOUT)
    await alice.wait_for(lambda d: entry(d, a) is None and entry(d, b) is None, TIMEOUT)
