"""No page or API answer carries a token other than the requesting user's own.

Every role, logged in by token header and by browser cookie, fetches every page the server
serves (JupyterLab's pages, the 404 and error pages of jupyter_server and of every installed
extension, login and logout) and every GET route of the routing table; each answer (body and
headers) is scanned for every login token of the server but the requester's own.
"""

from __future__ import annotations

import nbformat
import pytest
from fixtures_security import *  # noqa: F403
from fixtures_security import ROLES, TOKENS
from test_security_handlers import original, routes
from tornado.websocket import WebSocketHandler

from collab_kernels.security.guard import class_key

#: pages a browser opens, and HTML error pages of each extension (JupyterHandler error pages
#: render jupyter_server's page.html, which is where the server token used to be written)
PAGES = [
    "",
    "lab",
    "lab/tree/walk.ipynb",
    "lab/workspaces/mine",
    "doc/tree/walk.ipynb",
    "tree",
    "notebooks/walk.ipynb",
    "nope",
    "api/nope",
    "lab/nope",
    "lab/api/nope",
    "static/nope.js",
    "static/lab/nope.js",
    "lab/extensions/nope.js",
    "lab/api/themes/nope.css",
    "files/nope.txt",
    "files/walk.ipynb",
    "view/nope.txt",
    "view/walk.ipynb",
    "nbconvert/html/walk.ipynb",
    "nbconvert/html/nope.ipynb",
    "kernelspecs/python3/nope.png",
    "api/contents/nope",
    "api/kernels/00000000-0000-0000-0000-000000000000",
    "api/terminals/nope",
    "terminals/websocket/1",
    "api/kernels/00000000-0000-0000-0000-000000000000/channels",
    "api/collaboration/room/nope",
    "api/events/subscribe",
    "lsp/status",
    "lsp/ws/nope",
    "login",
    "login?next=%2Flab",
]


def all_tokens(jp_serverapp) -> dict[str, str]:
    return {"owner": jp_serverapp.identity_provider.token, **TOKENS}


def leaks(response, tokens: dict[str, str], own: str) -> list[str]:
    """Names of the tokens, other than ``own``'s, found in a response."""
    text = response.text + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return [who for who, token in tokens.items() if who != own and token in text]


@pytest.fixture
def walk_notebook(jp_root_dir):
    nbformat.write(nbformat.v4.new_notebook(), str(jp_root_dir / "walk.ipynb"))
    return "walk.ipynb"


def paths_to_scan(jp_serverapp) -> list[str]:
    paths = list(PAGES)
    for path, cls in routes(jp_serverapp):
        if issubclass(cls, WebSocketHandler) or "robots" in path or "favicon" in path:
            continue
        if class_key(original(cls)).endswith("ShutdownHandler"):
            continue
        paths.append(path)
    return paths


@pytest.mark.parametrize("login", ["header", "cookie"])
@pytest.mark.parametrize("role", ROLES)
async def test_no_answer_carries_another_users_token(
    jp_serverapp, http_as, browser_as, walk_notebook, role, login
):
    tokens = all_tokens(jp_serverapp)
    found = []
    async with browser_as(role) if login == "cookie" else http_as(role) as client:
        for path in paths_to_scan(jp_serverapp):
            response = await client.get(path, headers={"Accept": "text/html,*/*"})
            for who in leaks(response, tokens, role):
                found.append(f"{path} ({response.status_code}) carries {who}'s token")
        # logging out renders a page too; last, it ends the cookie login
        response = await client.get("logout", headers={"Accept": "text/html"})
        found.extend(f"logout carries {who}'s token" for who in leaks(response, tokens, role))
    assert found == []


async def test_pages_still_work_for_each_role(jp_serverapp, browser_as, walk_notebook):
    """The lab page renders for everyone logged in; only the owner's carries a token."""
    server_token = jp_serverapp.identity_provider.token
    for role in ROLES[1:]:
        async with browser_as(role) as client:
            page = await client.get("lab/tree/walk.ipynb")
            assert page.status_code == 200
            assert '"token": ""' in page.text or role == "owner"
            assert (server_token in page.text) == (role == "owner")
            # the cookie login works for the API (cookie and XSRF, as JupyterLab sends them)
            r = await client.get("api/contents/walk.ipynb", params={"content": "0"})
            assert r.status_code == 200
            xsrf = client.cookies.get("_xsrf")
            assert xsrf
            r = await client.post(
                "api/contents", json={"type": "file"}, headers={"X-XSRFToken": xsrf}
            )
            assert r.status_code == (
                201 if role in ("editor", "runner", "instructor", "owner") else 403
            )


async def test_404_page_of_a_viewer_is_not_a_key_to_the_server(jp_serverapp, browser_as, http_as):
    """The attack of the issue: read the token from a 404 page, start a kernel with it."""
    async with browser_as("viewer") as viewer:
        page = await viewer.get("nope", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert jp_serverapp.identity_provider.token not in page.text
    assert "data-jupyter-api-token" not in page.text
    async with http_as("viewer") as client:
        r = await client.post("api/kernels", json={"name": "python3"})
        assert r.status_code == 403
