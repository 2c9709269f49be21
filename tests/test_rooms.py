"""Rooms: y-sync fan-out, saving, sessions, permissions, bad input (real server, real files)."""

from __future__ import annotations

import asyncio
import json

import pycrdt
import pytest
from jupyter_ydoc import YNotebook

from fixtures_rooms import read_notebook


def sources(doc: YNotebook) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def append_source(doc: YNotebook, index: int, text: str) -> None:
    source = doc.ycells[index]["source"]
    source.insert(len(source), text)


async def test_two_collaborators_converge(rooms_notebook, collab_client):
    path = rooms_notebook("converge.ipynb", ["a = 1", "b = 2"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    assert sources(alice.document) == ["a = 1", "b = 2"]
    # concurrent edits on both sides, before either has seen the other's
    append_source(alice.document, 0, "  # alice")
    append_source(bob.document, 1, "  # bob")
    bob.document.append_cell({"cell_type": "markdown", "source": "from bob", "metadata": {}})
    expected = ["a = 1  # alice", "b = 2  # bob", "from bob"]
    await alice.wait_for(lambda doc: sources(doc) == expected)
    await bob.wait_for(lambda doc: sources(doc) == expected)
