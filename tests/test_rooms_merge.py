"""The three-way merge by cell id (rooms/merge.py), on plain notebook dicts."""

from __future__ import annotations

from collab_kernels.rooms.merge import merge_notebooks


def nb(*cells: tuple[str, str], metadata: dict | None = None) -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata or {},
        "cells": [
            {
                "id": i,
                "cell_type": "code",
                "source": s,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            for i, s in cells
        ],
    }


def merged_sources(result) -> list[tuple[str, str]]:
    return [(c["id"], c["source"]) for c in result.content["cells"]]


def test_merge_takes_each_side_changes_inserts_and_deletes():
    base = nb(("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))
    room = nb(("a", "1 room"), ("b", "2"), ("c", "3"), ("r", "new in room"), ("d", "4"))
    disk = nb(("a", "1"), ("b", "2 disk"), ("d", "4"), ("x", "new on disk"))  # c deleted
    result = merge_notebooks(base, room, disk)
    assert merged_sources(result) == [
        ("a", "1 room"),
        ("b", "2 disk"),
        ("r", "new in room"),
        ("d", "4"),
        ("x", "new on disk"),
    ]
    assert result.conflicts == [] and result.from_disk


def test_merge_conflict_keeps_the_room_and_edits_beat_deletes():
    base = nb(("a", "1"), ("b", "2"), metadata={"k": 1})
    room = nb(("a", "1 room"), metadata={"k": 2})  # b deleted in the room
    disk = nb(("a", "1 disk"), ("b", "2 disk"), metadata={"k": 3})  # b edited on disk
    result = merge_notebooks(base, room, disk)
    assert merged_sources(result) == [("a", "1 room"), ("b", "2 disk")]
    assert result.conflicts == ["a", "metadata"]
    assert result.content["metadata"] == {"k": 2}


def test_merge_follows_the_side_that_moved_cells():
    base = nb(("a", "1"), ("b", "2"), ("c", "3"))
    room = nb(("a", "1"), ("b", "2 room"), ("c", "3"))
    disk = nb(("c", "3"), ("a", "1"), ("b", "2"))  # moved on disk
    assert [c for c, _ in merged_sources(merge_notebooks(base, room, disk))] == ["c", "a", "b"]
