"""Holds: what keeps a document room alive (running or queued cells hold their room)."""

from __future__ import annotations

from typing import Protocol


class HeldRoom(Protocol):
    @property
    def path(self) -> str: ...

    def release(self, hold: RoomHold) -> None: ...


class RoomHold:
    """Keeps a room alive until released (also a context manager)."""

    def __init__(self, room: HeldRoom, reason: str):
        self.room = room
        self.reason = reason
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.room.release(self)

    def __enter__(self) -> RoomHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<RoomHold {self.reason!r} on {self.room.path}>"


__all__ = ["RoomHold"]
