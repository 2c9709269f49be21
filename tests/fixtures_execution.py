"""Fixtures for the execution tests: a notebook with a kernel session, REST helpers.

- ``execution_manager``: the server's ExecutionManager.
- ``notebook_session(cells, path=None)``: a real .ipynb in jp_root_dir, a session
  (POST /api/sessions) with a real ipykernel whose shared client is ready. Returns an
  ``NbSession`` (path, kernel_id, session_id, cell_ids, room_id).
- ``api(method, *parts, body=None)``: a REST call answering (status, json, headers) without
  raising on 4xx.
- ``wait_request(request_id)``: awaits the end of an execute request (its event), then
  returns its REST view.
- ``LONG_CELL``: parameters of the long streaming cell (one place).
- ``post_execute(api, nb, cell_id)`` / ``submit(api, nb, cell_id)``: POST .../execute for a
  notebook session (the answer as ``api`` gives it / the request id of a 202);
  ``post_input(api, nb, cell_id, value)``: POST .../input.
- ``gate_code(flag, body)``: a cell that waits for a file the test creates; ``entry(doc,
  cell_id)``: the cell's entry in the execution map; ``died_mid_cell(...)``: what a cell whose
  kernel died while it ran, and the one queued after it, end as.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import nbformat
import pytest
from pycrdt import Map
from tornado.httpclient import HTTPClientError

TIMEOUT = 30.0


@dataclass
class LongCell:
    """A cell printing a numbered line every ``interval`` s for ``lines`` lines (~8 s)."""

    lines: int = 16
    interval: float = 0.5

    @property
    def code(self) -> str:
        return (
            "import time\n"
            f"for i in range({self.lines}):\n"
            "    print(f'line {i}', flush=True)\n"
            f"    time.sleep({self.interval})\n"
        )

    def expected(self) -> str:
        return "".join(f"line {i}\n" for i in range(self.lines))


LONG_CELL = LongCell()


@dataclass
class NbSession:
    path: str
    kernel_id: str
    session_id: str
    cell_ids: list[str]
    room_id: str


@pytest.fixture
def execution_manager(jp_serverapp):
    return jp_serverapp.web_app.settings["collab_execution_manager"]


@pytest.fixture
def api(jp_fetch):
    async def call(method: str, *parts: str, body=None, params=None):
        kwargs = {"method": method}
        if body is not None:
            kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = "{}"
        if params:
            kwargs["params"] = params
        try:
            response = await jp_fetch(*parts, **kwargs)
        except HTTPClientError as e:
            response = e.response
            if response is None:
                raise
        text = response.body.decode() if response.body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        return response.code, data, response.headers

    return call


@pytest.fixture
def notebook_session(jp_root_dir, api, jp_serverapp):
    created: list[str] = []

    async def make(cells: list[str] | None = None, path: str | None = None, *, kernel_id=None):
        path = path or f"exec-{uuid.uuid4().hex[:8]}.ipynb"
        nb = nbformat.v4.new_notebook()
        for source in cells if cells is not None else ["1 + 1"]:
            if isinstance(source, dict):
                nb.cells.append(nbformat.from_dict(source))
            else:
                nb.cells.append(nbformat.v4.new_code_cell(source))
        target = jp_root_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        body = {"path": path, "type": "notebook", "name": path}
        body["kernel"] = {"id": kernel_id} if kernel_id else {"name": "python3"}
        code, session, _ = await api("POST", "api", "sessions", body=body)
        assert code == 201, session
        created.append(session["id"])
        kid = session["kernel"]["id"]
        kernel = jp_serverapp.kernel_manager.get_kernel(kid)
        await kernel.shared_client.wait_ready(TIMEOUT)
        code, model, _ = await api(
            "PUT",
            "api",
            "collaboration",
            "session",
            path,
            body={"format": "json", "type": "notebook"},
        )
        assert code in (200, 201), model
        return NbSession(
            path=path,
            kernel_id=kid,
            session_id=session["id"],
            cell_ids=[c["id"] for c in nb.cells],
            room_id=f"json:notebook:{model['fileId']}",
        )

    return make


@pytest.fixture
def wait_request(execution_manager, api):
    async def wait(request_id: str, timeout: float = TIMEOUT):
        request = execution_manager.requests.get(request_id)
        assert request is not None, f"unknown request {request_id}"
        await asyncio.wait_for(request.done.wait(), timeout)
        code, data, _ = await api(
            "GET", "api", "kernels", request.kernel_id, "requests", request_id
        )
        assert code == 200, data
        return data

    return wait


def find_cell(document, cell_id: str):
    for ycell in document.ycells:
        if ycell.get("id") == cell_id:
            return ycell
    return None


def cell_py(document, cell_id: str) -> dict:
    ycell = find_cell(document, cell_id)
    return ycell.to_py() if ycell is not None else {}


def stream_text(cell: dict, name: str = "stdout") -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", []) or []
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def gate_code(flag, body: str = "") -> str:
    """A cell that runs until the test creates ``flag`` (no sleeps in the test itself)."""
    return (
        f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n" + body
    )


def entry(document, cell_id):
    """The cell's entry in the document's execution map (None when it has none)."""
    return document.ydoc.get("execution", type=Map).get(cell_id)


async def post_execute(
    api,
    nb: NbSession,
    cell_id: str | None = None,
    *,
    cells=None,
    body=None,
    kernel_id=None,
    **extra,
):
    """POST /api/kernels/{kernel_id or nb.kernel_id}/execute with ``body``, by default the
    one-cell body of ``cell_id`` in ``nb``'s document (plus ``extra`` fields), or with
    ``cells`` the cells body; answers (status, json, headers)."""
    if body is None and cells is not None:
        body = {"document_id": nb.room_id, "cells": cells, **extra}
    elif body is None:
        assert cell_id is not None, "a cell id, cells or a body"
        body = {"cell_id": cell_id, "document_id": nb.room_id, **extra}
    return await api("POST", "api", "kernels", kernel_id or nb.kernel_id, "execute", body=body)


async def post_input(api, nb: NbSession, cell_id: str, value: str):
    """POST /api/kernels/{nb.kernel_id}/input: answer the ``input()`` prompt of ``cell_id``."""
    body = {"document_id": nb.room_id, "cell_id": cell_id, "value": value}
    return await api("POST", "api", "kernels", nb.kernel_id, "input", body=body)


async def submit(api, nb: NbSession, cell_id: str, **extra) -> str:
    """Queue one cell of ``nb`` (202) and return the request id."""
    code, data, _ = await post_execute(api, nb, cell_id, **extra)
    assert code == 202, data
    return data["request_id"]


async def died_mid_cell(wait_request, conn, running: tuple[str, str], queued: tuple[str, str]):
    """The kernel died while the cell of request ``running = (request_id, cell_id)`` printed
    ``started``: that request ends ``error``, the ``queued`` one ``aborted``, and ``conn``
    sees both cells idle with the error as the running cell's last output (returned)."""
    (running_request, running_cell), (queued_request, queued_cell) = running, queued
    assert (await wait_request(running_request))["result"] == "error"
    assert (await wait_request(queued_request))["result"] == "aborted"
    await conn.wait_for(
        lambda d: (
            all(cell_py(d, x)["execution_state"] == "idle" for x in (running_cell, queued_cell))
            and cell_py(d, running_cell)["outputs"][-1].get("output_type") == "error"
        ),
        TIMEOUT,
    )
    cell = cell_py(conn.document, running_cell)
    assert cell["outputs"][-1]["ename"] in ("KernelDied", "KernelRestarted")
    assert stream_text(cell) == "started\n"
    assert entry(conn.document, queued_cell)["status"] == "aborted"
    return cell
