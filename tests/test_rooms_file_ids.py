"""The file-id manager rooms select survives being garbage-collected on another thread."""

from __future__ import annotations

import gc
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
