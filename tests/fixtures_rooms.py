"""Fixtures for the rooms tests (and every area that needs a collaborator).

- ``collab_base_url``: the running jp_serverapp's HTTP URL (with its base URL).
- ``collab_token``: its token.
- ``rooms_notebook(path, cells=[...])`` / ``rooms_text(path, text)``: real files in jp_root_dir.
- ``collab_client(path, file_type="notebook", token=None, ydoc=None)``: a synced
  :class:`~collab_kernels.client.connection.RoomConnection` (closed at teardown).
- ``ViewerIdentityProvider`` / ``ReadOnlyViewerAuthorizer``: the token ``viewer-token`` logs
  in as user ``viewer``, who may read contents but not write them.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User

from collab_kernels.client.connection import RoomConnection, open_session

VIEWER_TOKEN = "viewer-token"


class ViewerIdentityProvider(IdentityProvider):
    """The server's token logs in as usual; ``viewer-token`` logs in as user ``viewer``."""

    def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        if header == f"token {VIEWER_TOKEN}" or handler.get_argument("token", "") == VIEWER_TOKEN:
            handler._token_authenticated = True  # no XSRF check for token requests
            return User(username="viewer", name="Viewer")
        return super().get_user(handler)


class ReadOnlyViewerAuthorizer(Authorizer):
    """User ``viewer`` may do anything but write contents."""

    def is_authorized(self, handler, user, action, resource):
        if getattr(user, "username", None) == "viewer":
            return not (resource == "contents" and action == "write")
        return True


def notebook_json(sources: list[str]) -> dict:
    nb = nbformat.v4.new_notebook()
    for source in sources:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


@pytest.fixture
def collab_base_url(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def collab_token(jp_serverapp):
    return jp_serverapp.identity_provider.token


@pytest.fixture
def rooms_notebook(jp_root_dir):
    def make(path: str = "notebook.ipynb", cells: list[str] | None = None) -> str:
        target = jp_root_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_json(cells if cells is not None else ["x = 1"]), str(target))
        return path

    return make


@pytest.fixture
def rooms_text(jp_root_dir):
    def make(path: str = "notes.txt", text: str = "hello\n") -> str:
        target = jp_root_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return path

    return make


def read_notebook(root, path: str) -> dict:
    return json.loads((root / path).read_text())


@pytest.fixture
def collab_client(collab_base_url, collab_token, jp_asyncio_loop):
    connections: list[RoomConnection] = []

    async def connect(
        path: str,
        file_type: str = "notebook",
        *,
        token: str | None = None,
        ydoc=None,
        session_id: str | None = None,
        wait_synced: bool = True,
    ) -> RoomConnection:
        token = token or collab_token
        session = await open_session(collab_base_url, path, file_type, token=token)
        conn = RoomConnection.from_session(collab_base_url, session, token=token, ydoc=ydoc)
        if session_id is not None:
            conn.session_id = session_id
        connections.append(conn)
        await conn.connect()
        if wait_synced:
            await asyncio.wait_for(asyncio.shield(conn.synced), 30)
        return conn

    yield connect

    async def close_all():
        for conn in connections:
            await conn.close()

    jp_asyncio_loop.run_until_complete(close_all())


def unique_name(prefix: str = "nb", suffix: str = ".ipynb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}{suffix}"


async def eventually(condition, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``condition()`` (sync or async) until truthy, for state with no event to await
    (files on disk, REST models); fails the test after ``timeout`` seconds."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@pytest.fixture
def room_manager(jp_serverapp):
    return jp_serverapp.web_app.settings["collab_room_manager"]
