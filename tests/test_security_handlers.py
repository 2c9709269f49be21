"""Every handler the server exposes asks the authorizer: a viewer changes nothing.

The walk goes through the server's real routing table (``web_app.default_router``, every
extension installed here included), builds a path each route matches and sends every
state-changing method as a viewer (token auth, so no XSRF check stands in for the
authorizer). Websocket routes are opened as a viewer too.
"""

from __future__ import annotations

import json
import re
from re import _parser as sre_parse  # type: ignore[attr-defined]

import httpx
import pytest
from fixtures_security import *  # noqa: F403
from fixtures_security import TOKENS, USERS, installed_server_extensions
from tornado.routing import PathMatches
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from collab_kernels.security.guard import POLICY, class_key, iter_rules

MUTATING = ("POST", "PUT", "PATCH", "DELETE")

#: answers other than 403/405 to a viewer's state-changing method, and why they change nothing
HARMLESS = {
    # PUT asks for contents:read: it opens a collaboration session on a document the viewer
    # may read (400 here: the walk's path is no file)
    ("collab_kernels.rooms.handlers.SessionHandler", 400),
    # redirect /api/notebooks/... to /api/contents/... (public, changes nothing)
    ("jupyter_server.services.contents.handlers.NotebooksRedirectHandler", 302),
    # PATCH /api/me changes the requester's own identity only (400 here: the walk's body
    # names no field to change)
    ("jupyter_server.services.api.handlers.IdentityHandler", 400),
    # the login form: a wrong password
    ("jupyter_server.auth.login.LoginFormHandler", 401),
    # the base URL page answers POST and PUT like GET (post = put = get upstream)
    ("jupyter_server.base.handlers.MainHandler", 200),
    # jupyter_server routes {base_url}robots.txt without the folder its static handler needs:
    # every request to it fails upstream (TypeError) and the connection is dropped
    ("jupyter_server.base.handlers.PublicStaticFileHandler", "RemoteProtocolError"),
}

#: websockets a viewer may open, and why they change nothing
VIEWER_WEBSOCKETS = {
    # read-only for viewers: their updates are dropped (tests/test_teaching.py)
    "collab_kernels.rooms.handlers.RoomWebsocketHandler",
    # the event bus: the server sends, nothing a client sends is acted on
    "jupyter_server.services.events.handlers.SubscribeWebsocket",
}

#: handler classes that are not JupyterHandlers: they only redirect
NOT_JUPYTER_HANDLERS = {
    # redirects
    "jupyter_server.base.handlers.TrailingSlashHandler",
    "jupyter_server.base.handlers.RedirectWithParams",
    # /robots.txt and /favicon.ico (tornado's plain error page, no template)
    "jupyter_server.base.handlers.PublicStaticFileHandler",
}


def sample(pattern: str) -> str:
    """A path the route's regular expression matches (named groups may be overridden)."""
    parsed = sre_parse.parse(pattern)

    def build(items) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                out.append(build(arg[-1]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, high, item = arg
                count = 0 if (low == 0 and high == 1) else max(low, 1)
                out.append(build(item) * count)
            elif name == "BRANCH":
                out.append(build(arg[1][0]))
            elif name == "IN":
                out.append(_one_of(arg))
            elif name == "ANY":
                out.append("x")
            elif name == "NOT_LITERAL":
                out.append("x" if chr(arg) != "x" else "y")
            elif name == "AT":
                continue
            else:
                raise AssertionError(f"cannot build a path for {pattern!r} ({name})")
        return "".join(out)

    return build(parsed)


def _one_of(items) -> str:
    first = items[0]
    if str(first[0]) == "NEGATE":
        return "x"
    if str(first[0]) == "LITERAL":
        return chr(first[1])
    if str(first[0]) == "RANGE":
        return chr(first[1][0])
    if str(first[0]) == "CATEGORY":
        return "1" if "DIGIT" in str(first[1]) else "a"
    raise AssertionError(f"cannot build a character for {items!r}")


def routes(serverapp):
    """(path relative to the base URL, handler class) for every route under the base URL."""
    found = []
    base = serverapp.base_url
    for rule in iter_rules(serverapp.web_app.default_router):
        if isinstance(rule.matcher, PathMatches) and isinstance(rule.target, type):
            pattern = rule.matcher.regex.pattern.removesuffix("$")
            path = sample(pattern)
            assert re.fullmatch(pattern, path), (pattern, path)
            if path.startswith(base):  # the others: /robots.txt, /favicon.ico (static)
                found.append((path[len(base) :], rule.target))
    return found


def original(cls: type) -> type:
    return getattr(cls, "collab_kernels_original", cls)


def test_every_installed_extension_is_loaded(jp_serverapp):
    loaded = set(jp_serverapp.extension_manager.extensions)
    assert set(installed_server_extensions()) <= loaded
    assert {"jupyterlab", "jupyter_server_terminals", "jupyter_server_fileid"} <= loaded


def test_every_jupyter_handler_is_guarded_and_known(jp_serverapp):
    """Each routed class is a guarded subclass; each upstream class is in the policy table."""
    unknown = []
    for _path, cls in routes(jp_serverapp):
        if not issubclass(cls, RequestHandler):
            continue
        key = class_key(original(cls))
        if key in NOT_JUPYTER_HANDLERS:
            continue
        assert getattr(cls, "collab_kernels_guarded", False), f"{key} is not guarded"
        static = getattr(getattr(cls, "get", None), "__allow_unauthenticated", False)
        if key not in POLICY and not static and not key.startswith("jupyter_server.base."):
            unknown.append(key)
    # Not an error for the server (unknown classes get the default question: read, write or
    # execute on their auth_resource), but the table should say what each class is asked.
    assert unknown == [], (
        "add these handler classes to POLICY in collab_kernels/security/guard.py "
        "(ASKS_ITSELF when every method asks the authorizer, else a Check): " + ", ".join(unknown)
    )


async def test_viewer_cannot_change_state_through_any_route(jp_serverapp, http_as, start_kernel):
    kernel_id = await start_kernel()
    opened = []
    async with http_as("viewer") as viewer:
        for path, cls in routes(jp_serverapp):
            if not issubclass(cls, RequestHandler) or issubclass(cls, WebSocketHandler):
                continue
            path = path.replace("a-a-a-a-a", kernel_id)
            for method in MUTATING:
                try:
                    r = await viewer.request(method, path, content=b"{}", timeout=20)
                except httpx.HTTPError as e:
                    status: int | str = type(e).__name__
                else:
                    status = r.status_code
                key = class_key(original(cls))
                if status not in (403, 405) and (key, status) not in HARMLESS:
                    opened.append((method, path, key, status))
    assert opened == [], "\n".join(map(str, opened))


async def test_viewer_opens_no_websocket_that_changes_state(
    jp_serverapp, collab_base_url, start_kernel
):
    kernel_id = await start_kernel()
    ws_base = collab_base_url.replace("http://", "ws://", 1)
    headers = {"Authorization": f"token {TOKENS['viewer']}"}
    tried, opened = 0, []
    for path, cls in routes(jp_serverapp):
        if not issubclass(cls, WebSocketHandler):
            continue
        key = class_key(original(cls))
        if key in VIEWER_WEBSOCKETS:
            continue
        path = path.replace("a-a-a-a-a", kernel_id)
        url = ws_base + path
        tried += 1
        try:
            async with ws_connect(url, additional_headers=headers, open_timeout=30):
                opened.append(key)
        except InvalidStatus as e:
            assert e.response.status_code == 403, (key, e.response.status_code)
    assert tried >= 3  # kernels, terminals, language servers at least
    assert opened == []


SHORTCUTS = "@jupyterlab/shortcuts-extension:shortcuts"


@pytest.mark.parametrize("role", ["viewer", "editor", "runner"])
async def test_only_the_instructor_changes_jupyterlab_settings(http_as, role):
    shortcut = {"command": "x:evil", "keys": ["Ctrl X"], "selector": "body"}
    body = {"raw": json.dumps({"shortcuts": [shortcut]})}
    async with http_as(role) as client:
        r = await client.put(f"lab/api/settings/{SHORTCUTS}", json=body)
        assert r.status_code == 403, r.text
        assert "settings" in r.json()["message"]
        # reading stays open (every JupyterLab page loads its settings)
        r = await client.get(f"lab/api/settings/{SHORTCUTS}")
        assert r.status_code == 200
        assert "x:evil" not in r.text
    async with http_as("instructor") as client:
        r = await client.put(f"lab/api/settings/{SHORTCUTS}", json=body)
        assert r.status_code == 204
    async with http_as("owner") as client:
        r = await client.get(f"lab/api/settings/{SHORTCUTS}")
        assert "x:evil" in r.text


@pytest.mark.parametrize("role", ["viewer", "editor", "runner"])
async def test_only_the_instructor_changes_workspaces(http_as, role):
    workspace = {"data": {"layout-restorer:data": {"evil": True}}, "metadata": {"id": "default"}}
    async with http_as(role) as client:
        r = await client.put("lab/api/workspaces/default", json=workspace)
        assert r.status_code == 403, r.text
        r = await client.delete("lab/api/workspaces/default")
        assert r.status_code == 403, r.text
        r = await client.get("lab/api/workspaces/default")
        assert r.status_code == 200
    async with http_as("owner") as client:
        r = await client.get("lab/api/workspaces/default")
        assert "evil" not in r.text
        r = await client.put("lab/api/workspaces/default", json=workspace)
        assert r.status_code == 204


async def test_viewer_cannot_build_or_install_jupyterlab_extensions(http_as):
    async with http_as("viewer") as client:
        for path in ("lab/api/build", "lab/api/extensions", "lab/api/plugins"):
            r = await client.post(path, json={"cmd": "install", "extension_name": "x"})
            assert r.status_code == 403, (path, r.status_code)


async def test_refusals_name_the_user_and_role_in_the_log(http_as, caplog):
    async with http_as("viewer") as client:
        r = await client.put(f"lab/api/settings/{SHORTCUTS}", json={"raw": "{}"})
    assert r.status_code == 403
    assert any(
        f"Refused write settings to {USERS['viewer']} (role viewer)" in rec.getMessage()
        for rec in caplog.records
    )
