"""The cells of an execute request, checked against its document.

Before a request on a document is queued, the document must be a notebook whose session
(if any) uses the request's kernel (:func:`check_session`), and every cell it names must
be a code cell of that notebook whose source still matches the ``source_hash`` the client
sent, if any (:func:`document_runs`). Errors are ``HTTPError`` 400/404/409 with a message.
"""

from __future__ import annotations

from collections.abc import Callable

from tornado.web import HTTPError

from ..contract import source_hash
from .body import CellSpec, ExecuteSpec
from .cell_index import CellsById
from .ports import NotebookRoom
from .requests import CellRun
from .results import OutputCollector
from .sessions import SessionIndex


async def check_session(room: NotebookRoom, kernel_id: str, sessions: SessionIndex) -> None:
    """The document must be a notebook whose session (if any) uses ``kernel_id``."""
    if room.file_type != "notebook":
        raise HTTPError(400, f"Document {room.path} is not a notebook")
    # The index follows session changes as they happen; re-read it only for a path it
    # does not know (a session created behind the SessionManager's back).
    session_kernel = sessions.kernel_for_path(room.path)
    if session_kernel is None:
        await sessions.refresh()
        session_kernel = sessions.kernel_for_path(room.path)
    if session_kernel is not None and session_kernel != kernel_id:
        raise HTTPError(
            400,
            f"Document {room.path} belongs to kernel {session_kernel}, not {kernel_id} "
            "(its session points to another kernel)",
        )


def document_runs(
    spec: ExecuteSpec,
    room: NotebookRoom,
    cells_by_id: CellsById,
    collector: Callable[[], OutputCollector],
) -> list[CellRun]:
    """The cells of ``spec`` in ``room``'s notebook (404/400/409 for bad ones).

    ``collector`` makes the output collector of a cell run in the nbmodel dialect (code
    sent with the request), whose client reads the outputs from the request status."""
    runs: list[CellRun] = []
    with room.ydoc.transaction():  # one for all reads (each read would make its own)
        for cell_spec in spec.cells:
            runs.append(_cell_run(spec, cell_spec, room, cells_by_id, collector))
    return runs


def _cell_run(
    spec: ExecuteSpec,
    cell_spec: CellSpec,
    room: NotebookRoom,
    cells_by_id: CellsById,
    collector: Callable[[], OutputCollector],
) -> CellRun:
    cell_id = cell_spec.cell_id
    ycell = cells_by_id.get(cell_id)
    if ycell is None:
        raise HTTPError(404, f"No cell {cell_id} in {room.path}")
    cell_type = ycell.get("cell_type")
    if cell_type != "code":
        raise HTTPError(400, f"Cell {cell_id} of {room.path} is a {cell_type} cell")
    source = str(ycell.get("source") or "")
    expected = cell_spec.source_hash
    if expected is not None and expected != source_hash(source):
        raise HTTPError(
            409,
            f"Cell {cell_id} of {room.path} changed: its source no longer matches "
            f"source_hash {expected}",
        )
    if spec.code is not None:
        return CellRun(cell_id, spec.code, outputs=collector())
    return CellRun(cell_id, source)
