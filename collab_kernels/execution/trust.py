"""Outputs of server-side runs shown trusted for everyone, at the cost of a re-created cell
only when an output needs it.

A frontend decides whether a cell's outputs are trusted when it creates the cell's model
(from ``metadata.trusted``), and never again for a change that comes from elsewhere. A cell
of an untrusted notebook (one from git, a download) that the server runs is marked trusted
in its start transaction, as JupyterLab marks a cell its user runs (the contents manager
signs the notebook on save when every code cell is trusted); but the frontends that already
have its model keep rendering it untrusted. For most outputs that changes nothing: JupyterLab
renders text, streams, errors, raster images and LaTeX the same trusted or not (its
rendermime factories of those types are "safe" and ignore trust), and sanitizes or refuses
the rest (HTML, Markdown, SVG, JavaScript, widgets...). So the cell is re-created (a trusted
copy in its place, a new model in every frontend) only when such an output arrives for it,
before that output is written: a cell that prints pays nothing, where re-creating every
cell at its first run cost its runner ~70 ms in the browser.

The copy is inserted *after* the original, with its outputs so far, and the original deleted
in a second update sent on its own, because JupyterLab keeps its active cell by looking the
cell's id up in the final document after each change of one Y event: with the delete and the
insert in one update it looks up a state its cell widgets are not in yet, and Shift+Enter,
which already moved to the next cell, ends one cell further.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycrdt import Array, Map, Text

from .cell_index import CellArray, CellsById
from .outputs import DisplayIndex, display_id_of

#: MIME types JupyterLab renders the same in an untrusted output (text, images, LaTeX)
SAFE_MIME_TYPES = frozenset(
    {
        "text/plain",
        "text/latex",
        "application/vnd.jupyter.stdout",
        "application/vnd.jupyter.stderr",
        "image/bmp",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
)
RICH_OUTPUTS = frozenset({"display_data", "execute_result", "update_display_data"})


def needs_trust(msg_type: str, content: dict[str, Any]) -> bool:
    """Whether an iopub message's output renders differently untrusted."""
    if msg_type not in RICH_OUTPUTS:
        return False
    data = content.get("data")
    return isinstance(data, dict) and any(key not in SAFE_MIME_TYPES for key in data)


def is_trusted(ycell: Map[Any]) -> bool:
    metadata = ycell.get("metadata")
    return isinstance(metadata, Map) and metadata.get("trusted") is True


def mark_trusted(ycell: Map[Any]) -> None:
    """``metadata.trusted = true``, as JupyterLab writes it into a cell its user runs."""
    metadata = ycell.get("metadata")
    if not isinstance(metadata, Map):
        ycell["metadata"] = Map({"trusted": True})
    elif metadata.get("trusted") is not True:
        metadata["trusted"] = True


def _copy(value: Any) -> Any:
    if isinstance(value, Text):
        return Text(str(value))
    if isinstance(value, Array):
        return Array([_copy(item) for item in value])
    if isinstance(value, Map):
        return Map({key: _copy(item) for key, item in value.items()})
    return value


def trusted_copy_after(ycells: Array[Any], ycell: Map[Any]) -> int:
    """Insert a trusted copy of ``ycell`` (same id, source, metadata, outputs, count and
    state) right after it and return the original's index: the caller deletes the original
    in a later transaction (:func:`drop_original`)."""
    cell_id = ycell.get("id")
    index = next(i for i, c in enumerate(ycells) if isinstance(c, Map) and c.get("id") == cell_id)
    copy = Map({key: _copy(value) for key, value in ycell.items()})
    ycells.insert(index + 1, copy)
    mark_trusted(ycells[index + 1])
    return index


def drop_original(ycells: CellArray, cell_id: str) -> None:
    """Delete the original of a cell :func:`trusted_copy_after` copied (the first of two
    neighbours with that id)."""
    previous: str | None = None
    for index, ycell in enumerate(ycells):
        current = ycell.get("id") if isinstance(ycell, Map) else None
        if current == cell_id and previous == cell_id:
            del ycells[index - 1]
            return
        previous = current


class CellTrust:
    """One document's cells that the server marked trusted although frontends may have
    created their models untrusted (cell ids)."""

    def __init__(self) -> None:
        self.models_untrusted: set[str] = set()

    def started(self, ycell: Map[Any]) -> None:
        """A server-side run of ``ycell`` starts (inside its transaction)."""
        if not is_trusted(ycell):
            self.models_untrusted.add(str(ycell.get("id")))
            mark_trusted(ycell)

    def to_recreate(
        self,
        pending: Iterable[tuple[str, str, dict[str, Any]]],
        cells: CellsById,
        displays: DisplayIndex,
    ) -> list[str]:
        """The cells a buffered output that needs trust goes to, whose frontends' models
        may be untrusted: each is re-created before the output is written."""
        found: list[str] = []
        for cell_id, msg_type, content in pending:
            if not needs_trust(msg_type, content):
                continue
            targets = [cell_id]
            if msg_type == "update_display_data":
                targets = [cid for cid, _ in displays.get(display_id_of(content) or "")]
            for cid in targets:
                if cid in self.models_untrusted and cid in cells and cid not in found:
                    found.append(cid)
        return found

    def recreated(self, cell_id: str) -> None:
        self.models_untrusted.discard(cell_id)
