"""The cells of a notebook room by id, as every output transaction needs them."""

from __future__ import annotations

from typing import Any, cast

from pycrdt import Array, Map, Subscription

from .ports import NotebookRoom

CellMap = Map[Any]
CellArray = Array[Any]
#: cell id -> cell Map of a notebook
CellsById = dict[str, CellMap]


def notebook_cells(room: NotebookRoom) -> CellArray:
    """The ``cells`` array of a notebook room's Y document."""
    return cast(CellArray, room.ydoc.get("cells", type=Array))


class CellIndex:
    """One room's cells array and cell id -> cell ``Map``, dropped whenever the cells array
    itself changes (a cell inserted, deleted or moved, observed on the array) or the room
    object changes."""

    def __init__(self) -> None:
        self._cells: CellArray | None = None
        self._index: CellsById | None = None
        self._room: NotebookRoom | None = None
        self._sub: Subscription | None = None

    def array(self, room: NotebookRoom) -> CellArray:
        if self._room is not room or self._cells is None:
            self.by_id(room)
        assert self._cells is not None
        return self._cells

    def by_id(self, room: NotebookRoom) -> CellsById:
        """cell id -> cell ``Map`` of ``room``'s notebook (do not mutate).

        Building it reads every cell's id (a few microseconds per cell), and every output
        transaction needs it: it is kept until the cells array or the room object changes."""
        if self._index is not None and self._room is room:
            return self._index
        if self._room is not room or self._cells is None:
            self.drop()
            ycells = notebook_cells(room)
            self._sub = ycells.observe(self._changed)
            self._cells = ycells
            self._room = room
        self._index = {str(ycell.get("id")): ycell for ycell in self._cells}
        return self._index

    def forget(self, room: NotebookRoom) -> None:
        """``room`` is freed or replaced."""
        if self._room is room:
            self.drop()

    def _changed(self, _event: object) -> None:
        self._index = None

    def drop(self) -> None:
        if self._sub is not None and self._cells is not None:
            try:
                self._cells.unobserve(self._sub)
            except Exception:  # the room's document is gone
                pass
        self._index = self._room = self._cells = self._sub = None
