"""What the file held at the room's last save or load, as ``document.get()`` returns it.

The unsaved-edit checks compare the document with it. After a load it is kept as the Y
updates the load built (``saved_content_from``) and computed on first use, or by
:meth:`SavedContent.materialize` a moment later with the loop given back after each update
and each cell: a notebook just loaded reaches its first collaborator without a second walk
over every cell (``document.get()`` of 1000 cells takes as long as building them), and one
``apply_update`` of a 65 MB state held the loop for 200 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from jupyter_ydoc import YNotebook, YUnicode

from .content import new_document


def _applied(scratch: YNotebook | YUnicode, updates: Sequence[bytes]) -> Iterator[None]:
    """Apply ``updates`` to ``scratch`` in order, pausing after each one."""
    for update in updates:
        scratch.ydoc.apply_update(update)
        yield


class SavedContent:
    """The content of one room's file at its last save or load."""

    def __init__(self, file_type: str):
        self.file_type = file_type
        self._content: Any = None
        self._pending: Sequence[bytes] | None = None

    def get(self) -> Any:
        """The content (computed now, in one go, when it is still pending)."""
        pending = self._pending
        if pending is not None:
            scratch = new_document(self.file_type)
            for _ in _applied(scratch, pending):
                pass
            self.set(scratch.get())
        return self._content

    def set(self, content: Any) -> None:
        self._pending = None
        self._content = content

    def set_updates(self, updates: Sequence[bytes]) -> None:
        """The content is the document of these Y updates (applied in order)."""
        self._pending = updates
        self._content = None

    async def materialize(self) -> None:
        """Compute a pending content now, giving the loop back after each update and cell."""
        pending = self._pending
        if pending is None:
            return
        scratch = new_document(self.file_type)
        for _ in _applied(scratch, pending):
            await asyncio.sleep(0)
        if self._pending is not pending:
            return  # computed (or replaced) meanwhile
        content = await scratch.aget() if isinstance(scratch, YNotebook) else scratch.get()
        if self._pending is pending:
            self.set(content)


__all__ = ["SavedContent"]
