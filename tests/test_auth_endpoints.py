"""Every HTTP endpoint and websocket of collab_kernels, per endpoint: who may use it.

- no credentials: 401/403, websockets refused;
- authenticated, but an Authorizer that denies everything: 403, websockets refused, and the
  answer reveals nothing of the document;
- a browser (login cookie) sending a state-changing request without the XSRF token: 403; the
  same request with the token gets past the check (so the 403 is the XSRF check's);
- a cookie websocket from another origin: refused.
"""

from __future__ import annotations

import json
import uuid

import httpx
import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets.config import Config
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

SECRET = "top-secret-source-7f3a"
DENIED_TOKEN = "denied-token"


class DenyingIdentityProvider(IdentityProvider):
    """The server's token logs in as usual; ``denied-token`` logs in as user ``mallory``."""

    def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        if header == f"token {DENIED_TOKEN}":
            handler._token_authenticated = True
            return User(username="mallory", name="Mallory")
        return super().get_user(handler)


class DenyingAuthorizer(Authorizer):
    """``mallory`` may do nothing at all."""

    def is_authorized(self, handler, user, action, resource):
        return getattr(user, "username", None) != "mallory"


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                "identity_provider_class": DenyingIdentityProvider,
                "authorizer_class": DenyingAuthorizer,
            },
        }
    )


@pytest.fixture
def make_world(jp_root_dir, collab_base_url, collab_token):
    """A notebook with a secret, its room and session, a kernel and an execute request."""
    return lambda: build_world(jp_root_dir, collab_base_url, collab_token)


async def build_world(jp_root_dir, collab_base_url, collab_token) -> dict:
    path = f"secret-{uuid.uuid4().hex[:6]}.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(f"x = '{SECRET}'"))
    nbformat.write(nb, str(jp_root_dir / path))
    headers = {"Authorization": f"token {collab_token}"}
    async with httpx.AsyncClient(base_url=collab_base_url, headers=headers, timeout=60) as http:
        r = await http.post(
            "api/sessions",
            json={"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}},
        )
        assert r.status_code == 201, r.text
        kernel_id = r.json()["kernel"]["id"]
        r = await http.put(
            f"api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
        )
        assert r.status_code in (200, 201), r.text
        session = r.json()
        room_id = f"json:notebook:{session['fileId']}"
        r = await http.post(
            f"api/kernels/{kernel_id}/execute",
            json={"cell_id": nb.cells[0]["id"], "document_id": room_id},
        )
        assert r.status_code == 202, r.text
        request_id = r.json()["request_id"]
    return {
        "path": path,
        "kernel_id": kernel_id,
        "room_id": room_id,
        "session_id": session["sessionId"],
        "cell_id": nb.cells[0]["id"],
        "request_id": request_id,
    }


def endpoints(w: dict) -> list[tuple[str, str, dict | None]]:
    """(method, url, json body) of every HTTP endpoint collab_kernels adds."""
    k, room = w["kernel_id"], w["room_id"]
    return [
        ("PUT", f"api/collaboration/session/{w['path']}", {"format": "json", "type": "notebook"}),
        ("GET", f"api/collaboration/room/{room}/presence", None),
        ("POST", f"api/kernels/{k}/execute", {"cell_id": w["cell_id"], "document_id": room}),
        ("GET", f"api/kernels/{k}/requests/{w['request_id']}", None),
        ("DELETE", f"api/kernels/{k}/requests/{w['request_id']}", None),
        ("GET", f"api/kernels/{k}/requests", None),
        (
            "POST",
            f"api/kernels/{k}/input",
            {"document_id": room, "cell_id": w["cell_id"], "value": "x"},
        ),
        ("GET", "api/collaboration/requests", None),
    ]


def websockets_of(w: dict) -> list[str]:
    return [
        f"api/collaboration/room/{w['room_id']}?sessionId={w['session_id']}",
        "api/collaboration/room/JupyterLab:globalAwareness",
        f"api/kernels/{w['kernel_id']}/channels?session_id={uuid.uuid4().hex}",
    ]


def reveals(response: httpx.Response, w: dict) -> bool:
    return SECRET in response.text or w["path"] in response.text


async def call(base_url, method, url, body, headers=None, cookies=None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=60, cookies=cookies) as http:
        content = json.dumps(body) if body is not None else None
        return await http.request(method, url, content=content, headers=headers or {})


async def test_every_endpoint_needs_authentication(make_world, collab_base_url):
    world = await make_world()
    for method, url, body in endpoints(world):
        r = await call(collab_base_url, method, url, body)
        assert r.status_code in (401, 403), (method, url, r.status_code, r.text)
        assert not reveals(r, world), (method, url)


async def test_every_endpoint_asks_the_authorizer(make_world, collab_base_url, collab_token):
    world = await make_world()
    denied = {"Authorization": f"token {DENIED_TOKEN}"}
    for method, url, body in endpoints(world):
        r = await call(collab_base_url, method, url, body, headers=denied)
        assert r.status_code == 403, (method, url, r.status_code, r.text)
        assert not reveals(r, world), (method, url)
    # the same calls with the server's token are not refused (the setup is sound)
    allowed = {"Authorization": f"token {collab_token}"}
    for method, url, body in endpoints(world):
        r = await call(collab_base_url, method, url, body, headers=allowed)
        assert r.status_code not in (401, 403), (method, url, r.status_code, r.text)


async def login_cookies(base_url: str, token: str) -> httpx.Cookies:
    """What a browser holds after logging in: the login cookie and the _xsrf cookie."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        r = await http.get("api/status", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200
        r2 = await http.get("lab", headers={"Accept": "text/html"})  # a page sets _xsrf
        assert r2.status_code in (200, 302, 404)
        return http.cookies


async def test_cookie_requests_need_the_xsrf_token(make_world, collab_base_url, collab_token):
    world = await make_world()
    cookies = await login_cookies(collab_base_url, collab_token)
    assert any(name.startswith("username-") for name in cookies.keys())
    xsrf = cookies.get("_xsrf")
    assert xsrf
    unsafe = [e for e in endpoints(world) if e[0] != "GET"]
    assert len(unsafe) >= 4
    for method, url, body in unsafe:
        r = await call(collab_base_url, method, url, body, cookies=cookies)
        assert r.status_code == 403, (method, url, r.status_code, r.text)
        assert "XSRF" in r.text or "xsrf" in r.text, r.text
        r = await call(
            collab_base_url, method, url, body, headers={"X-XSRFToken": xsrf}, cookies=cookies
        )
        assert r.status_code not in (401, 403), (method, url, r.status_code, r.text)
    # reading with the cookie alone works (same-origin GETs, as a browser makes them)
    for method, url, body in endpoints(world):
        if method == "GET":
            r = await call(
                collab_base_url,
                method,
                url,
                body,
                cookies=cookies,
                headers={"Referer": collab_base_url},
            )
            # 2xx: a request's status answers 202 while it runs (the nbmodel protocol)
            assert 200 <= r.status_code < 300, (url, r.status_code, r.text)


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


async def refused(url: str, headers: dict | None = None) -> int:
    try:
        async with ws_connect(url, additional_headers=headers or {}, open_timeout=30) as ws:
            # accepted: a refusal may still come as an immediate close
            try:
                await ws.recv()
            except Exception:
                return ws.close_code or 0
            return 0
    except InvalidStatus as e:
        return e.response.status_code


async def test_every_websocket_needs_authentication_and_authorization(
    make_world, collab_base_url, collab_token
):
    world = await make_world()
    for path in websockets_of(world):
        url = ws_url(collab_base_url, path)
        assert await refused(url) in (401, 403), path
        assert await refused(url, {"Authorization": f"token {DENIED_TOKEN}"}) == 403, path
        # the server's token is accepted (the setup is sound)
        async with ws_connect(
            url, additional_headers={"Authorization": f"token {collab_token}"}, open_timeout=30
        ):
            pass


async def test_cookie_websocket_from_another_origin_is_refused(
    make_world, collab_base_url, collab_token
):
    world = await make_world()
    cookies = await login_cookies(collab_base_url, collab_token)
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    for path in websockets_of(world):
        url = ws_url(collab_base_url, path)
        code = await refused(url, {"Cookie": cookie_header, "Origin": "http://evil.example"})
        assert code in (401, 403), (path, code)
