"""Login tokens never reach the server's log, the access log included (#13.9).

A real server process at debug level (every line it can write); requests carry tokens in
the query string (``?token=``, as login links do), in the Authorization header and in the
Referer, on answers of every class: 2xx, 3xx, 401/403, 404, refused websockets. The log file
the process wrote is then searched for every token: the server's, a person's, a wrong one.
"""

from __future__ import annotations

import uuid

import httpx
from fixtures_security import classroom_config_file
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

SERVER_TOKEN = "logs-server-token-a81c3f55d0"
VIEWER_TOKEN = "logs-viewer-token-77e0b2c4aa"
WRONG_TOKEN = "logs-wrong-token-19fd3e6b01"


async def test_no_token_in_any_log_line(server_process, tmp_path):
    config = classroom_config_file(tmp_path / "logs_config.json", {VIEWER_TOKEN: "viewer"})
    server = server_process(token=SERVER_TOKEN, config=[config, "--debug"])
    await server.start()
    base = server.base_url
    statuses = set()
    for token in (SERVER_TOKEN, VIEWER_TOKEN, WRONG_TOKEN):
        # a browser of its own per token (a login cookie would stand in for a wrong token)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for path in (
                "api/contents/nope.ipynb",  # 404 (tornado logs the URI as received)
                "api/kernels/00000000-0000-0000-0000-000000000000",  # 404
                "nope",  # the HTML 404 page
                "api/kernels",  # 200, or 403 for the wrong token
                # (POST below: an unknown kernel name answers 500, headers logged)
                "lab",  # 200 with a login cookie set, or a redirect to the login page
                "api/shutdown",  # GET: 405
            ):
                r = await client.get(path, params={"token": token, "next": "/lab"})
                statuses.add(r.status_code)
            r = await client.post("api/kernels", params={"token": token}, json={"name": "nope"})
            statuses.add(r.status_code)
            r = await client.get(
                "api/contents/nope.ipynb",
                headers={
                    "Authorization": f"token {token}",
                    "Referer": f"{base}lab?token={token}",
                },
            )
            statuses.add(r.status_code)
            r = await client.post(
                "login",
                data={"password": token, "_xsrf": "x"},
                headers={"Referer": f"{base}login?token={token}"},
            )
            statuses.add(r.status_code)
            ws = base.replace("http://", "ws://") + (
                f"api/kernels/{uuid.uuid4()}/channels?token={token}&session_id=s"
            )
            try:
                async with ws_connect(ws, open_timeout=30):
                    pass
            except InvalidStatus as e:
                statuses.add(e.response.status_code)
    await server.api("GET", f"api/contents/missing.txt?token={SERVER_TOKEN}")
    server.stop()
    log = server.log_path.read_text()
    assert {200, 302, 403, 404, 405, 500} <= statuses, statuses
    assert "collab_kernels | extension was successfully loaded" in log
    assert "error linking" not in log
    # the requests are logged, with their tokens scrubbed
    assert "/api/contents/nope.ipynb?token=[secret]" in log
    found = [
        (name, line)
        for line in log.splitlines()
        for name, token in (
            ("server", SERVER_TOKEN),
            ("viewer", VIEWER_TOKEN),
            ("wrong", WRONG_TOKEN),
        )
        if token in line
    ]
    assert found == [], "\n".join(f"{n}: {line[:160]}" for n, line in found)
