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
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import nbformat
import pytest
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
