"""Unit tests of the rooms' pure parts, no server: notebook repair, and the file stage of a
document room hosted by a fake host over a fake contents manager."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text
from tornado.web import HTTPError

from collab_kernels.rooms.document import DocumentRoom
from collab_kernels.rooms.fanout import RoomClient
from collab_kernels.rooms.limits import UpdateTooDeep, inspect_update, notebook_roots, type_depth
from collab_kernels.rooms.protocol import ProtocolError
from collab_kernels.rooms.repair import (
    CELLS_PER_STEP,
    repair_notebook,
    repair_notebook_in_steps,
    trim_in_steps,
    trim_stream_outputs,
)
from collab_kernels.rooms.store import SQLiteUpdateStore

LOG = logging.getLogger("test_rooms_units")


# --- repair --------------------------------------------------------------------------------
def test_repair_turns_any_y_content_into_a_notebook():
    ydoc: Doc = Doc()
    cells = ydoc.get("cells", type=Array)
    meta = ydoc.get("meta", type=Map)
    with ydoc.transaction():
        cells.append(42)  # not a cell
        cells.append(Map({"cell_type": "weird", "source": "seven"}))
        cells.append(
            Map({"cell_type": "code", "source": Text("x"), "id": "c1", "outputs": Array([1])})
        )
        cells.append(Map({"cell_type": "markdown", "source": Text("# t"), "outputs": Array()}))
        meta["nbformat"] = "four"
    problems = repair_notebook(ydoc)
    assert problems and any("non-cell" in p for p in problems)
    assert len(cells) == 3
    raw, code, markdown = cells[0], cells[1], cells[2]
    assert raw["cell_type"] == "raw" and str(raw["source"]) == "seven" and raw["id"]
    assert code["execution_count"] is None and len(code["outputs"]) == 0
    assert "outputs" not in markdown and "execution_count" not in markdown
    assert meta["nbformat"] == 4 and isinstance(meta["metadata"], Map)
    assert repair_notebook(ydoc) == []  # a sound notebook is left alone


def _broken_big_notebook() -> Doc:
    """More cells than one step takes, broken ones and over-long outputs among them."""
    ydoc: Doc = Doc()
    cells = ydoc.get("cells", type=Array)
    with ydoc.transaction():
        for i in range(CELLS_PER_STEP * 2 + 7):
            if i % 50 == 3:
                cells.append(i)  # not a cell
                continue
            output = Map({"output_type": "stream", "name": "stdout", "text": Text("o" * 300)})
            cell = {"cell_type": "code", "source": Text(f"print({i})"), "id": f"c{i}"}
            if i % 40 == 0:
                cell.pop("id")  # no id
            cells.append(Map({**cell, "outputs": Array([output])}))
    return ydoc


async def test_a_save_repairs_and_trims_many_cells_letting_other_rooms_run_between_steps():
    """What a save does before it reads a notebook of many cells (2000 cells held every
    room 80-90 ms per pass): the same repairs and trims as in one go, in steps of
    ``CELLS_PER_STEP`` cells with the event loop free between two."""
    at_once, in_steps = _broken_big_notebook(), _broken_big_notebook()
    expected_trims = trim_stream_outputs(at_once, 200)
    expected_problems = repair_notebook(at_once)
    ticks = 0
    done = False

    async def other_room() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.ensure_future(other_room())
    await asyncio.sleep(0)
    trims = await trim_in_steps(in_steps, 200)
    ticks_after_trim = ticks
    problems = await repair_notebook_in_steps(in_steps)
    done = True
    await other
    assert ticks_after_trim >= 3 and ticks - ticks_after_trim >= 3
    assert trims == expected_trims and len(trims) > CELLS_PER_STEP
    assert sorted(problems) == sorted(expected_problems)
    ids_now = [c.get("id") for c in in_steps.get("cells", type=Array)]
    assert len(ids_now) == len(at_once.get("cells", type=Array)) and all(ids_now)
    assert [str(c["outputs"][0]["text"]) for c in in_steps.get("cells", type=Array)] == [
        str(c["outputs"][0]["text"]) for c in at_once.get("cells", type=Array)
    ]
    assert await repair_notebook_in_steps(in_steps) == []


# --- the file stage, with a fake contents manager -----------------------------------------
class FakeContentsManager:
    """The part of jupyter_server's ContentsManager a room uses, in memory."""

    def __init__(self):
        self.files: dict[str, dict] = {}
        self.clock = 0
        self.saves = 0
        self.checkpoints: dict[str, dict] = {}

    def write(self, path: str, content) -> None:
        """An out-of-band write (another editor)."""
        self.clock += 1
        text = json.dumps(content, sort_keys=True)
        self.files[path] = {
            "content": copy.deepcopy(content),
            "last_modified": self.clock,
            "hash": hashlib.sha256(text.encode()).hexdigest(),
        }

    def file_exists(self, path: str) -> bool:
        return path in self.files

    def get(self, path, content=True, type=None, format=None, require_hash=False):
        if path not in self.files:
            raise HTTPError(404, f"No such file: {path}")
        entry = self.files[path]
        model = {"path": path, "type": type, "last_modified": entry["last_modified"]}
        if require_hash:
            model["hash"] = entry["hash"]
        if content:
            model["content"] = copy.deepcopy(entry["content"])
        return model

    def create_checkpoint(self, path):
        self.checkpoints[path] = copy.deepcopy(self.files[path])
        return {"id": "checkpoint", "last_modified": self.clock}

    def save(self, model, path):
        self.saves += 1
        self.write(path, model["content"])
        return self.get(path, content=False)


class FakeHost:
    """A RoomHost without a server."""

    save_delay = 0.0
    save_max_delay = 0.0
    save_retry_delay = 0.01
    save_retry_max_delay = 0.05
    save_time_share = 0.1
    free_delay = 3600.0
    file_check_interval = 0.0
    coalesce_window = 0.0
    fanout_cpu_share = 0.0
    awareness_window = 0.0
    awareness_renewal_window = 1.0
    update_store_compact_every = 1000
    max_awareness_state_size = 1024
    max_awareness_ids = 4
    max_update_size = 1024 * 1024
    max_update_depth = 16
    max_cell_output = 0
    progressive_sync_cells = 0
    progressive_sync_output_bytes = 0
    store = None
    log = LOG

    def __init__(self, cm: FakeContentsManager):
        self.contents_manager = cm
        self.events: list[dict] = []
        self.paths: dict[str, str] = {}
        self.idle: list[DocumentRoom] = []
        self.gone: list[DocumentRoom] = []

    def path_for_file_id(self, file_id: str) -> str | None:
        return self.paths.get(file_id)

    def emit_room_event(self, data: dict) -> None:
        self.events.append(data)

    def room_idle(self, room: DocumentRoom) -> None:
        self.idle.append(room)

    def room_gone(self, room: DocumentRoom) -> None:
        self.gone.append(room)


def notebook(sources: list[str], ids: list[str]) -> dict:
    nb = nbformat.v4.new_notebook()
    for source, cell_id in zip(sources, ids, strict=True):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    return nbformat.reads(nbformat.writes(nb), as_version=4)  # as a contents manager reads it


def sources(room: DocumentRoom) -> list[str]:
    return [str(c["source"]) for c in room.document.ycells]


def disk_sources(cm: FakeContentsManager, path: str) -> list[str]:
    cells = cm.files[path]["content"]["cells"]
    return ["".join(c["source"]) for c in cells]


async def open_room(
    cm: FakeContentsManager, path: str = "nb.ipynb"
) -> tuple[DocumentRoom, FakeHost]:
    host = FakeHost(cm)
    host.paths["fid"] = path
    room = DocumentRoom(
        "json:notebook:fid", file_id="fid", path=path, file_type="notebook", host=host
    )
    await room.load()
    return room, host


async def test_file_stage_loads_saves_and_reloads_in_place():
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1", "b = 2"], ["c1", "c2"]))
    room, _host = await open_room(cm)
    assert sources(room) == ["a = 1", "b = 2"] and not room.unsaved
    assert room.document.ystate["path"] == "nb.ipynb"

    source = room.document.ycells[0]["source"]
    source.insert(len(source), "0")
    assert room.unsaved
    assert await room.save() == "success"
    assert disk_sources(cm, "nb.ipynb") == ["a = 10", "b = 2"] and not room.unsaved
    assert room.document.ystate["dirty"] is False
    assert await room.save() == "skipped"

    first = room.document.ycells[0]
    cm.write("nb.ipynb", notebook(["a = 10", "b = 3"], ["c1", "c2"]))
    await room.check_disk()
    assert sources(room) == ["a = 10", "b = 3"]
    assert room.document.ycells[0] == first or str(room.document.ycells[0]["source"]) == "a = 10"
    assert not room.unsaved
    room.close()


async def test_file_stage_merges_an_out_of_band_change_with_unsaved_edits():
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1", "b = 1"], ["c1", "c2"]))
    room, host = await open_room(cm)
    source = room.document.ycells[0]["source"]
    source.insert(len(source), "  # room")
    cm.write("nb.ipynb", notebook(["a = 2", "b = 2"], ["c1", "c2"]))
    await room.check_disk()
    # c1 changed on both sides: the room's kept, the disk's in the checkpoint; c2 from disk
    assert not room.conflict and sources(room) == ["a = 1  # room", "b = 2"]
    assert disk_sources(cm, "nb.ipynb") == ["a = 1  # room", "b = 2"] and not room.unsaved
    assert [c["source"] for c in cm.checkpoints["nb.ipynb"]["content"]["cells"]] == [
        "a = 2",
        "b = 2",
    ]
    assert [e["action"] for e in host.events] == ["merged"]
    room.close()


async def test_file_stage_follows_a_move_and_closes_on_delete():
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1"], ["c1"]))
    room, host = await open_room(cm)
    cm.files["moved.ipynb"] = cm.files.pop("nb.ipynb")
    host.paths["fid"] = "moved.ipynb"
    await room.check_disk()
    assert room.path == "moved.ipynb" and room.document.ystate["path"] == "moved.ipynb"
    del cm.files["moved.ipynb"]
    host.paths.pop("fid")
    await room.check_disk()
    await room.check_disk()  # missing twice: deleted
    assert room.closed and host.gone == [room]
    assert [e["action"] for e in host.events] == ["renamed", "deleted"]


async def test_idle_room_asks_its_host_to_free_it():
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1"], ["c1"]))
    room, host = await open_room(cm)
    host.free_delay = 0.0
    hold = room.hold("running")
    room.schedule_free()
    await asyncio.sleep(0.01)
    assert host.idle == []  # held
    hold.release()
    for _ in range(100):
        if host.idle:
            break
        await asyncio.sleep(0.01)
    assert host.idle == [room]
    room.close()


# --- update limits ---------------------------------------------------------------------------
def notebook_doc() -> tuple[Doc, list[bytes]]:
    ydoc: Doc = Doc()
    updates: list[bytes] = []
    ydoc.observe(lambda event: updates.append(event.update))
    nb = YNotebook(ydoc)
    cell = nbformat.v4.new_code_cell("print(1)\n😀")
    cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
    cell.metadata = {"tags": ["a"], "x": {"y": [1, {"z": 2.5}]}, "n": None, "i": -(2**40)}
    content = nbformat.v4.new_notebook()
    content.cells = [cell, nbformat.v4.new_markdown_cell("# t")]
    nb.set(content)
    source = nb.ycells[0]["source"]
    source.insert(3, "abc")
    del source[0:2]
    return ydoc, updates


def test_inspect_update_measures_real_notebook_updates():
    ydoc, updates = notebook_doc()
    shapes = [inspect_update(u, max_depth=8) for u in updates]
    assert shapes[0].creates_types and shapes[0].type_depth == 4  # cell/outputs/output/text
    assert shapes[0].value_depth == 3  # metadata x -> y -> {z}
    assert not any(s.creates_types for s in shapes[1:])
    assert type_depth(notebook_roots(ydoc), 64) == 4


def test_inspect_update_refuses_deep_nesting_and_malformed_bytes():
    ydoc, _ = notebook_doc()
    before = ydoc.get_state()
    with ydoc.transaction():
        cursor = ydoc.get("cells", type=Array)[0]["metadata"]
        for _ in range(100):
            cursor["a"] = Map()
            cursor = cursor["a"]
    deep = ydoc.get_update(before)
    assert inspect_update(deep).type_depth >= 100
    with pytest.raises(UpdateTooDeep):
        inspect_update(deep, max_depth=64)
    with pytest.raises(ProtocolError):
        inspect_update(deep[: len(deep) // 2])


async def test_room_refuses_types_hung_below_existing_deep_ones():
    """Each update nests a little; the room measures the result, not the update alone."""
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1"], ["c1"]))
    room, host = await open_room(cm)  # max_update_depth = 16
    client = RoomClient(
        write=lambda frame: None,
        close=lambda code, reason: None,
        can_write=True,
        name="mallory",
        max_queue=100,
        log=LOG,
    )
    mirror: Doc = Doc()
    mirror.apply_update(room.ydoc.get_update())
    refused = None
    for step in range(20):
        before = mirror.get_state()
        cursor = mirror.get("cells", type=Array)[0]["metadata"]
        while "a" in cursor:
            cursor = cursor["a"]
        cursor["a"] = Map()
        try:
            room.on_update(client, mirror.get_update(before))
        except UpdateTooDeep:
            refused = step
            break
    assert refused is not None and refused < 16
    assert type_depth(notebook_roots(room.ydoc), 64) <= host.max_update_depth
    room.close()


async def test_unreadable_stored_history_falls_back_to_the_file(tmp_path):
    """A history that cannot be turned back into a notebook never blocks opening it."""
    cm = FakeContentsManager()
    cm.write("nb.ipynb", notebook(["a = 1"], ["c1"]))
    store = SQLiteUpdateStore(str(tmp_path / "updates.sqlite"))
    poisoned: Doc = Doc()
    YNotebook(poisoned).set(notebook(["a = 1"], ["c1"]))
    with poisoned.transaction():
        cursor = poisoned.get("cells", type=Array)[0]["metadata"]
        for _ in range(3000):  # deeper than jupyter_ydoc's recursion can read back
            cursor["a"] = Map()
            cursor = cursor["a"]
    store.reset("json:notebook:fid", cm.files["nb.ipynb"]["hash"], poisoned.get_update())
    host = FakeHost(cm)
    host.store = store
    host.paths["fid"] = "nb.ipynb"
    room = DocumentRoom(
        "json:notebook:fid", file_id="fid", path="nb.ipynb", file_type="notebook", host=host
    )
    await room.load()
    assert not room.restored_from_store and sources(room) == ["a = 1"]
    assert "a" not in room.document.ycells[0]["metadata"]
    room.close()
    store.close()


# --- the save schedule -------------------------------------------------------------------------
async def test_a_slow_save_spaces_out_the_next_autosaves(monkeypatch):
    """Saving a big document may take at most save_time_share of the time."""
    from collab_kernels.rooms import saving

    clock = [100.0]
    monkeypatch.setattr(saving.time, "monotonic", lambda: clock[0])
    saved = asyncio.Event()

    class Side:
        path = "big.ipynb"
        unsaved = True
        active = True

        async def save(self):
            clock[0] += 2.0  # this save "took" 2 s
            saved.set()
            return "success"

        def failure(self):
            return None, False

        def set_state(self, **values):
            pass

        def broadcast_raw(self, payload):
            pass

        def file_event(self, action, message):
            pass

        def saved_or_failed(self):
            pass

    host = FakeHost(FakeContentsManager())
    schedule = saving.SaveSchedule(Side(), host, LOG)
    schedule.request(0)
    await saved.wait()
    await asyncio.sleep(0)  # the save task ends
    loop = asyncio.get_event_loop()
    schedule.request(0)  # an edit right after
    assert schedule._handle is not None
    assert schedule._handle.when() - loop.time() >= 2.0 * (1 / host.save_time_share - 1) - 0.5
    schedule.stop()


def test_trim_stream_outputs_drops_the_oldest_text_with_a_marker():
    ydoc: Doc = Doc()
    YNotebook(ydoc).set(notebook(["print()"], ["c1"]))
    cell = ydoc.get("cells", type=Array)[0]
    with ydoc.transaction():
        cell["outputs"].append(
            Map({"output_type": "stream", "name": "stdout", "text": Text("é" * 600)})
        )
        cell["outputs"].append(
            Map({"output_type": "stream", "name": "stderr", "text": Text("b" * 400)})
        )
    assert trim_stream_outputs(ydoc, 1000) == ["c1"]  # 1600 bytes: down to 800
    first, second = (str(o["text"]) for o in cell["outputs"])
    assert first == "[800 bytes of earlier output dropped]\n" + "é" * 200
    assert second == "b" * 400
    cell["outputs"][1]["text"].insert(400, "c" * 1000)  # the cell keeps printing
    assert trim_stream_outputs(ydoc, 1000) == ["c1"]
    first, second = (str(o["text"]) for o in cell["outputs"])
    assert first.startswith("[1800 bytes of earlier output dropped]\n")  # counts add up
    assert len(first.encode()) + len(second.encode()) <= 1000
    assert second.endswith("c" * 700)
    assert trim_stream_outputs(ydoc, 1000) == []
