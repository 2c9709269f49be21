"""Stock jupyter_server behaviours that must survive the shared client, each against a real
ipykernel: /api/kernels activity, connections, interrupt, restart, shutdown, kernel switch,
two notebooks on one kernel, a console on a notebook's kernel."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from fixtures_kernels import TIMEOUT, wait_until
from jupyter_server._tz import isoformat

from collab_kernels.kernels.manager import SharedClientKernelManager


async def _new_session(jp_fetch, path, *, kind="notebook", kernel=None):
    body = {"path": path, "type": kind, "name": path, "kernel": kernel or {"name": "python3"}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(response.body)


async def test_execution_state_last_activity_and_connections(
    jp_serverapp, start_kernel, open_kernel_ws, kernel_model, tmp_path
):
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager
    await km.get_shared_client(kid).wait_ready(TIMEOUT)
    # as with stock jupyter_server, a kernel nobody connected to is still "starting"
    # (the shared client's own kernel_info requests do not count)
    model = await kernel_model(kid)
    assert model["execution_state"] == "starting"
    assert model["connections"] == 0
    tab_a = await open_kernel_ws(kid, "v1")
    # a websocket opening nudges it (stock): idle
    await wait_until(lambda: km.get_kernel(kid).execution_state == "idle")
    tab_b = await open_kernel_ws(kid, "legacy")
    assert (await kernel_model(kid))["connections"] == 2
    before = (await kernel_model(kid))["last_activity"]
    flag = tmp_path / "release"
    msg_id = tab_a.execute(
        f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.01)"
    )
    await tab_a.wait_for(lambda m: m["msg_type"] == "execute_input")
    busy = await kernel_model(kid)
    assert busy["execution_state"] == "busy"
    assert busy["last_activity"] > before
    flag.write_text("")
    await tab_a.idle(msg_id)
    await wait_until(lambda: jp_serverapp.kernel_manager.get_kernel(kid).execution_state == "idle")
    # a kernel_info_request (untracked) does not count as activity
    idle_since = (await kernel_model(kid))["last_activity"]
    info = tab_b.send("shell", "kernel_info_request")
    await tab_b.reply(info)
    await tab_b.wait_for(
        lambda m: (
            m["parent_header"].get("msg_id") == info
            and m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle"
        )
    )
    model = await kernel_model(kid)
    assert model["last_activity"] == idle_since
    assert model["execution_state"] == "idle"
    tab_b.close()
    await wait_until(lambda: jp_serverapp.kernel_manager._kernel_connections[kid] == 1)
    assert (await kernel_model(kid))["connections"] == 1


async def test_activity_tracking_uses_no_extra_socket(jp_serverapp, start_kernel):
    kid = await start_kernel()
    kernel = jp_serverapp.kernel_manager.get_kernel(kid)
    assert getattr(kernel, "_activity_stream", None) is None
    names = [listener.name for listener in kernel.shared_client.listeners]
    assert names == ["activity"]


async def test_a_burst_of_output_ends_with_its_last_activity(
    jp_serverapp, start_kernel, open_kernel_ws, kernel_model
):
    """During a burst the activity traits are assigned at most every few milliseconds
    (kernels/activity.py; test_kernels_activity.py has the exact rule), and a status at
    once: when the idle status has been handled, /api/kernels shows its time, as with
    stock's assignment per message."""
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager
    tab = await open_kernel_ws(kid, "v1")
    kernel = km.get_kernel(kid)
    await wait_until(lambda: kernel.execution_state == "idle")
    assigned: list = []
    km.observe(lambda change: assigned.append(change["new"]), "last_kernel_activity")
    msg_id = tab.execute("import sys\nfor i in range(400): print(i); sys.stdout.flush()")
    idle = await tab.idle(msg_id)
    sent = datetime.fromisoformat(idle["header"]["date"].replace("Z", "+00:00"))
    assert km.last_kernel_activity == kernel.last_activity >= sent
    assert (await kernel_model(kid))["last_activity"] == isoformat(kernel.last_activity)
    assert assigned == sorted(assigned)
    assert len(assigned) < 200  # 400 prints and their statuses


async def test_interrupt(jp_serverapp, jp_fetch, start_kernel, open_kernel_ws):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    events = []
    client.add_lifecycle_listener(events.append)
    tab = await open_kernel_ws(kid, "v1")
    # Interrupt once the code runs: a SIGINT that lands between execute_input and the
    # user's code is caught by ipykernel and ignored.
    msg_id = tab.execute("import time; print('started', flush=True); time.sleep(60)")
    await tab.wait_for(
        lambda m: m["msg_type"] == "stream" and m["parent_header"]["msg_id"] == msg_id
    )
    response = await jp_fetch("api", "kernels", kid, "interrupt", method="POST", body="")
    assert response.code == 204
    # lifecycle listeners heard of it before the kernel was interrupted
    assert events == ["interrupted"]
    reply = await tab.reply(msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"


async def test_interrupt_without_notification(jp_serverapp, start_kernel, open_kernel_ws):
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager
    events = []
    km.get_shared_client(kid).add_lifecycle_listener(events.append)
    tab = await open_kernel_ws(kid, "v1")
    msg_id = tab.execute("import time; print('started', flush=True); time.sleep(60)")
    await tab.wait_for(
        lambda m: m["msg_type"] == "stream" and m["parent_header"]["msg_id"] == msg_id
    )
    await km.interrupt_kernel(kid, notify=False)
    reply = await tab.reply(msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert events == []


async def test_restart_keeps_listeners_and_tabs_on_the_new_kernel(
    jp_serverapp, jp_fetch, start_kernel, open_kernel_ws, kernel_model
):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    events = []
    client.add_lifecycle_listener(events.append)
    seen = []
    client.add_listener(lambda m: seen.append(m), channels=["iopub"], msg_types=["stream"])
    tab = await open_kernel_ws(kid, "v1")
    _, reply = await tab.run("import os; before = os.getpid(); x = 1")
    pid_id, _ = await tab.run("print(os.getpid())")
    old_pid = tab.stream_text(pid_id)
    response = await jp_fetch("api", "kernels", kid, "restart", method="POST", body="")
    assert response.code == 200
    assert events == ["restarted"]
    # the same tab keeps working, against a new process with a fresh namespace
    new_id, reply = await tab.run("import os; print(os.getpid()); print('x' in dir())")
    assert reply["content"]["status"] == "ok"
    out = tab.stream_text(new_id).split()
    assert out[0] != old_pid.strip() and out[1] == "False"
    # the listener registered before the restart saw the new kernel's output
    assert any(m.parent_msg_id == new_id for m in seen)
    await wait_until(lambda: jp_serverapp.kernel_manager.get_kernel(kid).execution_state == "idle")
    assert (await kernel_model(kid))["connections"] == 1


async def test_automatic_restart_after_the_kernel_dies(jp_serverapp, start_kernel, open_kernel_ws):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    restarted = asyncio.get_running_loop().create_future()
    client.add_lifecycle_listener(
        lambda e: e == "restarted" and not restarted.done() and restarted.set_result(e)
    )
    tab = await open_kernel_ws(kid, "legacy")
    tab.execute("import os; os._exit(1)")
    status = await tab.wait_for(
        lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting"
    )
    assert status["channel"] == "iopub"
    await asyncio.wait_for(restarted, TIMEOUT)
    await client.wait_ready(TIMEOUT)
    msg_id, _reply = await tab.run("print('alive again')")
    assert tab.stream_text(msg_id) == "alive again\n"


async def test_shutdown_closes_the_shared_client(
    jp_serverapp, jp_fetch, start_kernel, open_kernel_ws
):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    events = []
    client.add_lifecycle_listener(events.append)
    tab = await open_kernel_ws(kid, "v1")
    await tab.run("1")
    response = await jp_fetch("api", "kernels", kid, method="DELETE")
    assert response.code == 204
    assert events == ["shutdown"]
    assert client.closed and not client.streams
    response = await jp_fetch("api", "kernels", method="GET")
    assert kid not in [k["id"] for k in json.loads(response.body)]


async def test_session_kernel_switch(jp_serverapp, jp_fetch, open_kernel_ws):
    session = await _new_session(jp_fetch, "switch.ipynb")
    old_kid = session["kernel"]["id"]
    old_client = jp_serverapp.kernel_manager.get_shared_client(old_kid)
    tab = await open_kernel_ws(old_kid, "v1")
    await tab.run("x = 'old'")
    response = await jp_fetch(
        "api",
        "sessions",
        session["id"],
        method="PATCH",
        body=json.dumps({"kernel": {"name": "python3"}}),
    )
    new_kid = json.loads(response.body)["kernel"]["id"]
    assert new_kid != old_kid
    km = jp_serverapp.kernel_manager
    assert isinstance(km.get_kernel(new_kid), SharedClientKernelManager)
    new_tab = await open_kernel_ws(new_kid, "v1", session_id=tab.session_id)
    msg_id, _reply = await new_tab.run("print('x' in dir())")
    assert new_tab.stream_text(msg_id) == "False\n"
    # jupyter_server shut the old kernel down: its shared client is closed, the new is not
    assert old_kid not in km
    assert old_client.closed and not km.get_shared_client(new_kid).closed
    msg_id, _reply = await new_tab.run("print('still here')")
    assert new_tab.stream_text(msg_id) == "still here\n"
    response = await jp_fetch("api", "sessions", session["id"], method="GET")
    assert json.loads(response.body)["kernel"]["id"] == new_kid


async def test_two_notebooks_and_a_console_on_one_kernel(jp_fetch, open_kernel_ws, kernel_model):
    first = await _new_session(jp_fetch, "a.ipynb")
    kid = first["kernel"]["id"]
    second = await _new_session(jp_fetch, "b.ipynb", kernel={"id": kid})
    console = await _new_session(jp_fetch, "console-1", kind="console", kernel={"id": kid})
    assert second["kernel"]["id"] == kid == console["kernel"]["id"]
    nb_a = await open_kernel_ws(kid, "v1")
    nb_b = await open_kernel_ws(kid, "v1")
    con = await open_kernel_ws(kid, "legacy")
    assert (await kernel_model(kid))["connections"] == 3
    # both notebooks run at once; each gets its own replies, the kernel is shared
    id_a = nb_a.execute("shared = 'from a'; print('a ran')")
    id_b = nb_b.execute("print('b ran')")
    reply_a = await nb_a.reply(id_a)
    reply_b = await nb_b.reply(id_b)
    assert reply_a["content"]["status"] == reply_b["content"]["status"] == "ok"
    await nb_a.idle(id_b)
    assert nb_a.children(id_b, "shell") == [] and nb_b.children(id_a, "shell") == []
    read_id, _ = await nb_b.run("print(shared)")
    assert nb_b.stream_text(read_id) == "from a\n"
    # the console (a foreign session) sees the notebooks' execution on iopub
    await con.idle(id_a)
    assert con.stream_text(id_a) == "a ran\n"
    inputs = [m for m in con.children(id_a, "iopub") if m["msg_type"] == "execute_input"]
    assert inputs and inputs[0]["parent_header"]["session"] == nb_a.session_id
