"""Three-way merge of notebooks by cell id (an out-of-band change while the room has edits).

``base`` is the content the room last saved or loaded, ``room`` the document now, ``disk`` the
file's new content (git checkout, another editor), all as ``YNotebook.get()`` returns them.
Per cell id and per field (source, metadata, outputs, ...): a field changed on one side only
takes that side; a field changed on both sides differently is a *conflict* and keeps the
room's value (the caller keeps the disk's version as a checkpoint). Cells inserted on either
side are kept; a cell deleted on one side is deleted unless the other side changed it. The
order is the side that reordered cells (the room's if both did), with the other side's new
cells placed after their predecessor.

Pure (plain dicts), unit tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: cell fields merged one by one (anything else is merged with them as "other")
CELL_FIELDS = ("cell_type", "source", "metadata", "outputs", "execution_count", "attachments")


@dataclass
class MergeResult:
    content: dict[str, Any]
    #: ids of cells changed on both sides (the room's version was kept); "metadata" for the
    #: notebook's own metadata
    conflicts: list[str] = field(default_factory=list)
    #: whether the result differs from the room's document (something came from the disk)
    from_disk: bool = False


def _by_id(content: dict[str, Any] | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    order: list[str] = []
    cells: dict[str, dict[str, Any]] = {}
    for cell in (content or {}).get("cells", []):
        cell_id = cell.get("id")
        if isinstance(cell_id, str) and cell_id not in cells:
            order.append(cell_id)
            cells[cell_id] = cell
    return order, cells


def _merge_fields(
    base: dict[str, Any] | None, room: dict[str, Any], disk: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Merge two versions of one dict key by key; (result, whether a key conflicted)."""
    base = base or {}
    merged: dict[str, Any] = {}
    conflict = False
    missing = object()
    for key in list(dict.fromkeys([*room, *disk])):
        b, r, d = base.get(key, missing), room.get(key, missing), disk.get(key, missing)
        if r == d:
            value = r
        elif r == b:
            value = d
        elif d == b:
            value = r
        else:
            value = r
            conflict = True
        if value is not missing:
            merged[key] = value
    return merged, conflict


def _changed(base: dict[str, Any] | None, other: dict[str, Any]) -> bool:
    return base != other


def _in_order(primary: list[str], secondary: list[str], kept: set[str]) -> list[str]:
    """``primary``'s kept ids, with ``secondary``'s other kept ids after their predecessor."""
    result = [cell_id for cell_id in primary if cell_id in kept]
    placed = set(result)
    for index, cell_id in enumerate(secondary):
        if cell_id not in kept or cell_id in placed:
            continue
        position = 0
        for before in reversed(secondary[:index]):
            if before in placed:
                position = result.index(before) + 1
                break
        result.insert(position, cell_id)
        placed.add(cell_id)
    return result


def _reordered(base_order: list[str], order: list[str]) -> bool:
    common = set(base_order) & set(order)
    return [c for c in base_order if c in common] != [c for c in order if c in common]


def merge_notebooks(
    base: dict[str, Any] | None, room: dict[str, Any], disk: dict[str, Any]
) -> MergeResult:
    """The three-way merge of ``room`` and ``disk`` against ``base`` (see the module doc)."""
    base_order, base_cells = _by_id(base)
    room_order, room_cells = _by_id(room)
    disk_order, disk_cells = _by_id(disk)
    conflicts: list[str] = []
    merged_cells: dict[str, dict[str, Any]] = {}
    for cell_id in dict.fromkeys([*room_order, *disk_order, *base_order]):
        b = base_cells.get(cell_id)
        r = room_cells.get(cell_id)
        d = disk_cells.get(cell_id)
        if r is not None and d is not None:
            cell, conflict = _merge_fields(b, r, d)
            if conflict:
                conflicts.append(cell_id)
            merged_cells[cell_id] = cell
        elif r is not None:  # not on disk: new in the room, or deleted on disk
            if b is None or _changed(b, r):
                merged_cells[cell_id] = r
        elif d is not None:  # not in the room: new on disk, or deleted in the room
            if b is None or _changed(b, d):
                merged_cells[cell_id] = d
    kept = set(merged_cells)
    if _reordered(base_order, room_order) or not _reordered(base_order, disk_order):
        order = _in_order(room_order, disk_order, kept)
    else:
        order = _in_order(disk_order, room_order, kept)
    meta_base = {k: v for k, v in (base or {}).items() if k != "cells"}
    meta_room = {k: v for k, v in room.items() if k != "cells"}
    meta_disk = {k: v for k, v in disk.items() if k != "cells"}
    top, _ = _merge_fields(meta_base, meta_room, meta_disk)
    metadata, meta_conflict = _merge_fields(
        meta_base.get("metadata"), meta_room.get("metadata") or {}, meta_disk.get("metadata") or {}
    )
    if meta_conflict:
        conflicts.append("metadata")
    content = {**top, "metadata": metadata, "cells": [merged_cells[c] for c in order]}
    return MergeResult(content=content, conflicts=conflicts, from_disk=content != room)
