"""Rooms under attack (#13): hidden files, awareness spoofing and flooding, slow readers,
poisoned Y updates. Real server, real websockets, two users (owner token and viewer token)."""

from __future__ import annotations

import logging

import pytest
from fixtures_rooms import (
    ReadOnlyViewerAuthorizer,
    ViewerIdentityProvider,
    read_notebook,
)
from traitlets.config import Config

from collab_kernels.client.connection import SessionError, open_session
from collab_kernels.rooms.manager import RoomNotFound


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                "identity_provider_class": ViewerIdentityProvider,
                "authorizer_class": ReadOnlyViewerAuthorizer,
            },
            "ContentsManager": {"allow_hidden": False},
            "RoomManager": {
                "save_delay": 0.05,
                "file_check_interval": 0.2,
                "max_awareness_state_size": 1024,
                "client_queue_bytes": 1024 * 1024,
            },
        }
    )


def server_errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR or (r.exc_info and "collab_kernels" in r.getMessage())
    ]


def disk_sources(root, path) -> list[str] | None:
    try:
        return ["".join(c["source"]) for c in read_notebook(root, path)["cells"]]
    except ValueError:
        return None


# --- 8: hidden files -------------------------------------------------------------------------
@pytest.mark.parametrize("path", [".hidden.ipynb", ".ipynb_checkpoints/x-checkpoint.ipynb"])
async def test_hidden_files_do_not_exist_for_sessions_and_rooms(
    path, rooms_notebook, collab_base_url, collab_token, room_manager, jp_serverapp, caplog
):
    rooms_notebook(path, ["secret = 1"])
    with pytest.raises(SessionError) as refused:
        await open_session(collab_base_url, path, token=collab_token)
    assert refused.value.status == 404  # as /api/contents answers: its existence does not leak
    with pytest.raises(RoomNotFound):
        await room_manager.get_room_for_path(path)
    # a room id made from the file's id (jupyter_server_fileid indexes any path) is no better
    file_id = jp_serverapp.web_app.settings["file_id_manager"].index(path)
    with pytest.raises(RoomNotFound):
        await room_manager.get_room(f"json:notebook:{file_id}")
    assert server_errors(caplog) == []
    # a visible notebook still opens
    rooms_notebook("visible.ipynb")
    session = await open_session(collab_base_url, "visible.ipynb", token=collab_token)
    assert session.status in (200, 201)
