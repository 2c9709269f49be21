"""Nothing lost (#15): failed saves are retried and shown; out-of-band changes made while the
room has unsaved edits are merged by cell. Real server, real files."""

from __future__ import annotations

import errno

import pytest
from fixtures_rooms import eventually, read_notebook
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets.config import Config

from collab_kernels.rooms import protocol


class FlakyContentsManager(AsyncLargeFileManager):
    """The stock contents manager, whose disk can be made full."""

    disk_full = False

    async def _save_notebook(self, os_path, nb, capture_validation_error=None):
        if self.disk_full:
            raise OSError(errno.ENOSPC, "No space left on device", os_path)
        return await super()._save_notebook(os_path, nb, capture_validation_error)


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                "contents_manager_class": FlakyContentsManager,
            },
            "RoomManager": {
                "save_delay": 0.05,
                "save_retry_delay": 0.05,
                "save_retry_max_delay": 0.2,
                "file_check_interval": 0.2,
                "free_delay": 0.2,
            },
        }
    )


def disk_sources(root, path) -> list[str] | None:
    try:
        return ["".join(c["source"]) for c in read_notebook(root, path)["cells"]]
    except ValueError:  # being rewritten
        return None


def append(doc, index: int, text: str) -> None:
    source = doc.ycells[index]["source"]
    source.insert(len(source), text)


# --- 1: failed saves ---------------------------------------------------------------------
async def test_failed_save_is_shown_and_retried_without_a_new_edit(
    rooms_notebook, collab_client, jp_serverapp, jp_root_dir, caplog
):
    cm = jp_serverapp.contents_manager
    path = rooms_notebook("disk-full.ipynb", ["a = 1"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    cm.disk_full = True
    try:
        append(alice.document, 0, "  # alice")
        # collaborators are told, with the reason; the document stays dirty
        failed = await bob.wait_for_raw("save_failed")
        assert failed["path"] == path and "No space left on device" in failed["reason"]
        await bob.wait_for(lambda doc: doc.ystate.get("dirty") is True)
        assert path in caplog.text and "No space left on device" in caplog.text
        # an explicit save answers failed, with the reason
        await alice.send_bytes(protocol.save_request_message(7))
        answer = await alice.wait_for_raw("save")
        assert answer["responseTo"] == 7 and answer["status"] == "failed"
        assert "No space left on device" in answer["reason"]
        assert disk_sources(jp_root_dir, path) == ["a = 1"]
    finally:
        cm.disk_full = False
    # the disk has room again: the edit reaches the file with nobody typing
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["a = 1  # alice"])
    await bob.wait_for(lambda doc: doc.ystate.get("dirty") is False)
    await bob.wait_for_raw("save_recovered")
