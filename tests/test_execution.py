"""Server-side execution through POST /api/kernels/{id}/execute, seen by collaborators."""

from __future__ import annotations

from fixtures_execution import TIMEOUT, cell_py, entry, gate_code, post_execute, stream_text, submit

from collab_kernels.execution.murmur import source_hash


async def test_execute_writes_result_and_count_into_every_collaborator(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["print('hi')\n40 + 2"])
    alice = await collab_client(nb.path)
    bob = await collab_client(nb.path)
    cid = nb.cell_ids[0]
    code, data, headers = await post_execute(api, nb, cid)
    assert code == 202, data
    assert headers["Location"].endswith(
        f"/api/kernels/{nb.kernel_id}/requests/{data['request_id']}"
    )
    assert data["status"] in ("queued", "running")
    result = await wait_request(data["request_id"])
    assert result["status"] == "done" and result["result"] == "ok"
    assert result["execution_count"] == 1
    assert result["cells"] == [
        {"cell_id": cid, "status": "done", "execution_count": 1, "result": "ok"}
    ]
    for conn in (alice, bob):
        await conn.wait_for(lambda d: cell_py(d, cid).get("execution_count") == 1, TIMEOUT)
        cell = cell_py(conn.document, cid)
        assert cell["execution_state"] == "idle"
        assert stream_text(cell) == "hi\n"
        assert cell["outputs"][1]["output_type"] == "execute_result"
        assert cell["outputs"][1]["data"]["text/plain"] == "42"


async def test_two_collaborators_see_running_and_queued_cells(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "go"
    nb = await notebook_session([gate_code(flag, "print('a')"), "print('b')", "print('c')"])
    a, b, c = nb.cell_ids
    alice = await collab_client(nb.path)
    bob = await collab_client(nb.path)
    ids = [await submit(api, nb, cid) for cid in (a, b, c)]

    def shows_queue(doc):
        ea, eb, ec = entry(doc, a), entry(doc, b), entry(doc, c)
        return (
            cell_py(doc, a).get("execution_state") == "running"
            and ea
            and ea["status"] == "running"
            and eb
            and eb["status"] == "queued"
            and eb["position"] == 1
            and ec
            and ec["status"] == "queued"
            and ec["position"] == 2
        )

    for conn in (alice, bob):
        await conn.wait_for(shows_queue, TIMEOUT)
        # Queued cells show [*] too (the stock prompt shows * for "running").
        assert cell_py(conn.document, b)["execution_state"] == "running"
        assert cell_py(conn.document, c)["execution_state"] == "running"
    code, listed, _ = await api("GET", "api", "kernels", nb.kernel_id, "requests")
    assert code == 200, listed
    assert [r["request_id"] for r in listed[-3:]] == ids
    assert [r["status"] for r in listed[-3:]] == ["running", "queued", "queued"]
    flag.write_text("")
    results = [await wait_request(rid) for rid in ids]
    assert [r["execution_count"] for r in results] == [1, 2, 3]
    for conn in (alice, bob):
        await conn.wait_for(lambda d: cell_py(d, c).get("execution_count") == 3, TIMEOUT)
        assert [stream_text(cell_py(conn.document, x)) for x in (a, b, c)] == ["a\n", "b\n", "c\n"]
        assert all(cell_py(conn.document, x)["execution_state"] == "idle" for x in (a, b, c))
        assert all(entry(conn.document, x) is None for x in (a, b, c))
    # The queue state is not saved to the file.
    _, all_requests, _ = await api("GET", "api", "collaboration", "requests")
    assert {r["request_id"] for r in all_requests} >= set(ids)


async def test_error_stops_the_rest_of_the_queue(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "go"
    nb = await notebook_session([gate_code(flag), "1 / 0", "print('never')"])
    a, b, c = nb.cell_ids
    alice = await collab_client(nb.path)
    ids = [await submit(api, nb, cid) for cid in (a, b, c)]
    await alice.wait_for(lambda d: (entry(d, c) or {}).get("status") == "queued", TIMEOUT)
    flag.write_text("")
    ra, rb, rc = [await wait_request(rid) for rid in ids]
    assert ra["result"] == "ok"
    assert rb["result"] == "error"
    assert rc["result"] == "aborted" and rc["cells"][0]["result"] == "aborted"
    assert rc["execution_count"] is None
    await alice.wait_for(lambda d: cell_py(d, b).get("execution_count") == 2, TIMEOUT)
    await alice.wait_for(lambda d: cell_py(d, c).get("execution_state") == "idle", TIMEOUT)
    cell_b, cell_c = cell_py(alice.document, b), cell_py(alice.document, c)
    assert cell_b["outputs"][0]["ename"] == "ZeroDivisionError"
    assert cell_c["outputs"] == [] and cell_c["execution_count"] is None
    await alice.wait_for(lambda d: (entry(d, c) or {}).get("status") == "aborted", TIMEOUT)


async def test_multi_cell_request_is_one_batch_with_source_hashes(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["x = 1", "x += 1", "print(x)"])
    alice = await collab_client(nb.path)
    sources = ["x = 1", "x += 1", "print(x)"]
    cells = [
        {"cell_id": cid, "source_hash": source_hash(s)}
        for cid, s in zip(nb.cell_ids, sources, strict=True)
    ]
    code, data, _ = await post_execute(api, nb, cells=cells)
    assert code == 202, data
    result = await wait_request(data["request_id"])
    assert result["result"] == "ok"
    assert [c["execution_count"] for c in result["cells"]] == [1, 2, 3]
    last = nb.cell_ids[2]
    await alice.wait_for(lambda d: cell_py(d, last).get("execution_count") == 3, TIMEOUT)
    assert stream_text(cell_py(alice.document, last)) == "2\n"


async def test_stale_source_hash_is_409_and_runs_nothing(notebook_session, api, execution_manager):
    nb = await notebook_session(["print(1)", "print(2)"])
    cells = [
        {"cell_id": nb.cell_ids[0], "source_hash": source_hash("print(1)")},
        {"cell_id": nb.cell_ids[1], "source_hash": source_hash("print('old')")},
    ]
    before = len(execution_manager.list_requests())
    code, data, _ = await post_execute(api, nb, cells=cells)
    assert code == 409
    assert nb.cell_ids[1] in data["message"]
    assert len(execution_manager.list_requests()) == before


async def test_code_dialect_runs_the_given_code_into_the_cell(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["print('from the doc')"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    code, data, headers = await post_execute(
        api,
        nb,
        body={
            "code": "print('from the body')",
            "metadata": {"cell_id": cid, "document_id": nb.room_id},
        },
    )
    assert code == 202
    location = headers["Location"]
    code, polled, _ = await api("GET", *location[location.index("api/") :].split("/"))
    assert code in (200, 202) and polled["request_id"] == data["request_id"]
    await wait_request(data["request_id"])
    await alice.wait_for(lambda d: cell_py(d, cid).get("execution_count") == 1, TIMEOUT)
    assert stream_text(cell_py(alice.document, cid)) == "from the body\n"


async def test_bad_requests(notebook_session, api, jp_root_dir):
    nb = await notebook_session(
        ["1", {"cell_type": "markdown", "id": "md-cell", "source": "# title", "metadata": {}}]
    )
    other = await notebook_session(["2"])
    kid, doc = nb.kernel_id, nb.room_id

    async def post(kernel_id, body):
        return await api("POST", "api", "kernels", kernel_id, "execute", body=body)

    code, data, _ = await post("no-such-kernel", {"cell_id": nb.cell_ids[0], "document_id": doc})
    assert code == 404 and "kernel" in data["message"]
    code, data, _ = await post(
        kid, {"cell_id": nb.cell_ids[0], "document_id": "json:notebook:nope"}
    )
    assert code == 404 and "document" in data["message"]
    code, data, _ = await post(kid, {"cell_id": "no-such-cell", "document_id": doc})
    assert code == 404 and "no-such-cell" in data["message"]
    code, data, _ = await post(kid, {"cell_id": "md-cell", "document_id": doc})
    assert code == 400 and "markdown" in data["message"]
    # A cell of a document whose session points to another kernel.
    code, data, _ = await post(kid, {"cell_id": other.cell_ids[0], "document_id": other.room_id})
    assert code == 400 and other.kernel_id in data["message"]
    code, data, _ = await post(kid, {"cell_id": nb.cell_ids[0]})
    assert code == 400 and "document_id" in data["message"]
    code, data, _ = await api("POST", "api", "kernels", kid, "execute", body="{not json")
    assert code == 400
    code, data, _ = await api("GET", "api", "kernels", kid, "requests", "nope")
    assert code == 404


async def test_cancel_a_queued_request(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "go"
    nb = await notebook_session([gate_code(flag), "print('b')"])
    a, b = nb.cell_ids
    alice = await collab_client(nb.path)
    ra = await submit(api, nb, a)
    rb = await submit(api, nb, b)
    await alice.wait_for(lambda d: (entry(d, b) or {}).get("status") == "queued", TIMEOUT)
    code, data, _ = await api(
        "DELETE", "api", "kernels", nb.kernel_id, "requests", ra, params={"running": "0"}
    )
    assert code == 409  # running, and ?running=0 cancels only queued requests
    code, data, _ = await api("DELETE", "api", "kernels", nb.kernel_id, "requests", rb)
    assert code == 200 and data["result"] == "cancelled"
    await alice.wait_for(
        lambda d: entry(d, b) is None and cell_py(d, b)["execution_state"] == "idle", TIMEOUT
    )
    flag.write_text("")
    assert (await wait_request(ra))["result"] == "ok"
    assert (await wait_request(rb))["cells"][0]["result"] == "cancelled"
    assert cell_py(alice.document, b)["outputs"] == []


async def test_interrupt_stops_running_cell_and_clears_queue(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "never"
    # The cell says when its code runs: a SIGINT that lands before that (after
    # execute_input, before the user's code) is caught by ipykernel and ignored.
    started = "print('started', flush=True)\n"
    nb = await notebook_session([started + gate_code(flag), "print('b')", "print('c')"])
    a, b, c = nb.cell_ids
    alice = await collab_client(nb.path)
    ids = [await submit(api, nb, cid) for cid in (a, b, c)]
    await alice.wait_for(
        lambda d: (
            (entry(d, c) or {}).get("status") == "queued"
            and "started" in str(cell_py(d, a)["outputs"])
        ),
        TIMEOUT,
    )
    code, _, _ = await api("POST", "api", "kernels", nb.kernel_id, "interrupt")
    assert code == 204
    ra, rb, rc = [await wait_request(rid) for rid in ids]
    assert ra["result"] == "error"
    assert rb["result"] == rc["result"] == "aborted"
    await alice.wait_for(
        lambda d: (
            all(cell_py(d, x)["execution_state"] == "idle" for x in (a, b, c))
            and cell_py(d, a).get("execution_count") is not None
        ),
        TIMEOUT,
    )
    outputs = cell_py(alice.document, a)["outputs"]
    assert outputs and outputs[-1].get("ename") == "KeyboardInterrupt", outputs
    assert cell_py(alice.document, b)["outputs"] == []
    # The kernel is usable afterwards.
    rid = await submit(api, nb, b)
    assert (await wait_request(rid))["result"] == "ok"


async def test_cells_inserted_moved_and_deleted_by_a_collaborator_still_get_their_outputs(
    notebook_session, api, collab_client, wait_request, jp_serverapp
):
    """The server keeps an index of cells by id between transactions: cells a
    collaborator inserts, moves or deletes after the room was loaded are seen at once."""
    from fixtures_rooms import eventually

    nb = await notebook_session(["1 + 1"])
    alice = await collab_client(nb.path)
    first = nb.cell_ids[0]
    rid = await submit(api, nb, first)  # the room's index is built here
    await wait_request(rid)
    # Alice inserts a cell above the first one and another one below it.
    doc = alice.document
    doc.ycells.insert(0, doc.create_ycell({"cell_type": "code", "source": "'top'", "metadata": {}}))
    doc.append_cell({"cell_type": "code", "source": "'bottom'", "metadata": {}})
    top, bottom = doc.ycells[0].get("id"), doc.ycells[2].get("id")
    room = jp_serverapp.web_app.settings["collab_room_manager"].find_room(nb.room_id)

    def server_ids():
        return [c.get("id") for c in room.document.ycells]

    await eventually(lambda: server_ids() == [top, first, bottom])
    for cid in (top, bottom):
        await wait_request(await submit(api, nb, cid))
    # She moves the bottom cell to the top (as JupyterLab does: delete, insert a copy with
    # the same id) and deletes the first one.
    moved = doc.ycells[2].to_py()
    with doc.ydoc.transaction():
        del doc.ycells[2]
        doc.ycells.insert(0, doc.create_ycell(moved))
        del doc.ycells[2]
    await eventually(lambda: server_ids() == [bottom, top])
    rid = await submit(api, nb, bottom)
    await wait_request(rid)
    code, _data, _ = await post_execute(api, nb, first)
    assert code == 404  # the deleted cell is gone from the index too
    await alice.wait_for(
        lambda d: (
            cell_py(d, bottom).get("execution_count") == 4
            and cell_py(d, top).get("execution_count") == 2
        ),
        TIMEOUT,
    )
    assert cell_py(alice.document, top)["outputs"][0]["data"]["text/plain"] == "'top'"
    assert cell_py(alice.document, bottom)["outputs"][0]["data"]["text/plain"] == "'bottom'"
