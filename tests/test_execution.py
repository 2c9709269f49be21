"""Server-side execution through POST /api/kernels/{id}/execute, seen by collaborators."""

from __future__ import annotations

import asyncio

from fixtures_execution import TIMEOUT, cell_py, stream_text
from fixtures_rooms import read_notebook

from collab_kernels.execution.murmur import source_hash


async def test_execute_writes_result_and_count_into_every_collaborator(
    notebook_session, api, collab_client, wait_request
):
    nb = await notebook_session(["print('hi')\n40 + 2"])
    alice = await collab_client(nb.path)
    bob = await collab_client(nb.path)
    cid = nb.cell_ids[0]
    code, data, headers = await api(
        "POST", "api", "kernels", nb.kernel_id, "execute",
        body={"cell_id": cid, "document_id": nb.room_id},
    )
    assert code == 202, data
    assert headers["Location"].endswith(f"/api/kernels/{nb.kernel_id}/requests/{data['request_id']}")
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
