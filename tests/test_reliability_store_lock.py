"""One server process per update store (``rooms/store_lock.py``).

Two servers of one data directory (two ``jupyter lab`` in two projects, a server and the
short-lived one of ``collab-kernels run``) must not share the store: the second one would
remove the first one's state files that are written but not yet named, forget its live
rooms' histories to keep under the size bound, and fight it for SQLite's single writer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat

from collab_kernels.client.connection import connect_room
from collab_kernels.rooms.persistence import open_store
from collab_kernels.rooms.state_files import SUFFIX
from collab_kernels.rooms.store import SQLiteUpdateStore
from collab_kernels.rooms.store_lock import StoreInUse

OPEN_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import sys, time
    from collab_kernels.rooms.store import SQLiteUpdateStore
    from collab_kernels.rooms.store_lock import StoreInUse
    try:
        store = SQLiteUpdateStore(sys.argv[1])
    except StoreInUse as e:
        print("in use:", e.holder, flush=True)
        sys.exit(0)
    print("opened", flush=True)
    if len(sys.argv) > 2:  # hold it until killed
        time.sleep(600)
    store.close()
    """
)


def open_elsewhere(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def saved_source(root: Path) -> str:
    try:
        return str(nbformat.read(str(root / "nb.ipynb"), as_version=4).cells[0].source)
    except Exception:  # caught mid-write
        return ""


def test_a_second_process_neither_opens_a_store_in_use_nor_sweeps_its_files(tmp_path):
    path = tmp_path / "updates.sqlite"
    store = SQLiteUpdateStore(str(path))
    # what the store's worker leaves between its write and the transaction naming the file
    writing = Path(store.files.path("0123" + SUFFIX + ".tmp"))
    renamed = Path(store.files.path("4567" + SUFFIX))
    writing.write_bytes(b"state being written")
    renamed.write_bytes(b"state about to be named")
    try:
        assert open_elsewhere(path) == f"in use: pid {os.getpid()}"
        assert writing.exists() and renamed.exists()
        # the same process cannot open it twice either
        try:
            SQLiteUpdateStore(str(path))
        except StoreInUse as e:
            assert e.holder == f"pid {os.getpid()}"
        else:
            raise AssertionError("a second store opened on a store in use")
    finally:
        store.close()
    # closed, the next opener has it (and sweeps what no row names, as after a crash)
    assert open_elsewhere(path) == "opened"
    assert not writing.exists() and not renamed.exists()


def test_open_store_warns_and_gives_no_store_while_another_holds_it(tmp_path, caplog):
    import logging

    path = tmp_path / "updates.sqlite"
    log = logging.getLogger("test_store_lock")
    first = open_store(str(path), log=log)
    assert first is not None
    with caplog.at_level(logging.WARNING, logger="test_store_lock"):
        assert open_store(str(path), log=log) is None
    message = caplog.records[-1].getMessage()
    assert str(path) in message and f"pid {os.getpid()}" in message
    assert "update_store_path" in message
    first.close()
    again = open_store(str(path), log=log)
    assert again is not None
    again.close()


async def test_the_lock_goes_with_a_process_killed_with_sigkill(tmp_path):
    path = tmp_path / "updates.sqlite"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OPEN_IN_ANOTHER_PROCESS,
        str(path),
        "hold",
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 60)).strip() == b"opened"
    try:
        SQLiteUpdateStore(str(path))
    except StoreInUse as e:
        assert e.holder == f"pid {holder.pid}"
    else:
        raise AssertionError("opened a store another process holds")
    holder.send_signal(signal.SIGKILL)
    await holder.wait()
    store = SQLiteUpdateStore(str(path))  # nothing stale to clean up
    store.close()


async def test_two_servers_of_one_data_directory(server_process, tmp_path):
    """The second server says who holds the store and serves its documents without one."""
    home = tmp_path / "home"
    roots = [tmp_path / "project-a", tmp_path / "project-b"]
    for root in roots:
        root.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
        nbformat.write(nb, str(root / "nb.ipynb"))
    first, second = (server_process(root=root, home=home) for root in roots)
    for name, server in (("first", first), ("second", second)):
        server.log_path = tmp_path / f"{name}.log"
        await server.start()
    rooms = []
    try:
        for server, room_root in ((first, roots[0]), (second, roots[1])):
            room = await connect_room(server.base_url, "nb.ipynb", token=server.token)
            rooms.append(room)
            # (and the client's save request never overtakes the edit queued before it)
            for i in range(3):
                source = room.document.ycells[0]["source"]
                source.insert(len(source), f" {i}")
                assert await room.save() == "success"
                assert saved_source(room_root) == "x = 1" + "".join(f" {j}" for j in range(i + 1))
    finally:
        for room in rooms:
            await room.close()
    assert first.proc is not None
    log = second.log_path.read_text()
    assert f"in use by another server (pid {first.proc.pid})" in log, log[-2000:]
    assert "in use" not in first.log_path.read_text()
