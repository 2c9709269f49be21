"""What the stock JupyterLab frontend needs of server-side executions (#16), seen from
collaborators' documents: trusted outputs, live display updates, empty cells, a kernel gone.

JupyterLab 4.6 facts these tests stand on (read from its bundled JavaScript):
- a cell model takes its trust from ``metadata.trusted`` when it is created, and never from a
  remote change afterwards; a user's own run sets ``trusted`` and writes ``metadata.trusted``;
- a code cell re-renders outputs on changes of the outputs array (inserts are appended), not
  on a change inside one output's Map;
- a cell with no code is not sent to the kernel: ``[ ]``, no outputs.
"""

from __future__ import annotations

import json

import nbformat
from fixtures_execution import TIMEOUT, cell_py, find_cell, post_execute

from collab_kernels.execution.outputs import REINSERT_LIMIT


def cells_events(conn):
    """Every delta of the collaborator's cells array (a frontend creates a cell model for
    each inserted cell)."""
    deltas = []
    ycells = conn.document.ycells
    deltas_subscription = ycells.observe(lambda event: deltas.append(event.delta))
    conn.test_subscriptions = (ycells, deltas_subscription)  # kept while the test runs
    return deltas


def inserted_ids(deltas):
    return [cell.get("id") for delta in deltas for part in delta for cell in part.get("insert", ())]


async def test_outputs_of_a_server_run_are_trusted_for_everyone_and_after_reload(
    notebook_session, api, collab_client, wait_request, jp_root_dir, jp_serverapp
):
    js = "from IPython.display import Javascript, display\ndisplay(Javascript('1'))"
    nb = await notebook_session([js, "2"])
    a, b = nb.cell_ids
    alice = await collab_client(nb.path)
    bob = await collab_client(nb.path)
    # The file is not signed: its code cells load untrusted.
    assert find_cell(alice.document, a)["metadata"].get("trusted") is False
    deltas = cells_events(bob)
    code, data, _ = await post_execute(api, nb, cells=[{"cell_id": a}, {"cell_id": b}])
    assert code == 202, data
    await wait_request(data["request_id"])
    for conn in (alice, bob):
        await conn.wait_for(lambda d: cell_py(d, b).get("execution_count") == 2, TIMEOUT)
        for cid in (a, b):
            assert cell_py(conn.document, cid)["metadata"]["trusted"] is True
        assert "application/javascript" in cell_py(conn.document, a)["outputs"][0]["data"]
    # The JavaScript cell came anew (a frontend creates its model trusted), once; the cell
    # whose result is plain text, which renders the same untrusted, stayed as it was.
    assert inserted_ids(deltas) == [a]
    # Running it again does not re-insert a trusted cell.
    deltas.clear()
    code, data, _ = await post_execute(api, nb, a)
    await wait_request(data["request_id"])
    await bob.wait_for(lambda d: cell_py(d, a).get("execution_count") == 3, TIMEOUT)
    assert inserted_ids(deltas) == []
    # Saved, the notebook is signed, as jupyter_server signs it; loaded again, it is trusted.
    assert await alice.save() == "success"
    saved = nbformat.read(str(jp_root_dir / nb.path), as_version=4)
    assert jp_serverapp.contents_manager.notary.check_signature(saved)
    code, model, _ = await api("GET", "api", "contents", nb.path)
    assert all(c["metadata"]["trusted"] for c in model["content"]["cells"])


async def test_a_cell_is_re_created_trusted_only_when_an_output_needs_trust(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "go"
    html = (
        "import os, time\n"
        "from IPython.display import HTML, display\n"
        "print('before')\n"
        "h = display('plain', display_id=True)\n"
        f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
        "h.update(HTML('<b>bold</b>'))\n"
        "print('after')\n"
    )
    nb = await notebook_session(["print('only text')", html])
    printing, rich = nb.cell_ids
    alice = await collab_client(nb.path)
    deltas = cells_events(alice)
    code, data, _ = await post_execute(api, nb, cells=[{"cell_id": printing}, {"cell_id": rich}])
    assert code == 202, data

    def texts(doc):
        return [
            (o.get("data") or {}).get("text/html")
            or (o.get("data") or {}).get("text/plain")
            or o.get("text")
            for o in cell_py(doc, rich).get("outputs", [])
        ]

    await alice.wait_for(lambda d: texts(d) == ["before\n", "'plain'"], TIMEOUT)
    # Text so far: no cell re-created, both marked trusted (the notebook is signed on save).
    assert inserted_ids(deltas) == []
    assert cell_py(alice.document, printing)["metadata"]["trusted"] is True
    assert cell_py(alice.document, rich)["metadata"]["trusted"] is True
    flag.write_text("")
    await wait_request(data["request_id"])
    await alice.wait_for(lambda d: cell_py(d, rich).get("execution_count") == 2, TIMEOUT)
    # The HTML update re-created its cell once, its earlier outputs kept, in place.
    assert inserted_ids(deltas) == [rich]
    assert texts(alice.document) == ["before\n", "<b>bold</b>", "after\n"]
    assert [c["id"] for c in alice.document.get()["cells"]] == [printing, rich]
    assert cell_py(alice.document, printing)["outputs"][0]["text"] == "only text\n"


async def test_update_display_data_is_live_for_collaborators(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "go"
    code = (
        "import os, time\n"
        "h = display('starting...', display_id=True)\n"
        "print('between')\n"
        f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
        "h.update('step 5 of 5')\n"
    )
    nb = await notebook_session([code])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)

    def texts(doc):
        return [
            o.get("data", {}).get("text/plain") or o.get("text")
            for o in cell_py(doc, cid).get("outputs", [])
        ]

    code_, data, _ = await post_execute(api, nb, cid)
    assert code_ == 202, data
    await alice.wait_for(lambda d: texts(d) == ["'starting...'", "between\n"], TIMEOUT)
    outputs_deltas = []
    youtputs = find_cell(alice.document, cid)["outputs"]
    subscription = youtputs.observe(lambda e: outputs_deltas.append(e.delta))
    flag.write_text("")
    await wait_request(data["request_id"])
    await alice.wait_for(lambda d: texts(d) == ["'step 5 of 5'", "between\n"], TIMEOUT)
    # The update reached alice as a change of the outputs array (what the frontend
    # re-renders): the display and what follows it inserted anew, in order.
    inserted = [
        (o.get("data") or {}).get("text/plain") or str(o.get("text"))
        for delta in outputs_deltas
        for part in delta
        for o in part.get("insert", ())
    ]
    assert inserted == ["'step 5 of 5'", "between\n"]
    assert REINSERT_LIMIT > len("between\n")
    youtputs.unobserve(subscription)


async def test_empty_cells_are_not_sent_to_the_kernel(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["", "   \n", "print('ran')"])
    empty, blank, real = nb.cell_ids
    alice = await collab_client(nb.path)
    code, data, _ = await post_execute(api, nb, cells=[{"cell_id": c} for c in nb.cell_ids])
    assert code == 202, data
    result = await wait_request(data["request_id"])
    assert result["result"] == "ok"
    assert [c["execution_count"] for c in result["cells"]] == [None, None, 1]
    await alice.wait_for(lambda d: cell_py(d, real).get("execution_count") == 1, TIMEOUT)
    for cid in (empty, blank):
        cell = cell_py(alice.document, cid)
        assert cell["execution_count"] is None and cell["execution_state"] == "idle"
        assert cell["outputs"] == []
    # A lone empty cell ends at once too, and leaves a previous count cleared.
    code, data, _ = await post_execute(api, nb, empty)
    assert (await wait_request(data["request_id"]))["result"] == "ok"


async def test_running_a_cell_of_a_shut_down_kernel_shows_why(notebook_session, api, collab_client):
    nb = await notebook_session(["print('never')"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    code, _, _ = await api("DELETE", "api", "kernels", nb.kernel_id)
    assert code == 204
    code, data, _ = await post_execute(api, nb, cid)
    assert code == 404
    assert "not running" in data["message"] and nb.kernel_id in data["message"]

    def shows_error(doc):
        outputs = cell_py(doc, cid).get("outputs") or []
        return bool(outputs) and outputs[-1].get("ename") == "KernelGone"

    await alice.wait_for(shows_error, TIMEOUT)
    cell = cell_py(alice.document, cid)
    assert cell["execution_count"] is None and cell["execution_state"] == "idle"
    assert "start or select a kernel" in cell["outputs"][-1]["evalue"]
    assert json.dumps(cell)  # a plain nbformat error output
