"""The rooms' update store and session ids (a base class of :class:`~.manager.RoomManager`).

The settings of the update store (``store.py``) and of the session ids handed out to
browsers (``sessions.py``); the store is opened on first use, and one that fails to open is
not tried again by this process.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from traitlets import Enum, Float, Int, Unicode
from traitlets.config import LoggingConfigurable

from .document import DocumentRoom
from .sessions import Sessions
from .store import SQLiteUpdateStore
from .store_lock import StoreInUse


class RoomPersistence(LoggingConfigurable):
    """The room manager's update store and sessions (its traits are RoomManager's)."""

    max_sessions = Int(
        100_000,
        config=True,
        help="Session ids remembered by this server process (oldest are forgotten first).",
    )

    update_store = Enum(
        ["none", "sqlite"],
        default_value="sqlite",
        config=True,
        help=(
            "Keep every document update in a store before collaborators see it: 'sqlite' "
            "(the default) keeps them in one SQLite database (update_store_path), with the "
            "session ids handed out to browsers. A server that crashes between two saves then "
            "loses nothing a client received, and a browser that reconnects after a server "
            "restart (or after its room was freed) continues with its session and its edits "
            "made meanwhile, without reloading. 'none' relies on the debounced saves alone: "
            "after a restart every browser is asked to reload (close code 1003) and what it "
            "typed while the server was away is dropped. The store is compacted to one "
            "squashed update per document after each save and bounded by "
            "update_store_max_bytes."
        ),
    )
    update_store_path = Unicode(
        "",
        config=True,
        help=(
            "File of the SQLite update store; empty means collab_kernels/updates.sqlite in the "
            "server's data directory (ServerApp.data_dir, by default the Jupyter data "
            "directory)."
        ),
    )
    update_store_compact_every = Int(
        1000,
        config=True,
        help=(
            "Also compact a document's stored history into one update after this many "
            "appended updates (a cell streaming output between saves, or a document in "
            "conflict that cannot be saved)."
        ),
    )
    update_store_max_bytes = Int(
        1024 * 1024 * 1024,
        config=True,
        help=(
            "Largest size in bytes of the update store: its database and the state files "
            "beside it (big squashed states). Beyond it, the stored "
            "histories of the least recently written documents that are saved and not open "
            "are forgotten (reopened, they are built from their file; a browser still holding "
            "such a history is asked to reload). Histories with unsaved edits are never "
            "forgotten. 0 = no bound."
        ),
    )
    stale_session_close_delay = Float(
        1.0,
        config=True,
        help=(
            "Seconds a room websocket whose session cannot continue (unknown session id, or a "
            "Y history of another version of the document) is kept open before it is closed "
            "with 1003: while the frontend's reload dialog is open it reconnects at once after "
            "every close, so without a delay a few browsers keep the server busy answering "
            "(about ten attempts a second each)."
        ),
    )
    data_dir = Unicode("", help="The server's data directory (ServerApp.data_dir).")

    #: the live rooms, by room id (the manager's)
    rooms: dict[str, DocumentRoom]

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._store: SQLiteUpdateStore | None = None
        self._store_error = False
        self.sessions = Sessions(lambda: self.store, log=self.log)

    # --- update store ------------------------------------------------------------------------
    @property
    def store(self) -> SQLiteUpdateStore | None:
        """The update store, opened on first use, or None when it is off."""
        if self.update_store == "none":
            return None
        if (self._store is None or self._store.closed) and not self._store_error:
            self._store = open_store(
                self.update_store_path,
                log=self.log,
                data_dir=self.data_dir,
                max_bytes=self.update_store_max_bytes,
            )
            self._store_error = self._store is None
            if self._store is not None:
                self._store.live_rooms = self.rooms.keys
        return self._store

    # --- sessions --------------------------------------------------------------------------
    def new_session(self, file_id: str) -> str:
        """A fresh ``sessionId`` for a client about to open the room of ``file_id``."""
        return self.sessions.new(file_id, limit=self.max_sessions)

    def session_known(self, session_id: str | None, file_id: str) -> bool:
        """Whether the session endpoint handed out ``session_id`` for this file."""
        return self.sessions.known(session_id, file_id)

    def check_session(self, session_id: str | None, room: DocumentRoom) -> str | None:
        """None when the client may sync with ``room``, else the 1003 reason (sessions.py)."""
        return self.sessions.check(session_id, room.file_id, room.lineage)


def open_store(
    path: str, *, log: logging.Logger, data_dir: str = "", max_bytes: int = 0
) -> SQLiteUpdateStore | None:
    """Open the update store at ``path`` (empty: ``collab_kernels/updates.sqlite`` in
    ``data_dir``, by default the Jupyter data directory), or None with an error logged when it
    cannot be opened: documents still open and save, they are only as safe as their last
    save."""
    if not path:
        if not data_dir:
            from jupyter_core.paths import jupyter_data_dir

            data_dir = jupyter_data_dir()
        path = os.path.join(data_dir, "collab_kernels", "updates.sqlite")
    try:
        store = SQLiteUpdateStore(path, log=log, max_bytes=max_bytes)
    except StoreInUse as e:
        log.warning(
            "collab_kernels: the update store %s is in use by another server (%s): this "
            "server keeps no store, so its documents are only as safe as their last save; "
            "give each server its own c.RoomManager.update_store_path",
            path,
            e.holder,
        )
        return None
    except Exception as e:
        log.error(
            "collab_kernels: cannot open the update store %s (%s); documents are only as safe "
            "as their last save",
            path,
            e,
        )
        return None
    log.info("collab_kernels: document updates are kept in %s", path)
    return store
