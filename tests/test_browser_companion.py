"""What the companion JupyterLab extension (labextension/) reads from the server.

Its run queue shows who started each run from ``GET /api/kernels/{id}/requests``; its view-only
mode asks ``GET /api/me?permissions=`` (jupyter_server's own endpoint, answered through the
authorizer) whether this user may write contents and execute on kernels.
"""

from __future__ import annotations

import json

from fixtures_execution import post_execute


async def test_run_list_says_who_started_each_run(
    notebook_session, api, wait_request, execution_manager
):
    nb = await notebook_session(["1 + 1"])
    code, request, _ = await post_execute(api, nb, nb.cell_ids[0])
    assert code == 202
    await wait_request(request["request_id"])
    code, listed, _ = await api("GET", "api", "kernels", nb.kernel_id, "requests")
    assert code == 200
    mine = [r for r in listed if r["request_id"] == request["request_id"]]
    # The token's user (jupyter_server names it at random): the one that submitted.
    submitter = execution_manager.requests.get(request["request_id"]).username
    assert submitter and mine and mine[0]["username"] == submitter
    assert mine[0]["started"] and mine[0]["finished"] and mine[0]["document_id"] == nb.room_id


async def test_me_permissions_tell_the_page_what_this_user_may_do(api):
    asked = {"contents": ["read", "write"], "kernels": ["read", "write", "execute"]}
    code, me, _ = await api("GET", "api", "me", params={"permissions": json.dumps(asked)})
    assert code == 200
    assert set(me["permissions"]["contents"]) == {"read", "write"}
    assert set(me["permissions"]["kernels"]) == {"read", "write", "execute"}
