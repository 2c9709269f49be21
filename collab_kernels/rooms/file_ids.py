"""The file-id manager rooms use to follow files moved outside Jupyter.

jupyter_server_fileid's ``LocalFileIdManager`` finds a moved file by inode (so a room follows
``mv`` or ``git mv`` of its notebook). Its ``__del__`` commits on the connection it opened, on
whatever thread the garbage collector runs: from any other thread (ours save and store
workers, anyio's) sqlite3 raises ``ProgrammingError``, which Python reports as an unraisable
exception and pytest turns into an error of an unrelated test. The library's own
``ArbitraryFileIdManager`` already ignores exactly that case; this subclass does the same and
nothing else.
"""

from __future__ import annotations

import sqlite3

from jupyter_server_fileid.manager import LocalFileIdManager


class FollowingFileIdManager(LocalFileIdManager):
    """``LocalFileIdManager`` whose clean-up tolerates running on another thread."""

    def __del__(self) -> None:
        try:
            super().__del__()
        except sqlite3.ProgrammingError:
            # Collected on a thread other than the one that opened the connection: nothing
            # to commit from here (every write of the manager commits as it is made).
            pass
