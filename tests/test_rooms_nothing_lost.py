"""Nothing lost (#15): failed saves are retried and shown; out-of-band changes made while the
room has unsaved edits are merged by cell. Real server, real files."""

from __future__ import annotations

import errno
import json
import os

import nbformat
import pytest
from fixtures_execution import post_execute
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
                "max_cell_output": 20_000,
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


# --- 2: out-of-band change with unsaved edits: merged by cell ---------------------------------
def write_out_of_band(root, path, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    for cell_id, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    (root / path).write_text(nbformat.writes(nb))


async def test_out_of_band_change_is_merged_with_unsaved_edits_by_cell(
    rooms_notebook, collab_client, room_manager, jp_root_dir
):
    room_manager.save_delay = 30  # the room's edit stays unsaved
    path = rooms_notebook("merge.ipynb", ["a = 1", "b = 2", "c = 3"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    a, b, _c = [cell["id"] for cell in alice.document.ycells]
    room = room_manager.find_room(alice.room_id)
    append(alice.document, 0, "  # alice")
    await eventually(lambda: room.unsaved)
    # git checkout: cell b changed, c deleted, a new cell d
    write_out_of_band(jp_root_dir, path, [(a, "a = 1"), (b, "b = 20"), ("d", "d = 4")])
    merged = await bob.wait_for_raw("merged")
    assert merged["conflicts"] == [] and merged["checkpoint"] is None
    expected = ["a = 1  # alice", "b = 20", "d = 4"]
    await bob.wait_for(lambda doc: [str(c["source"]) for c in doc.ycells] == expected)
    await eventually(lambda: disk_sources(jp_root_dir, path) == expected)  # merge saved
    assert "conflict" not in [m.get("type") for m in bob.raw_messages + alice.raw_messages]
    assert not room.unsaved
    # saved and idle: the room is freed once everyone left
    await alice.close()
    await bob.close()
    await eventually(lambda: room_manager.find_room(room.room_id) is None)


async def test_cell_changed_on_both_sides_keeps_the_rooms_and_checkpoints_the_disks(
    rooms_notebook, collab_client, room_manager, jp_root_dir, jp_fetch
):
    room_manager.save_delay = 30
    path = rooms_notebook("both.ipynb", ["x = 1", "y = 1"])
    alice = await collab_client(path)
    x, y = [cell["id"] for cell in alice.document.ycells]
    room = room_manager.find_room(alice.room_id)
    append(alice.document, 0, "  # mine")
    await eventually(lambda: room.unsaved)
    write_out_of_band(jp_root_dir, path, [(x, "x = 2  # theirs"), (y, "y = 2")])
    merged = await alice.wait_for_raw("merged")
    assert merged["conflicts"] == [x] and merged["checkpoint"]
    expected = ["x = 1  # mine", "y = 2"]
    await eventually(lambda: disk_sources(jp_root_dir, path) == expected)
    assert [str(c["source"]) for c in room.document.ycells] == expected
    # the disk's version of the conflicting cell is in the contents manager's checkpoint
    listed = json.loads((await jp_fetch("api", "contents", path, "checkpoints")).body)
    assert merged["checkpoint"] in [c["id"] for c in listed]
    checkpoint = jp_root_dir / ".ipynb_checkpoints" / "both-checkpoint.ipynb"
    assert disk_sources(jp_root_dir, str(checkpoint.relative_to(jp_root_dir))) == [
        "x = 2  # theirs",
        "y = 2",
    ]
    assert "conflict" not in [m.get("type") for m in alice.raw_messages]


# --- 3: a move outside Jupyter is followed as a rename ------------------------------------
async def test_file_moved_outside_jupyter_keeps_its_room_and_edits(
    rooms_notebook, collab_client, room_manager, jp_root_dir
):
    room_manager.save_delay = 30  # an edit waiting for its save when the file is moved
    path = rooms_notebook("before.ipynb", ["a = 1"])
    alice = await collab_client(path)
    room = room_manager.find_room(alice.room_id)
    append(alice.document, 0, "  # unsaved")
    await eventually(lambda: room.unsaved)
    (jp_root_dir / "moved").mkdir()
    os.rename(jp_root_dir / path, jp_root_dir / "moved" / "after.ipynb")  # mv, not Jupyter
    await alice.wait_for(lambda doc: doc.ystate.get("path") == "moved/after.ipynb")
    assert not alice.closed.done() and room_manager.find_room(alice.room_id) is room
    # the edit made before the move, and one after it, land in the moved file
    room_manager.save_delay = 0.05
    append(alice.document, 0, "!")
    expected = ["a = 1  # unsaved!"]
    await eventually(lambda: disk_sources(jp_root_dir, "moved/after.ipynb") == expected)
    assert not (jp_root_dir / path).exists()


# --- 5: a runaway print cannot make a notebook no browser can open -------------------------
def saved_stream(root, path) -> str | None:
    try:
        cell = read_notebook(root, path)["cells"][0]
    except (ValueError, IndexError):
        return None
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


async def test_runaway_print_keeps_the_newest_output_within_max_cell_output(
    notebook_session, api, wait_request, collab_client, jp_root_dir
):
    nb = await notebook_session(["for i in range(4000):\n    print(f'line {i:04d} ' + 'x' * 40)"])
    alice = await collab_client(nb.path)
    code, data, _ = await post_execute(api, nb, nb.cell_ids[0])
    assert code == 202, data
    result = await wait_request(data["request_id"])
    assert result["result"] == "ok"  # 200 KB printed, 20 KB kept
    last_line = "line 3999 " + "x" * 40 + "\n"

    def trimmed(text: str | None) -> bool:
        return bool(text) and text.startswith("[") and text.endswith(last_line)

    await eventually(lambda: trimmed(saved_stream(jp_root_dir, nb.path)))
    text = saved_stream(jp_root_dir, nb.path)
    assert len(text.encode()) <= 20_000
    assert text.split("\n", 1)[0].endswith("bytes of earlier output dropped]")
    # collaborators see the same trimmed output
    await alice.wait_for(
        lambda doc: trimmed(
            "".join(
                str(o["text"]) for o in doc.ycells[0]["outputs"] if o["output_type"] == "stream"
            )
        )
    )
