"""The role table of docs/reliability.md ("What each role may do") is what the server does.

Each row is performed over HTTP or a websocket by each role against a real server with every
installed server extension; the answers must match the table, cell by cell.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import nbformat
from fixtures_security import *  # noqa: F403
from fixtures_security import ROLES
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

DOCS = Path(__file__).parent.parent / "docs" / "reliability.md"


def documented_table() -> dict[str, dict[str, bool]]:
    lines = DOCS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| capability |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert tuple(header[1:]) == ROLES, header
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert set(cells[1:]) <= {"yes", "no"}, line
        table[cells[0]] = {role: cell == "yes" for role, cell in zip(ROLES, cells[1:], strict=True)}
    return table


def allowed(status: int) -> bool:
    """Authorization passed (whatever the handler then answered)."""
    return status not in (301, 302, 401, 403)


async def ws_opens(url: str, headers: dict) -> bool:
    try:
        async with ws_connect(url, additional_headers=headers, open_timeout=30):
            return True
    except InvalidStatus as e:
        assert e.response.status_code in (401, 403), e.response.status_code
        return False


async def test_role_table_matches_the_server(
    jp_serverapp, jp_root_dir, http_as, token_of, collab_base_url, start_kernel
):
    nbformat.write(nbformat.v4.new_notebook(), str(jp_root_dir / "roles.ipynb"))
    kernel_id = await start_kernel()
    ws_base = collab_base_url.replace("http://", "ws://", 1)
    server_token = jp_serverapp.identity_provider.token

    async def probe(role: str) -> dict[str, bool]:
        token = token_of(role)
        headers = {"Authorization": f"token {token}"} if token else {}
        async with http_as(role) as client:

            async def status(method: str, path: str, **kwargs) -> int:
                return (await client.request(method, path, **kwargs)).status_code

            found = {
                "open a document and follow it live": allowed(
                    await status(
                        "PUT",
                        "api/collaboration/session/roles.ipynb",
                        json={"format": "json", "type": "notebook"},
                    )
                ),
                "listen to the event bus": await ws_opens(
                    ws_base + "api/events/subscribe", headers
                ),
                "edit and save documents": allowed(
                    await status(
                        "PUT",
                        f"api/contents/probe-{role}.txt",
                        json={"type": "file", "format": "text", "content": "x"},
                    )
                ),
                "run code": allowed(
                    await status("POST", f"api/kernels/{kernel_id}/execute", json={"code": "1"})
                ),
                "open a kernel websocket": await ws_opens(
                    ws_base + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
                    headers,
                ),
                "change JupyterLab settings and workspaces": allowed(
                    await status(
                        "PUT",
                        f"lab/api/workspaces/probe-{role}",
                        json={"data": {}, "metadata": {"id": f"probe-{role}"}},
                    )
                ),
                "manage JupyterLab plugins and extensions": allowed(
                    await status("POST", "lab/api/plugins", json={"cmd": "no", "plugin_name": "x"})
                ),
                "change the server's frontend config": allowed(
                    await status("PATCH", "api/config/probe", json={"probe": role})
                ),
                "use terminals": allowed(await status("GET", "api/terminals")),
                "find the server's token in a page": server_token
                in ((await client.get("lab")).text + (await client.get("nope")).text),
            }
            r = await client.post("api/kernels", json={"name": "python3"})
            found["start kernels"] = allowed(r.status_code)
            if r.status_code == 201:
                await client.delete(f"api/kernels/{r.json()['id']}")
        return found

    documented = documented_table()
    actual: dict[str, dict[str, bool]] = {row: {} for row in documented}
    for role in ROLES:
        for row, value in (await probe(role)).items():
            assert row in documented, f"row {row!r} is not in the documented table"
            actual[row][role] = value
    differences = [
        f"{row}: {role} documented {documented[row][role]}, server says {actual[row].get(role)}"
        for row in documented
        for role in ROLES
        if documented[row][role] != actual[row].get(role)
    ]
    assert differences == [], "\n".join(differences)
    assert re.search(r"only the instructor writes them", DOCS.read_text())
