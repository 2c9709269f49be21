"""A notebook's live document on the server: read and edit cells, queue runs, save.

:class:`Notebook` is one room connection (the Y document every collaborator shares) plus the
notebook's kernel session; each edit is one transaction every collaborator sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from ..contract import source_hash
from .errors import CollabError
from .params import inject_parameters as _inject_parameters
from .records import RunRecord
from .run import Run
from .watcher import py_value

if TYPE_CHECKING:
    from jupyter_ydoc import YNotebook

    from .client import CollabClient
    from .connection import RoomConnection


class Notebook:
    """A notebook's live document on the server, plus its kernel session."""

    def __init__(
        self,
        client: CollabClient,
        path: str,
        room_id: str,
        session_id: str | None,
        session: dict[str, Any] | None,
    ):
        self.client = client
        self.path = path
        self.document_id = room_id
        self.session_id = session_id
        self.session = session
        self.connection: RoomConnection | None = None
        self._ynotebook: YNotebook | None = None
        self._runs: list[Run] = []

    @property
    def ynotebook(self) -> YNotebook:
        """The document (a ``jupyter_ydoc.YNotebook``); only while connected."""
        if self._ynotebook is None:
            raise CollabError(f"{self.path} is not connected")
        return self._ynotebook

    @property
    def kernel_id(self) -> str | None:
        kernel = (self.session or {}).get("kernel") or {}
        return kernel.get("id")

    @property
    def kernel_name(self) -> str | None:
        kernel = (self.session or {}).get("kernel") or {}
        return kernel.get("name")

    async def connect(self) -> None:
        """Open the room websocket and wait until the document is in sync."""
        from .connection import RoomConnection

        self.connection = RoomConnection(
            self.client.server.url,
            self.document_id,
            self.session_id,
            token=self.client.server.token,
            file_type="notebook",
        )
        await self.connection.connect()
        await asyncio.wait_for(asyncio.shield(self.connection.synced), 60)
        self._ynotebook = cast("YNotebook", self.connection.document)

    async def close(self) -> None:
        """Stop watching runs and close the room connection (the runs go on in the server)."""
        for run in self._runs:
            await run.stop_watching()
        self._runs.clear()
        self.client.forget(self)
        if self.connection is not None:
            conn, self.connection = self.connection, None
            await conn.close()

    def watching(self, run: Run) -> None:
        """``run`` watches this document: its watcher stops when the notebook closes."""
        self._runs.append(run)

    async def __aenter__(self) -> Notebook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading -----------------------------------------------------------------------------

    @property
    def cells(self) -> list[dict[str, Any]]:
        """The cells as nbformat dicts (outputs included)."""
        return [self.ynotebook.get_cell(i) for i in range(self.ynotebook.cell_number)]

    def cell(self, ref: int | str) -> dict[str, Any]:
        cell: dict[str, Any] = self.ynotebook.get_cell(self.index_of(ref))
        return cell

    def index_of(self, ref: int | str) -> int:
        if isinstance(ref, int):
            if not -self.ynotebook.cell_number <= ref < self.ynotebook.cell_number:
                raise IndexError(f"{self.path} has no cell {ref}")
            return ref % self.ynotebook.cell_number
        for i, ycell in enumerate(self.ynotebook.ycells):
            if ycell.get("id") == ref:
                return i
        raise KeyError(f"{self.path} has no cell with id {ref!r}")

    def code_cell_ids(self) -> list[str]:
        return [
            str(ycell.get("id"))
            for ycell in self.ynotebook.ycells
            if ycell.get("cell_type") == "code" and str(ycell.get("source", "")).strip()
        ]

    @property
    def language(self) -> str:
        from pycrdt import Map

        meta = py_value(self.ynotebook.ydoc.get("meta", type=Map).get("metadata")) or {}
        return (
            ((meta.get("language_info") or {}).get("name"))
            or ((meta.get("kernelspec") or {}).get("language"))
            or "python"
        )

    def to_notebook(self) -> dict[str, Any]:
        """The document as an nbformat dict (what the server saves)."""
        notebook: dict[str, Any] = self.ynotebook.get()
        return notebook

    # -- editing (each call is one transaction every collaborator sees) ----------------------

    def set_source(self, ref: int | str, source: str) -> None:
        self.ynotebook.set_cell(self.index_of(ref), source=source)

    def insert_cell(
        self,
        index: int,
        source: str = "",
        cell_type: str = "code",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        cell: dict[str, Any] = {
            "cell_type": cell_type,
            "source": source,
            "metadata": metadata or {},
        }
        if cell_type == "code":
            cell.update(outputs=[], execution_count=None)
        ycell = self.ynotebook.create_ycell(cell)
        self.ynotebook.ycells.insert(index, ycell)
        return str(ycell["id"])

    def delete_cell(self, ref: int | str) -> None:
        del self.ynotebook.ycells[self.index_of(ref)]

    def inject_parameters(
        self, parameters: dict[str, Any], language: str | None = None
    ) -> str | None:
        """Papermill-style parameters cell (see :mod:`.params`); returns its cell id."""
        if not parameters:
            return None
        return _inject_parameters(self.ynotebook, parameters, language or self.language)

    # -- running -----------------------------------------------------------------------------

    async def execute(
        self, cells: Iterable[int | str] | None = None, *, stop_on_error: bool = True
    ) -> Run:
        """Queue one execute request for ``cells`` (default: every non-empty code cell)."""
        if not self.kernel_id:
            raise CollabError(f"{self.path} has no kernel session")
        cell_ids = (
            self.code_cell_ids()
            if cells is None
            else [str(self.ynotebook.ycells[self.index_of(c)]["id"]) for c in cells]
        )
        body: dict[str, Any] = {
            "document_id": self.document_id,
            "cells": [
                {"cell_id": cid, "source_hash": source_hash(self.cell(cid)["source"])}
                for cid in cell_ids
            ],
        }
        if not stop_on_error:
            body["stop_on_error"] = False
        record: RunRecord = await self.client.request(
            "POST", "api", "kernels", self.kernel_id, "execute", json=body, ok=(200, 201, 202)
        )
        record.setdefault("cells", [{"cell_id": cid, "status": "queued"} for cid in cell_ids])
        record.setdefault("kernel_id", self.kernel_id)
        record.setdefault("document_id", self.document_id)
        record.setdefault("path", self.path)
        return Run(self, record)

    async def save(self, timeout: float = 30.0) -> None:
        """Ask the server to save the document now and wait until it has."""
        if self.connection is None:
            raise CollabError(f"{self.path} is not connected")
        status = await self.connection.save(timeout)
        if status != "success" and status != "skipped":
            raise CollabError(f"the server could not save {self.path}: {status}")
