"""A document built from its file in slices: the slices' updates joined are its state
(rooms/update_parts.py), and a room's load encodes the whole document no more."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixtures_rooms import store_config
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text

from collab_kernels.rooms import content as content_module
from collab_kernels.rooms import frames, protocol
from collab_kernels.rooms.content import build_document, new_document
from collab_kernels.rooms.update_parts import EMPTY_UPDATE, Part, join, join_parts

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))


@pytest.fixture
def jp_server_config(jp_data_dir):
    return store_config(jp_data_dir)


def notebooks() -> dict[str, Any]:
    found = {p.name: nbformat.read(str(p), as_version=4) for p in EXAMPLES}
    big = nbformat.v4.new_notebook()
    big.metadata["kernelspec"] = {"name": "python3", "display_name": "Pÿthon 3 ✓"}
    for i in range(30):
        cell = nbformat.v4.new_code_cell(f"print('héllo {i} 🌍')", execution_count=i)
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="línea 🌍\n" * 3000),
            nbformat.v4.new_output("display_data", data={"text/plain": "x", "image/png": "AA"}),
        ]
        big.cells += [cell, nbformat.v4.new_markdown_cell(f"# {i}")]
    found["big"] = big
    found["empty"] = nbformat.v4.new_notebook()
    return found


def observed(doc: Doc[Any]) -> list[Part]:
    parts: list[Part] = []
    doc.observe(
        lambda event: parts.append(Part(event.update, event.before_state, event.after_state))
    )
    return parts


@pytest.mark.parametrize("name", sorted(notebooks()))
async def test_joined_slices_are_the_documents_encoded_state(name, monkeypatch):
    monkeypatch.setattr(content_module, "BUILD_SLICE", 0.0)  # a transaction per step
    document = new_document("notebook")
    assert isinstance(document, YNotebook)
    parts = observed(document.ydoc)
    await build_document(document, nbformat.from_dict(notebooks()[name]))
    with document.ydoc.transaction():
        document.ystate["path"] = name
    assert len(parts) > 2  # built in many transactions
    joined = join(parts, document.ydoc.client_id)
    assert joined is not None
    assert same_document(joined, document.ydoc)
    # here byte for byte, too (each cell's texts are inserted whole: nothing to squash)
    assert joined == document.ydoc.get_update()
    # the parts again, read from a view of the joined bytes: each one's own update, and the
    # first ones joined as join() joins them (a big notebook's first part, progressive.py)
    pieces = join_parts(parts, document.ydoc.client_id)
    assert pieces is not None
    again = pieces.parts_of(memoryview(joined))
    assert list(again) == [p.update for p in parts if p.update != EMPTY_UPDATE]
    for given in (1, len(parts) // 2, len(parts)):
        assert again.joined(given) == join(parts[:given], document.ydoc.client_id)


def same_document(update: bytes, doc: Doc[Any]) -> bool:
    """``update`` applied to a new document gives ``doc``: its state vector and content."""
    copy: Doc[Any] = Doc()
    copy.apply_update(update)
    if copy.get_state() != doc.get_state():
        return False
    if "cells" in doc.keys():
        return bool(YNotebook(copy).get() == YNotebook(doc).get())
    return str(copy.get("t", type=Text)) == str(doc.get("t", type=Text))


def test_what_is_not_one_clients_build_from_empty_is_not_joined():
    doc: Doc[Any] = Doc()
    parts = observed(doc)
    doc["t"] = text = Text()
    text += "hello"
    text += " world"
    text += "!"
    joined = join(parts, doc.client_id)
    # the same structs; get_update() squashes "hello", " world" and "!" into one
    assert joined is not None and same_document(joined, doc)
    assert join(parts[1:], doc.client_id) is None  # does not start on an empty document
    assert join(parts[:1] + parts[2:], doc.client_id) is None  # a gap in the clocks
    assert join(parts, doc.client_id + 1) is None  # another client's
    del text[0:2]  # a deletion
    assert join(parts, doc.client_id) is None
    other: Doc[Any] = Doc()
    other_parts = observed(other)
    other.apply_update(doc.get_update())  # another client's structs
    assert join(other_parts, other.client_id) is None
    assert join([], doc.client_id) is None


async def test_a_rooms_load_joins_its_build_instead_of_encoding_it(
    jp_root_dir, room_manager, monkeypatch
):
    """What stalled every room while a big notebook was opened: its build committed in one
    transaction (the whole document encoded for the observer) and then ``get_update()``
    encoded it again for the first sync."""
    nbformat.write(notebooks()["big"], str(jp_root_dir / "big.ipynb"))
    encoded: list[int] = []
    get_update = Doc.get_update

    def spied(self: Doc[Any], state: bytes | None = None) -> bytes:
        update = get_update(self, state) if state is not None else get_update(self)
        encoded.append(len(update))
        return update

    monkeypatch.setattr(Doc, "get_update", spied)
    room = await room_manager.get_room_for_path("big.ipynb")
    state = room.first_sync.state
    assert state is not None and len(state) > 500_000
    assert max(encoded, default=0) < len(state) // 10  # nothing near the whole document
    monkeypatch.setattr(Doc, "get_update", get_update)
    assert same_document(bytes(state), room.ydoc)
    # the first collaborator's SyncStep2, framed in a worker thread: the bytes the loop
    # would have built
    message = room.first_sync.message
    assert message is not None
    assert message.wire == frames.encode_binary_frame(protocol.sync_step2_message(bytes(state)))
    # its payload and the state are views of the wire bytes: one copy of the document
    assert isinstance(message.payload, memoryview) and message.payload.obj is message.wire
    assert isinstance(state, memoryview) and state.obj is message.wire
    assert room.sync_answer(b"\x00") is message
    assert room.document.get()["cells"][1]["source"] == "# 0"


async def test_a_loaded_room_holds_one_copy_of_its_encoded_state(jp_root_dir, room_manager):
    """Until its first sync and its saved content are done, a just-loaded room held its
    build's updates, their join and the framed first sync: three times the document's
    encoded size. The state and the parts the saved content is computed from are now
    views of the frame's bytes, and the build's updates are dropped."""
    nbformat.write(notebooks()["big"], str(jp_root_dir / "big.ipynb"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        room = await room_manager.get_room_for_path("big.ipynb")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    state = room.first_sync.state
    assert state is not None and len(state) > 1_000_000
    assert held < 1.6 * len(state), (held, len(state))
    # the saved content, computed from those views, is the loaded document
    await room.file.materialize()
    assert room.file.saved_content == room.document.get()


async def test_the_loaded_content_is_computed_with_the_loop_going_on(jp_root_dir, room_manager):
    """The saved content a room compares its file with is the loaded document: computed
    from the build's updates one by one, with other rooms' work between them (one
    ``apply_update`` of a 65 MB state held the loop 200 ms)."""
    nbformat.write(notebooks()["big"], str(jp_root_dir / "big.ipynb"))
    room = await room_manager.get_room_for_path("big.ipynb")
    turns = 0
    done = False

    async def other_room() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    other = asyncio.ensure_future(other_room())
    await room.file.materialize()
    done = True
    await other
    assert turns > 20
    assert room.file.saved_content == room.document.get()


async def test_a_slice_leaves_room_for_its_commit(monkeypatch):
    """Big outputs cost more to encode at a slice's commit than to build (in the server a
    commit of 10 ms of building took 60-130 ms): each slice builds for the share of the
    budget the last one's commit left, so building and commit stay near ``BUILD_SLICE``.
    A fake clock: each step builds for 1 ms, the commit takes 3 ms per step built."""

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(content_module, "time", clock)
    built = [0]
    slices: list[float] = []

    class Steps(YNotebook):
        def _set(self, value: Any, delay_outputs_above_mb: float | None = None):
            for i in range(200):
                clock.now += 0.001
                self.ystate[f"k{i}"] = i
                built[0] += 1
                yield False

    document = Steps()

    def commit(_event: Any) -> None:
        clock.now += 0.003 * built[0]
        slices.append(0.004 * built[0])
        built[0] = 0

    document.ydoc.observe(commit)
    await build_document(document, {"cells": []})
    assert len(slices) > 10
    assert max(slices[1:]) <= 2 * content_module.BUILD_SLICE  # the first one measures
