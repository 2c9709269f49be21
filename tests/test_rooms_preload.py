"""The session PUT starts loading the room its client opens next (rooms/preload.py): the
websocket joins that load, a room nobody joins is freed, a server stopping mid-load stops
cleanly, and a client the authorizer refuses loads nothing."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from fixtures_rooms import ViewerIdentityProvider, collab_config, sources
from jupyter_server.auth import Authorizer

from collab_kernels.client.connection import SessionError, open_session

CELLS = 300


class NoReadViewerAuthorizer(Authorizer):
    """User ``viewer`` may not read contents."""

    def is_authorized(self, handler, user, action, resource):
        return not (getattr(user, "username", None) == "viewer" and resource == "contents")


@pytest.fixture
def jp_server_config():
    return collab_config(
        {
            "identity_provider_class": ViewerIdentityProvider,
            "authorizer_class": NoReadViewerAuthorizer,
        },
        RoomManager={"preload_free_delay": 0.2, "free_delay": 600.0, "save_delay": 600.0},
    )


def notebook(root, name: str, cells: int = CELLS) -> str:
    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"x = {i}", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n")]
        nb.cells.append(cell)
    nbformat.write(nb, str(root / name))
    return name


def watch_rooms(room_manager) -> tuple[list, list, asyncio.Event]:
    created: list = []
    freed: list = []
    freed_event = asyncio.Event()
    room_manager.on_room_created(created.append)

    def on_freed(room) -> None:
        freed.append(room)
        freed_event.set()

    room_manager.on_room_freed(on_freed)
    return created, freed, freed_event


async def test_the_websocket_joins_the_room_its_session_request_loaded(
    jp_root_dir, collab_base_url, collab_token, collab_client, room_manager
):
    path = notebook(jp_root_dir, "joined.ipynb")
    created, _freed, _event = watch_rooms(room_manager)
    session = await open_session(collab_base_url, path, token=collab_token)
    room_id = room_manager.room_id_for(session.file_id)
    # The load started with the PUT, before any websocket.
    assert room_id in room_manager._loading or room_manager.find_room(room_id) is not None
    alice = await collab_client(path)
    assert sources(alice.document) == [f"x = {i}" for i in range(CELLS)]
    # One room, loaded once, kept while its client is there (past preload_free_delay).
    assert [room.room_id for room in created] == [room_id]
    room = room_manager.find_room(room_id)
    assert room is created[0] and len(room.clients) == 1
    await asyncio.sleep(0.4)  # longer than preload_free_delay: a joined room is not freed
    assert room_manager.find_room(room_id) is room


async def test_a_room_loaded_for_a_session_nobody_joins_is_freed(
    jp_root_dir, collab_base_url, collab_token, room_manager
):
    path = notebook(jp_root_dir, "unused.ipynb")
    before = (jp_root_dir / path).read_bytes()
    created, freed, freed_event = watch_rooms(room_manager)
    session = await open_session(collab_base_url, path, token=collab_token)
    await asyncio.wait_for(freed_event.wait(), 30)
    room_id = room_manager.room_id_for(session.file_id)
    assert [r.room_id for r in created] == [room_id] == [r.room_id for r in freed]
    assert room_manager.find_room(room_id) is None
    assert (jp_root_dir / path).read_bytes() == before  # nothing written


async def test_a_server_stopping_while_a_session_loads_its_room_stops_cleanly(
    jp_root_dir, collab_base_url, collab_token, room_manager
):
    path = notebook(jp_root_dir, "stopping.ipynb", cells=3000)
    before = (jp_root_dir / path).read_bytes()
    await open_session(collab_base_url, path, token=collab_token)
    assert room_manager._loading  # the load runs
    await room_manager.stop()
    assert not room_manager._loading
    assert not room_manager.rooms
    assert (jp_root_dir / path).read_bytes() == before


async def test_a_session_the_authorizer_refuses_loads_nothing(
    jp_root_dir, collab_base_url, collab_token, room_manager
):
    path = notebook(jp_root_dir, "refused.ipynb", cells=3)
    with pytest.raises(SessionError) as refused:
        await open_session(collab_base_url, path, token="viewer-token")
    assert refused.value.status == 403
    assert not room_manager._loading and not room_manager.rooms
    # The same request by an allowed user loads it.
    await open_session(collab_base_url, path, token=collab_token)
    assert room_manager._loading or room_manager.rooms
