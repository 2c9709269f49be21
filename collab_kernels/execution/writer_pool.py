"""One :class:`~.writer.DocumentWriter` per document, created on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable

from .ports import Log, NotebookRoom, RoomSource
from .writer import DocumentWriter


class WriterPool:
    """One :class:`DocumentWriter` per document, created on first use."""

    def __init__(
        self,
        rooms: RoomSource,
        batch_interval: Callable[[], float],
        log: Log,
        trust: Callable[[], bool] = lambda: True,
        time_share: Callable[[], float] = lambda: 0.0,
        limited_interval: Callable[[], float] = lambda: 0.0,
    ):
        self.rooms = rooms
        #: a new document's writer, with the settings every writer shares
        self._new_writer = functools.partial(
            DocumentWriter,
            rooms=rooms,
            batch_interval=batch_interval,
            log=log,
            trust=trust,
            time_share=time_share,
            limited_interval=limited_interval,
        )
        self._writers: dict[str, DocumentWriter] = {}

    def get(self, document_id: str) -> DocumentWriter:
        writer = self._writers.get(document_id)
        if writer is None:
            writer = self._writers[document_id] = self._new_writer(document_id)
        return writer

    def find(self, document_id: str) -> DocumentWriter | None:
        return self._writers.get(document_id)

    def forget_room(self, room: NotebookRoom) -> None:
        """``room`` was freed or replaced: its writer lets go of it."""
        writer = self._writers.get(room.room_id)
        if writer is not None:
            writer.forget_room(room)

    def room_created(self, room: NotebookRoom) -> None:
        """A new room object holds the document: the writer drops the old one."""
        writer = self._writers.get(room.room_id)
        if writer is not None:
            writer.forget_room(writer.room)


__all__ = ["WriterPool"]
