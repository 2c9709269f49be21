"""``kill -9`` of a real server during a headless run, then a restart on the same root.

Without the update store the file (and the document rebuilt from it) holds everything up to
the last save; with it, everything a collaborator had received is restored and saved.
"""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from fixtures_execution import cell_py, stream_text
from fixtures_rooms import eventually

from collab_kernels.client.connection import RoomConnection, connect_room

CELL = (
    "import time\nfor i in range(6000):\n    print(f'line {i}', flush=True)\n    time.sleep(0.01)\n"
)
SAVES = ["--RoomManager.save_delay=0.5", "--RoomManager.save_max_delay=3"]


def numbered(n: int) -> str:
    return "".join(f"line {i}\n" for i in range(n))


def lines_of(text: str) -> int:
    """How many lines ``text`` holds, checking they are exactly line 0..n-1, once each."""
    n = text.count("\n")
    assert text == numbered(n), text[-200:]
    return n


def file_output(path) -> str:
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):  # caught mid-write
        return ""
    return "".join(
        "".join(o["text"])
        for o in nb["cells"][0].get("outputs", [])
        if o.get("output_type") == "stream"
    )


def file_sources(path) -> list[str]:
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):  # caught mid-write
        return []
    return ["".join(c["source"]) for c in nb["cells"]]


@pytest.mark.parametrize("store", ["none", "sqlite"])
async def test_kill9_during_a_headless_run(server_process, tmp_path, store):
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    nbformat.write(nb, str(root / "run.ipynb"))
    cell_id = nb.cells[0]["id"]
    config = [*SAVES, f"--RoomManager.update_store={store}"]

    server = await server_process(root=root, config=config).start()
    kernel_id, _session_id, document_id = await server.open_notebook("run.ipynb")
    watcher = await connect_room(server.base_url, "run.ipynb", token=server.token)
    try:
        r = await server.api(
            "POST",
            f"api/kernels/{kernel_id}/execute",
            json={"cell_id": cell_id, "document_id": document_id},
        )
        assert r.status_code == 202, r.text

        def received() -> str:
            return stream_text(cell_py(watcher.document, cell_id))

        # some lines saved, and the watcher already has more than the file
        def ahead(doc) -> bool:
            saved = file_output(root / "run.ipynb").count("\n")
            return saved >= 20 and received().count("\n") >= saved + 20

        await watcher.wait_for(ahead, timeout=60)
        saved_before = lines_of(file_output(root / "run.ipynb"))
        got = lines_of(received())
        server.kill9()
    finally:
        await watcher.close()

    # the file is valid nbformat and holds at least what was saved before the kill
    on_disk = nbformat.read(str(root / "run.ipynb"), as_version=4)
    nbformat.validate(on_disk)
    saved = lines_of(file_output(root / "run.ipynb"))
    assert saved >= saved_before

    server2 = await server_process(root=root, config=config).start()
    try:
        alice = await connect_room(server2.base_url, "run.ipynb", token=server2.token)
        try:
            restored = lines_of(stream_text(cell_py(alice.document, cell_id)))
            assert len(alice.document.ycells) == 1  # never a duplicated cell
            assert cell_py(alice.document, cell_id).get("execution_state") in (None, "idle")
            if store == "none":
                assert restored == saved  # the document is the file: up to the last save
            else:
                assert restored >= got  # everything the watcher had received
                # and the file gets it too
                await eventually(
                    lambda: file_output(root / "run.ipynb").count("\n") >= got, timeout=30
                )
                lines_of(file_output(root / "run.ipynb"))
                nbformat.validate(nbformat.read(str(root / "run.ipynb"), as_version=4))
                # the watcher's browser reconnects with its session and the history it kept,
                # with a cell it added while the server was gone: no reload, no duplicate
                watcher.document.append_cell(
                    {"cell_type": "markdown", "source": "typed while down", "metadata": {}}
                )
                again = RoomConnection(
                    server2.base_url,
                    watcher.room_id,
                    watcher.session_id,
                    token=server2.token,
                    ydoc=watcher.ydoc,
                )
                await again.connect()
                try:
                    await asyncio.wait_for(asyncio.shield(again.synced), 30)
                    await alice.wait_for(lambda doc: len(doc.ycells) == 2)
                    assert str(alice.document.ycells[1]["source"]) == "typed while down"
                    assert lines_of(stream_text(cell_py(again.document, cell_id))) >= got
                    await eventually(
                        lambda: file_sources(root / "run.ipynb")[1:] == ["typed while down"]
                    )
                finally:
                    await again.close()
        finally:
            await alice.close()
    finally:
        server2.stop()
