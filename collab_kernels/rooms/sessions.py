"""Session ids: which Y history a reconnecting client may merge into which room.

The session endpoint hands out a fresh ``sessionId`` per client; it is bound to the Y lineage
of the first room it syncs with. A lineage is one Y history of a document: a room built from
the file starts a new one; a room restored from the update store continues the one it was
stored with (another process, or the same room freed and reopened). A client whose history
belongs to the room's lineage merges into it safely (its offline edits included); merging a
history of another lineage would duplicate every cell, so such a client is closed with 1003
and a reason (``version_mismatch``), and so is a session id the server never handed out
(``unknown_session``), and the browser reloads instead.

With the update store on, session ids and their bindings are kept beside the documents'
histories (``store.py``), so a browser reconnecting after a server restart keeps its session.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .store import SQLiteUpdateStore


@dataclass
class SessionRecord:
    """A ``sessionId`` handed out by the session endpoint, bound to a lineage on use."""

    file_id: str
    lineage: str | None = None


class Sessions:
    """The session ids handed out (oldest forgotten first), in memory and, when the update
    store is on, in the store."""

    def __init__(
        self,
        store: Callable[[], SQLiteUpdateStore | None] = lambda: None,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        self._records: collections.OrderedDict[str, SessionRecord] = collections.OrderedDict()
        self._store = store
        self.log = log or logging.getLogger(__name__)

    def __len__(self) -> int:
        return len(self._records)

    def _persisted(self) -> SQLiteUpdateStore | None:
        store = self._store()
        return None if store is None or store.closed else store

    def new(self, file_id: str, *, limit: int) -> str:
        session_id = uuid.uuid4().hex
        self._records[session_id] = SessionRecord(file_id)
        while len(self._records) > max(limit, 1):
            self._records.popitem(last=False)
        store = self._persisted()
        if store is not None:
            try:
                store.add_session(session_id, file_id, limit=limit)
            except Exception as e:  # the session still works until this process stops
                self.log.error("collab_kernels: could not store a session id: %s", e)
        return session_id

    def _record(self, session_id: str | None) -> SessionRecord | None:
        if not session_id:
            return None
        record = self._records.get(session_id)
        if record is not None:
            return record
        store = self._persisted()
        if store is None:
            return None
        try:
            stored = store.session(session_id)
        except Exception as e:
            self.log.error("collab_kernels: could not read a session id from the store: %s", e)
            return None
        if stored is None:
            return None
        record = SessionRecord(*stored)
        self._records[session_id] = record  # a session of a previous server process
        return record

    def known(self, session_id: str | None, file_id: str) -> bool:
        record = self._record(session_id)
        return record is not None and record.file_id == file_id

    def check(self, session_id: str | None, file_id: str, lineage: str) -> str | None:
        """None when the client may sync with a room of that lineage, else the 1003 reason:
        ``unknown_session`` or ``version_mismatch``."""
        record = self._record(session_id)
        if session_id is None or record is None or record.file_id != file_id:
            return "unknown_session"
        if record.lineage is None:
            record.lineage = lineage
            store = self._persisted()
            if store is not None:
                try:
                    store.bind_session(session_id, lineage)
                except Exception as e:
                    self.log.error("collab_kernels: could not store a session binding: %s", e)
        elif record.lineage != lineage:
            return "version_mismatch"
        self._records.move_to_end(session_id)
        return None
