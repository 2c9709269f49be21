"""Fixtures for the rooms tests (and every area that needs a collaborator).

- ``collab_base_url``: the running jp_serverapp's HTTP URL (with its base URL).
- ``collab_token``: its token.
- ``rooms_notebook(path, cells=[...])`` / ``rooms_text(path, text)``: real files in jp_root_dir.
- ``collab_client(path, file_type="notebook", token=None, ydoc=None)``: a synced
  :class:`~collab_kernels.client.connection.RoomConnection` (closed at teardown).
- ``ViewerIdentityProvider`` / ``ReadOnlyViewerAuthorizer``: the token ``viewer-token`` logs
  in as user ``viewer``, who may read contents but not write them.
- ``collab_config(server=None, **sections)`` / ``viewer_config(**sections)``: a test module's
  ``jp_server_config`` (the extensions on; with the viewer classes); ``FAST_ROOMS``: short
  save, file check and free delays; ``store_config(data_dir, **rooms)``: with the update
  store and nothing saved or freed on its own (``STORE_ROOMS``).
- ``restart_server(config=None)``: an async context manager that stops the test's server and
  starts another on the same root and data dir.
- ``sources(doc)``, ``append_source(doc, index, text)``, ``disk_sources(root, path)``: cell
  sources of a Y notebook and of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from jupyter_server.serverapp import ServerApp
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from traitlets.config import Config

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


#: the RoomManager delays of tests that wait for saves, disk checks and freed rooms
FAST_ROOMS = {"save_delay": 0.1, "file_check_interval": 0.2, "free_delay": 0.2}


def collab_config(server: dict | None = None, **sections: dict) -> Config:
    """A server config with collab_kernels and jupyter_server_fileid on, ``server`` more
    ServerApp traits and ``sections`` other classes' (``RoomManager={...}``)."""
    extensions = {"collab_kernels": True, "jupyter_server_fileid": True}
    return Config(
        {
            "ServerApp": {"jpserver_extensions": extensions, **(server or {})},
            **{name: dict(traits) for name, traits in sections.items()},
        }
    )


#: The room traits of tests that restart from the update store: nothing saved, checked or
#: freed on its own during a test unless the test asks for it.
STORE_ROOMS = {
    "save_delay": 600.0,
    "save_max_delay": 600.0,
    "file_check_interval": 0,
    "free_delay": 600.0,
    "update_store": "sqlite",
}


def store_config(data_dir, **rooms: object) -> Config:
    """``collab_config`` with ``STORE_ROOMS`` and the update store under ``data_dir``; ``rooms``
    more RoomManager traits."""
    path = str(data_dir / "store" / "updates.sqlite")
    return collab_config(RoomManager={**STORE_ROOMS, "update_store_path": path, **rooms})


def viewer_config(**sections: dict) -> Config:
    """``collab_config`` where ``viewer-token`` logs in as the read-only user ``viewer``."""
    server = {
        "identity_provider_class": ViewerIdentityProvider,
        "authorizer_class": ReadOnlyViewerAuthorizer,
    }
    return collab_config(server, **sections)


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


def sources(doc) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def append_source(doc, index: int, text: str) -> None:
    source = doc.ycells[index]["source"]
    source.insert(len(source), text)


def disk_sources(root, path) -> list[str] | None:
    """The sources in the file, or None while the file is being rewritten."""
    try:
        notebook = read_notebook(root, path)
    except ValueError:  # jupyter_server rewrites the file in place: a reader may see it empty
        return None
    return ["".join(c["source"]) for c in notebook["cells"]]


@pytest.fixture
def restart_server(jp_serverapp, jp_configurable_serverapp, jp_base_url):
    """``async with restart_server(config=None) as (base_url, token, app)``: stop the test's
    server (clients closed, documents saved), then start a new server process-alike on the
    same root and data dir (with ``config`` instead of the test's); yields its base URL,
    token and app, and stops it at the end of the block."""

    @contextlib.asynccontextmanager
    async def restart(config=None) -> AsyncIterator[tuple[str, str, ServerApp]]:
        await jp_serverapp._cleanup()
        ServerApp.clear_instance()
        sock, port = bind_unused_port()
        kwargs = {"http_port": port}
        if config is not None:
            kwargs["config"] = config
        app2 = jp_configurable_serverapp(**kwargs)
        server = HTTPServer(app2.web_app)
        server.add_sockets([sock])
        try:
            yield f"http://127.0.0.1:{port}{jp_base_url}", app2.identity_provider.token, app2
        finally:
            await app2.web_app.settings["collab_room_manager"].stop()
            server.stop()

    return restart


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
