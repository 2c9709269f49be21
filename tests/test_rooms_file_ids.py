"""The file-id manager rooms select: chosen for a new database, an older arbitrary-id
database kept, and it survives being garbage-collected on another thread."""

from __future__ import annotations

import gc
import logging
import sys
import threading

from collab_kernels.rooms.file_ids import FollowingFileIdManager


def test_collected_on_another_thread_reports_nothing(tmp_path, monkeypatch):
    """jupyter_server_fileid's LocalFileIdManager commits in ``__del__`` on whatever thread
    collects it; from a worker thread sqlite3 refuses, and pytest turns the unraisable
    exception into an error of whichever test runs then (seen in jupyter_server's own suite
    with collab_kernels in force)."""
    reported: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    manager = FollowingFileIdManager(root_dir=str(tmp_path), db_path=str(tmp_path / "ids.db"))
    (tmp_path / "a.ipynb").write_text("{}")
    file_id = manager.index("a.ipynb")
    holder = [manager]
    del manager

    def collect() -> None:
        holder.clear()
        gc.collect()

    worker = threading.Thread(target=collect)
    worker.start()
    worker.join()
    assert reported == []
    # what it indexed was committed as it was made
    again = FollowingFileIdManager(root_dir=str(tmp_path), db_path=str(tmp_path / "ids.db"))
    assert again.get_id("a.ipynb") == file_id
    again.con.close()


class _FakeServerApp:
    """What prefer_local_file_ids reads of a ServerApp."""

    def __init__(self, db_path):
        from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
        from traitlets.config import Config

        self.config = Config({"BaseFileIdManager": {"db_path": str(db_path)}})
        self.contents_manager_class = AsyncLargeFileManager
        self.log = logging.getLogger("test")


def test_local_file_ids_are_preferred_for_a_new_database(tmp_path):
    from jupyter_server_fileid.manager import LocalFileIdManager

    from collab_kernels.rooms.content import prefer_local_file_ids
    from collab_kernels.rooms.file_ids import FollowingFileIdManager

    app = _FakeServerApp(tmp_path / "file_id_manager.db")
    assert prefer_local_file_ids(app)
    chosen = app.config.FileIdExtension.file_id_manager_class
    assert chosen is FollowingFileIdManager and issubclass(chosen, LocalFileIdManager)


def test_an_existing_arbitrary_file_id_database_is_kept(tmp_path):
    """A database made by the default ArbitraryFileIdManager (older installs) has no crtime
    column: LocalFileIdManager would fail on it and every collaboration session with it."""
    from jupyter_server_fileid.manager import ArbitraryFileIdManager, LocalFileIdManager

    from collab_kernels.rooms.content import prefer_local_file_ids

    db = tmp_path / "file_id_manager.db"
    old = ArbitraryFileIdManager(root_dir=str(tmp_path), db_path=str(db))
    old.index("x.ipynb")
    old.con.close()
    app = _FakeServerApp(db)
    assert not prefer_local_file_ids(app)
    assert "file_id_manager_class" not in app.config.get("FileIdExtension", {})
    # a database LocalFileIdManager made itself is used again
    db2 = tmp_path / "local.db"
    LocalFileIdManager(root_dir=str(tmp_path), db_path=str(db2)).con.close()
    assert prefer_local_file_ids(_FakeServerApp(db2))
