"""Request bodies of the execution endpoints, parsed into typed specs or a 4xx.

Pure: no server, no kernel, no document. ``POST /api/kernels/{id}/execute`` speaks three
dialects (see the frontend contract), all parsed into one :class:`ExecuteSpec`:

- stock docprovider and jupyverse: ``{"cell_id", "document_id"}``;
- jupyter-server-documents: ``{"document_id", "cells": [{"cell_id", "source_hash"}]}``
  (plus our ``"stop_on_error": false``);
- jupyter-server-nbmodel: ``{"code", "metadata": {"cell_id", "document_id"}}``, or ``{"code"}``
  alone (a scratch execution: no document; its outputs are returned in the request status).

``POST /api/kernels/{id}/input`` takes ``{"document_id", "cell_id", "value"}`` or the nbmodel
form ``{"input"}`` (the kernel's one pending prompt) (:class:`InputSpec`). Every problem raises
``tornado.web.HTTPError`` with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tornado.web import HTTPError

Dialect = Literal["cell", "cells", "code"]


@dataclass(frozen=True)
class CellSpec:
    cell_id: str
    #: MurmurHash2 of the source the client saw (decimal string), or None: not checked.
    source_hash: str | None = None


@dataclass(frozen=True)
class ExecuteSpec:
    """What to run: cells of one document, in order; or code alone (``document_id`` None,
    no cells: a scratch execution)."""

    dialect: Dialect
    document_id: str | None
    cells: tuple[CellSpec, ...]
    #: The ``code`` dialect's code, run in place of the cell's source.
    code: str | None = None
    #: False: an error does not stop the request (its other cells still run).
    stop_on_error: bool = True


@dataclass(frozen=True)
class InputSpec:
    """An answer: to the prompt of a document's cell, or (both None) to the kernel's one
    pending prompt."""

    document_id: str | None
    cell_id: str | None
    value: str


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPError(400, "The request body must be a JSON object")
    return body


def _cell_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise HTTPError(400, "every cell needs a 'cell_id'")
    return value


def parse_execute(body: Any) -> ExecuteSpec:
    """The execute spec of a decoded body, in any of the three dialects."""
    body = _object(body)
    if "code" in body:
        code = body.get("code")
        metadata = body.get("metadata") or {}
        if not isinstance(code, str) or not isinstance(metadata, dict):
            raise HTTPError(400, "'code' must be a string and 'metadata' an object")
        document_id = metadata.get("document_id")
        cell_id = metadata.get("cell_id")
        if not document_id and not cell_id:
            return ExecuteSpec(dialect="code", document_id=None, cells=(), code=code)
        if not document_id or not cell_id:
            raise HTTPError(
                400,
                "metadata.cell_id and metadata.document_id go together with 'code' "
                "(neither: a scratch execution, not written to any document)",
            )
        return ExecuteSpec(
            dialect="code",
            document_id=_document_id(document_id),
            cells=(CellSpec(_cell_id(cell_id)),),
            code=code,
            stop_on_error=body.get("stop_on_error") is not False,
        )
    if "cells" in body:
        specs = body.get("cells")
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
            raise HTTPError(400, "'cells' must be a non-empty list of {cell_id, source_hash}")
        document_id = _document_id(body.get("document_id"))
        cells = []
        for spec in specs:
            cell_id = _cell_id(spec.get("cell_id"))
            expected = spec.get("source_hash")
            cells.append(CellSpec(cell_id, None if expected is None else str(expected)))
        return ExecuteSpec(
            dialect="cells",
            document_id=document_id,
            cells=tuple(cells),
            stop_on_error=body.get("stop_on_error") is not False,
        )
    document_id = _document_id(body.get("document_id"))
    return ExecuteSpec(
        dialect="cell",
        document_id=document_id,
        cells=(CellSpec(_cell_id(body.get("cell_id"))),),
        stop_on_error=body.get("stop_on_error") is not False,
    )


def _document_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise HTTPError(400, "'document_id' is required (the room id, format:type:fileId)")
    return value


def parse_input(body: Any) -> InputSpec:
    """The answer to an ``input()`` prompt."""
    body = _object(body)
    if "input" in body and "value" not in body:
        answer = body.get("input")
        if not isinstance(answer, str):
            raise HTTPError(400, "'input' must be a string")
        return InputSpec(None, None, answer)
    document_id, cell_id, value = body.get("document_id"), body.get("cell_id"), body.get("value")
    if not isinstance(document_id, str) or not isinstance(cell_id, str):
        raise HTTPError(400, "'document_id' and 'cell_id' are required")
    if not isinstance(value, str):
        raise HTTPError(400, "'value' must be a string")
    return InputSpec(document_id, cell_id, value)
