"""Bad and oversized bodies on the execution endpoints: a clear 4xx, never a 500, nothing kept."""

from __future__ import annotations

from fixtures_execution import TIMEOUT, cell_py, post_execute, stream_text


async def test_deeply_nested_json_is_400_with_a_message(notebook_session, api):
    nb = await notebook_session(["print('still fine')"])
    deep = "[" * 100000
    for endpoint in ("execute", "input"):
        code, data, _ = await api("POST", "api", "kernels", nb.kernel_id, endpoint, body=deep)
        assert code == 400, (endpoint, code, data)
        assert "nested" in data["message"]
        # Deep but still a list inside a valid object.
        nested = '{"document_id": ' + "[" * 5000 + "]" * 5000 + "}"
        code, data, _ = await api("POST", "api", "kernels", nb.kernel_id, endpoint, body=nested)
        assert code == 400, (endpoint, code, data)
    # The server still executes.
    code, data, _ = await post_execute(api, nb, nb.cell_ids[0])
    assert code == 202, data


async def test_bodies_over_the_limits_are_413(notebook_session, api, execution_manager):
    nb = await notebook_session(["1"])
    assert execution_manager.max_execute_body_bytes >= 1 << 20
    execution_manager.max_execute_body_bytes = 10_000
    execution_manager.max_input_body_bytes = 1_024
    try:
        body = {
            "code": "x = '" + "a" * 20_000 + "'",
            "metadata": {"cell_id": nb.cell_ids[0], "document_id": nb.room_id},
        }
        code, data, _ = await api("POST", "api", "kernels", nb.kernel_id, "execute", body=body)
        assert code == 413, data
        assert "max_execute_body_bytes" in data["message"]
        answer = {"document_id": nb.room_id, "cell_id": nb.cell_ids[0], "value": "v" * 3000}
        code, data, _ = await api("POST", "api", "kernels", nb.kernel_id, "input", body=answer)
        assert code == 413, data
        assert "max_input_body_bytes" in data["message"]
        # Nothing was queued.
        assert execution_manager.list_requests(nb.kernel_id) == []
    finally:
        execution_manager.max_execute_body_bytes = 4 << 20
        execution_manager.max_input_body_bytes = 1 << 20


async def test_request_history_keeps_no_code_bodies(
    notebook_session, api, collab_client, wait_request, execution_manager
):
    nb = await notebook_session(["pass"])
    alice = await collab_client(nb.path)
    code_body = "x = '" + "a" * 500_000 + "'\nprint(len(x))"
    code, data, _ = await post_execute(
        api,
        nb,
        body={
            "code": code_body,
            "metadata": {"cell_id": nb.cell_ids[0], "document_id": nb.room_id},
        },
    )
    assert code == 202, data
    result = await wait_request(data["request_id"])
    assert result["result"] == "ok"
    await alice.wait_for(lambda d: stream_text(cell_py(d, nb.cell_ids[0])) == "500000\n", TIMEOUT)
    request = execution_manager.get_request(nb.kernel_id, data["request_id"])
    assert sum(len(cell.code) for cell in request.cells) == 0
