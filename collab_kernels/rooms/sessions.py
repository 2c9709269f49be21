"""Session ids: which Y history a reconnecting client may merge into which room instance.

The session endpoint hands out a fresh ``sessionId`` per client; it is bound to the first room
instance it syncs with. Its Y history then only matches that instance: after a server restart
(unknown session) or when the room was freed and rebuilt from the file (another instance),
merging that history would duplicate every cell, so the client is closed with 1003 and a
reason, and reloads instead.
"""

from __future__ import annotations

import collections
import uuid
from dataclasses import dataclass


@dataclass
class SessionRecord:
    """A ``sessionId`` handed out by the session endpoint, bound to a room instance on use."""

    file_id: str
    room_instance: str | None = None


class Sessions:
    """The session ids of this server process (oldest forgotten first)."""

    def __init__(self) -> None:
        self._records: collections.OrderedDict[str, SessionRecord] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def new(self, file_id: str, *, limit: int) -> str:
        session_id = uuid.uuid4().hex
        self._records[session_id] = SessionRecord(file_id)
        while len(self._records) > max(limit, 1):
            self._records.popitem(last=False)
        return session_id

    def known(self, session_id: str | None, file_id: str) -> bool:
        record = self._records.get(session_id or "")
        return record is not None and record.file_id == file_id

    def check(self, session_id: str | None, file_id: str, instance_id: str) -> str | None:
        """None when the client may sync with that room instance, else the 1003 reason:
        ``unknown_session`` or ``version_mismatch``."""
        record = self._records.get(session_id or "")
        if record is None or record.file_id != file_id:
            return "unknown_session"
        if record.room_instance is None:
            record.room_instance = instance_id
        elif record.room_instance != instance_id:
            return "version_mismatch"
        self._records.move_to_end(session_id or "")
        return None
