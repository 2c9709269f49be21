"""A big notebook's first browser gets its metadata and first cells in the answer to its first
sync, and the other cells right after (rooms/progressive.py), and a notebook's big outputs
come after its cells: it ends with exactly the file's notebook, later joiners and Python
clients get everything at once, an edit made between the two parts converges, and the split
is no edit (nothing is saved)."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from fixtures_rooms import collab_config, eventually, sources
from jupyter_ydoc import YNotebook
from pycrdt import Doc, create_sync_message, create_update_message
from websockets.asyncio.client import connect as ws_connect

from collab_kernels.client.connection import RoomConnection, open_session
from collab_kernels.rooms import progressive, protocol

CELLS = 120
FIRST = 16
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) test"
OUTPUT_BYTES = 50_000


@pytest.fixture
def jp_server_config():
    return collab_config(
        RoomManager={
            "progressive_sync_cells": FIRST,
            "progressive_sync_output_bytes": OUTPUT_BYTES,
            "save_delay": 0.05,
        }
    )


def big_notebook(root, name: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i in range(CELLS):
        if i % 3 == 2:
            nb.cells.append(nbformat.v4.new_markdown_cell(f"# part {i}"))
            continue
        cell = nbformat.v4.new_code_cell(f"x = {i}", execution_count=i + 1)
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n"),
            nbformat.v4.new_output(
                "execute_result", data={"text/plain": str(i)}, execution_count=i + 1
            ),
        ]
        nb.cells.append(cell)
    nbformat.write(nb, str(root / name))
    return name


@pytest.fixture
def expected(jp_fetch):
    async def notebook(name: str) -> dict:
        """The file's notebook as a room built in one go shows it (the contents manager's
        model, its trust flags included)."""
        response = await jp_fetch("api", "contents", name, params={"content": "1"})
        reference = YNotebook(Doc())
        reference.set(json.loads(response.body)["content"])
        return reference.get()

    return notebook


class Browser:
    """A raw websockets client that announces itself as a browser (``User-Agent``)."""

    def __init__(self, ws, ydoc: Doc):
        self.ws = ws
        self.ydoc = ydoc
        self.document = YNotebook(ydoc)

    @classmethod
    async def open(cls, base_url: str, token: str, path: str, user_agent: str = BROWSER):
        session = await open_session(base_url, path, token=token)
        url = RoomConnection.from_session(base_url, session, token=token).url
        ws = await ws_connect(
            url,
            additional_headers={"Authorization": f"token {token}"},
            user_agent_header=user_agent,
            max_size=None,
            compression=None,
        )
        browser = cls(ws, Doc())
        await ws.send(create_sync_message(browser.ydoc))  # SyncStep1, empty document
        return browser

    async def next_sync(self) -> protocol.Message:
        """The next step2 or update the room sends (awareness and the room's step1 skipped)."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), 30)
            message = protocol.parse_message(frame)
            if message.kind in ("step2", "update"):
                return message

    async def apply_next(self, kind: str) -> None:
        message = await self.next_sync()
        assert message.kind == kind
        self.ydoc.apply_update(message.payload)

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
def browsers(collab_base_url, collab_token, jp_asyncio_loop):
    opened: list[Browser] = []

    async def open_browser(path: str, **kwargs) -> Browser:
        browser = await Browser.open(collab_base_url, collab_token, path, **kwargs)
        opened.append(browser)
        return browser

    yield open_browser

    async def close_all() -> None:
        for browser in opened:
            await browser.close()

    jp_asyncio_loop.run_until_complete(close_all())


async def test_first_browser_gets_the_first_cells_then_exactly_the_notebook(
    jp_root_dir, browsers, room_manager, expected
):
    path = big_notebook(jp_root_dir, "progressive.ipynb")
    on_disk = (jp_root_dir / path).read_bytes()
    mtime = (jp_root_dir / path).stat().st_mtime_ns
    want = await expected(path)
    alice = await browsers(path)
    await alice.apply_next("step2")
    # The answer to the first sync: the notebook's metadata and state, and the first cells.
    first = alice.document.get()
    assert first["metadata"] == want["metadata"]
    assert first["metadata"]["kernelspec"]["name"] == "python3"
    assert (first["nbformat"], first["nbformat_minor"]) == (
        want["nbformat"],
        want["nbformat_minor"],
    )
    assert first["cells"] == want["cells"][:FIRST]
    assert alice.document.ystate["path"] == path
    # The rest follows as an ordinary update: the file's notebook, cell for cell.
    await alice.apply_next("update")
    got = alice.document.get()
    assert got == want
    assert [c["id"] for c in got["cells"]] == [c["id"] for c in want["cells"]]
    assert got["cells"][4]["outputs"] == want["cells"][4]["outputs"]
    # The split is no edit: nothing to save, the file untouched.
    room = await room_manager.get_room_for_path(path)
    assert room.version == 0 and not room.unsaved
    assert room.document.ystate["dirty"] is False
    assert room.document.get() == want
    assert (jp_root_dir / path).read_bytes() == on_disk
    assert (jp_root_dir / path).stat().st_mtime_ns == mtime


async def test_later_joiners_and_python_clients_get_everything_at_once(
    jp_root_dir, browsers, collab_client, expected
):
    path = big_notebook(jp_root_dir, "progressive-join.ipynb")
    other = big_notebook(jp_root_dir, "progressive-python.ipynb")
    third = big_notebook(jp_root_dir, "progressive-tool.ipynb")
    want, want_other, want_third = [await expected(name) for name in (path, other, third)]
    alice = await browsers(path)
    await alice.apply_next("step2")
    await alice.apply_next("update")
    bob = await browsers(path)
    await bob.apply_next("step2")
    assert bob.document.get() == want
    # A Python client opening a fresh big notebook first gets the whole of it in its sync.
    carol = await collab_client(other)
    assert carol.document.get() == want_other
    # So does a non-browser raw client.
    tool = await browsers(third, user_agent="Python/3 websockets/17")
    await tool.apply_next("step2")
    assert tool.document.get() == want_third


async def test_an_edit_between_the_two_parts_converges(
    jp_root_dir, browsers, collab_client, room_manager, expected
):
    path = big_notebook(jp_root_dir, "progressive-edit.ipynb")
    want = await expected(path)
    alice = await browsers(path)
    await alice.apply_next("step2")
    assert len(alice.document.ycells) == FIRST
    # Alice edits cell 0 before the rest of the notebook reached her.
    edits: list[bytes] = []
    subscription = alice.ydoc.observe(lambda event: edits.append(event.update))
    source = alice.document.ycells[0]["source"]
    source.insert(len(source), "  # alice")
    alice.ydoc.unobserve(subscription)
    for update in edits:
        await alice.ws.send(create_update_message(update))
    await alice.apply_next("update")
    want["cells"][0]["source"] = "x = 0  # alice"
    assert alice.document.get() == want
    room = await room_manager.get_room_for_path(path)
    await eventually(lambda: sources(room.document)[0] == "x = 0  # alice")
    assert room.document.get() == want
    bob = await collab_client(path)
    assert bob.document.get() == want
    # Her edit is saved, the rest of the file as it was.
    await eventually(lambda: not room.unsaved)
    saved = nbformat.read(str(jp_root_dir / path), as_version=4)
    assert [c["source"] for c in saved.cells] == [c["source"] for c in want["cells"]]
    assert [c["id"] for c in saved.cells] == [c["id"] for c in want["cells"]]


def notebook_with_big_outputs(root, name: str) -> str:
    """Five cells (fewer than FIRST): two of them hold more output than the first part may."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    small = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    small.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    stream = nbformat.v4.new_code_cell("for i in range(20000): print(i)", execution_count=2)
    stream.outputs = [
        nbformat.v4.new_output(
            "stream", name="stdout", text="".join(f"{i}\n" for i in range(20000))
        )
    ]
    data = nbformat.v4.new_code_cell("big", execution_count=3)
    data.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/plain": ["line\n"] * 20000, "text/html": "<b>b</b>"}
        )
    ]
    last = nbformat.v4.new_code_cell("2", execution_count=4)
    last.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=4)
    ]
    nb.cells = [small, stream, nbformat.v4.new_markdown_cell("# between"), data, last]
    nbformat.write(nb, str(root / name))
    return name


async def test_big_outputs_follow_the_cells(
    jp_root_dir, browsers, collab_client, room_manager, expected
):
    path = notebook_with_big_outputs(jp_root_dir, "big-outputs.ipynb")
    other = notebook_with_big_outputs(jp_root_dir, "big-outputs-python.ipynb")
    on_disk = (jp_root_dir / path).read_bytes()
    want, want_other = await expected(path), await expected(other)
    alice = await browsers(path)
    await alice.apply_next("step2")
    # Every cell is there at once; the two big outputs are not, the small ones are.
    first = alice.document.get()
    assert [c["id"] for c in first["cells"]] == [c["id"] for c in want["cells"]]
    assert [c["source"] for c in first["cells"]] == [c["source"] for c in want["cells"]]
    assert first["cells"][1]["outputs"] == [] and first["cells"][3]["outputs"] == []
    for index in (0, 2, 4):
        assert first["cells"][index] == want["cells"][index]
    assert first["cells"][1]["execution_count"] == 2
    # The outputs follow as an ordinary update: the file's notebook exactly.
    await alice.apply_next("update")
    got = alice.document.get()
    assert got == want
    assert got["cells"][1]["outputs"][0]["text"].count("\n") == 20000
    # No edit: nothing to save, the file untouched.
    room = await room_manager.get_room_for_path(path)
    assert room.version == 0 and not room.unsaved
    assert room.document.get() == want
    assert (jp_root_dir / path).read_bytes() == on_disk
    # A later joiner and a Python client get the outputs in their first sync.
    bob = await browsers(path)
    await bob.apply_next("step2")
    assert bob.document.get() == want
    carol = await collab_client(other)
    assert carol.document.get() == want_other


def test_output_sizes_are_utf8_bytes_as_the_trait_says():
    """``progressive_sync_output_bytes`` counts bytes: a non-ASCII output weighs what it
    takes on the wire, not its characters."""
    ascii_out = {"output_type": "stream", "name": "stdout", "text": "a" * 100}
    accented = {"output_type": "stream", "name": "stdout", "text": "é" * 100}  # 200 bytes
    data = {"output_type": "display_data", "data": {"text/plain": ["€" * 10, "x"]}}
    names = len("stream") + len("stdout")  # every string counts, the output's names too
    assert progressive.output_size([ascii_out], 10_000) == names + 100
    assert progressive.output_size([accented], 10_000) == names + 200
    assert progressive.output_size([data], 10_000) == len("display_data") + 30 + 1
    # a notebook whose accented output is over the bound in bytes but not in characters
    content = {"cells": [{"cell_type": "code", "source": "", "outputs": [accented]}]}
    first, rest = progressive.split(content, "notebook", 1, output_bytes=names + 150)
    assert first["cells"][0]["outputs"] == [] and rest.outputs == [(0, [accented])]
    first, rest = progressive.split(content, "notebook", 1, output_bytes=names + 250)
    assert first is content and not rest
