"""The jupyter-server-nbmodel protocol: request status codes, outputs in the status, input, and
scratch executions (code alone, not tied to any document)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fixtures_execution import TIMEOUT, cell_py, gate_code, stream_text

from collab_kernels.execution.manager import ExecutionManager


async def post_code(api, kernel_id, code, metadata=None):
    body = {"code": code} if metadata is None else {"code": code, "metadata": metadata}
    status, data, headers = await api("POST", "api", "kernels", kernel_id, "execute", body=body)
    assert status == 202, data
    location = headers["Location"]
    # request_url: relative to the base URL (here /a%40b/), as jupyter-server-nbmodel sends it
    # (jupyter-mcp-server joins it to its server URL); Location has the full path.
    assert data["request_url"] == f"/api/kernels/{kernel_id}/requests/{data['request_id']}"
    assert location.endswith(data["request_url"]) and location != data["request_url"]
    return data["request_id"], location[location.index("api/") :].split("/")


async def test_status_codes_and_outputs_of_a_cell_execution(
    notebook_session, api, collab_client, wait_request, execution_manager, tmp_path
):
    flag = tmp_path / "go"
    nb = await notebook_session(["pass"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    rid, location = await post_code(
        api,
        nb.kernel_id,
        gate_code(flag, "print('hello')\n6 * 7"),
        {"cell_id": cid, "document_id": nb.room_id},
    )
    status, body, _ = await api("GET", *location)
    assert status == 202, body
    assert "input_request" not in body and body["status"] in ("queued", "running")
    flag.write_text("")
    await wait_request(rid)
    status, body, _ = await api("GET", *location)
    assert status == 200, body
    assert "input_request" not in body
    assert body["status"] == "done" and body["result"] == "ok" and body["execution_count"] == 1
    outputs = json.loads(body["outputs"])
    assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert outputs[1]["output_type"] == "execute_result"
    assert outputs[1]["data"]["text/plain"] == "42"
    # The cell of the document got the same outputs.
    await alice.wait_for(lambda d: cell_py(d, cid).get("execution_count") == 1, TIMEOUT)
    assert cell_py(alice.document, cid)["outputs"][1]["data"]["text/plain"] == "42"


@pytest.mark.parametrize(
    ("in_document", "document_input_status", "expected"),
    [(False, 202, 300), (True, 300, 300), (True, 202, 202)],
    ids=["scratch-300", "document-configured-300", "document-default-202"],
)
async def test_input_status_and_answered_the_nbmodel_way(
    notebook_session,
    api,
    wait_request,
    execution_manager,
    in_document,
    document_input_status,
    expected,
):
    """A scratch execution waiting for input() answers 300 (only its requester can answer); a
    document cell answers 202 by default (anyone in the document may answer: a client such as
    jupyter-mcp-server's HTTP mode, which cannot, keeps waiting), 300 when configured; the
    prompt is in the body either way."""
    execution_manager.document_input_status = document_input_status
    nb = await notebook_session(["pass"])
    metadata = {"cell_id": nb.cell_ids[0], "document_id": nb.room_id} if in_document else None
    rid, location = await post_code(
        api, nb.kernel_id, "name = input('name? ')\nprint('hello', name)", metadata
    )
    request = execution_manager.requests.get(rid)
    request_done = asyncio.ensure_future(wait_request(rid))
    # Wait for the prompt (an event of the kernel, not a timer).
    while "input_request" not in (body := (await api("GET", *location))[1]):
        assert body["status"] in ("queued", "running"), body
        await asyncio.wait([request_done], timeout=0.05)
    assert request.input_request is not None
    status, body, headers = await api("GET", *location)
    assert status == expected, body
    prompt = body["input_request"]
    assert prompt["prompt"] == "name? " and prompt["password"] is False
    if expected == 300:
        assert headers["Location"].endswith(f"/api/kernels/{nb.kernel_id}/input")
    status, data, _ = await api(
        "POST", "api", "kernels", nb.kernel_id, "input", body={"input": "bob"}
    )
    assert status == 200, data
    result = await request_done
    assert result["result"] == "ok"
    status, body, _ = await api("GET", *location)
    assert status == 200 and "input_request" not in body
    assert "hello bob\n" in "".join(o.get("text", "") for o in json.loads(body["outputs"]))


async def test_scratch_execution_runs_on_the_kernel_and_touches_no_document(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["x = 1"])
    alice = await collab_client(nb.path)
    before = cell_py(alice.document, nb.cell_ids[0])
    rid, location = await post_code(api, nb.kernel_id, "import sys\nprint(sys.version_info[0])")
    result = await wait_request(rid)
    assert result["result"] == "ok" and result["document_id"] is None and result["path"] is None
    status, body, _ = await api("GET", *location)
    assert status == 200
    assert json.loads(body["outputs"]) == [
        {"output_type": "stream", "name": "stdout", "text": "3\n"}
    ]
    assert body["execution_count"] == 1
    # An error is a result too, with its error output.
    rid, location = await post_code(api, nb.kernel_id, "1 / 0")
    result = await wait_request(rid)
    assert result["result"] == "error"
    status, body, _ = await api("GET", *location)
    assert status == 200
    (error,) = json.loads(body["outputs"])
    assert error["output_type"] == "error" and error["ename"] == "ZeroDivisionError"
    # The notebook on the same kernel did not change (and got no execution entries).
    assert cell_py(alice.document, nb.cell_ids[0]) == before


async def test_outputs_kept_for_status_are_bounded(
    notebook_session, api, wait_request, execution_manager: ExecutionManager
):
    nb = await notebook_session(["pass"])
    registry = execution_manager.requests
    old_budget = registry.output_budget
    registry.output_budget = 4096
    try:
        first, first_location = await post_code(api, nb.kernel_id, "print('a' * 3000)")
        await wait_request(first)
        second, _ = await post_code(api, nb.kernel_id, "print('b' * 3000)")
        await wait_request(second)
        third, _ = await post_code(api, nb.kernel_id, "print('c')")  # trims the oldest
        await wait_request(third)
        status, body, _ = await api("GET", *first_location)
        assert status == 200 and "outputs" not in body and body["outputs_dropped"] is True
    finally:
        registry.output_budget = old_budget


async def test_delete_stops_a_running_request_as_nbmodel_does(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    flag = tmp_path / "never"
    nb = await notebook_session(["pass"])
    cid = nb.cell_ids[0]
    alice = await collab_client(nb.path)
    rid, location = await post_code(
        api,
        nb.kernel_id,
        "print('started', flush=True)\n" + gate_code(flag, "print('not reached')"),
        {"cell_id": cid, "document_id": nb.room_id},
    )
    # Interrupt once the code runs (ipykernel ignores a SIGINT that comes before).
    await alice.wait_for(lambda d: stream_text(cell_py(d, cid)) == "started\n", TIMEOUT)
    status, body, _ = await api("GET", *location)
    assert status == 202 and body["status"] == "running"
    # What jupyter-mcp-server sends when its wait is cancelled or times out.
    status, body, _ = await api("DELETE", *location)
    assert status == 200, body
    result = await wait_request(rid)
    assert result["result"] == "cancelled"
    status, body, _ = await api("DELETE", *location)
    assert status == 409 and "over" in body["message"]
