"""Sessions of shared notebooks: one session and one kernel per notebook path."""

from __future__ import annotations

import asyncio
import json

import nbformat

from collab_kernels.execution.sessions import CollabSessionManager


async def test_people_opening_a_notebook_at_the_same_moment_share_one_kernel(
    jp_fetch, jp_root_dir, jp_serverapp
):
    assert isinstance(jp_serverapp.session_manager, CollabSessionManager)
    nbformat.write(nbformat.v4.new_notebook(), str(jp_root_dir / "class.ipynb"))
    before = set(jp_serverapp.kernel_manager.list_kernel_ids())

    async def open_notebook():
        # What JupyterLab sends when a notebook is opened.
        body = {
            "path": "class.ipynb",
            "type": "notebook",
            "name": "",
            "kernel": {"name": "python3"},
        }
        response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
        assert response.code == 201
        return json.loads(response.body)

    sessions = await asyncio.gather(*(open_notebook() for _ in range(6)))
    assert len({s["id"] for s in sessions}) == 1
    assert len({s["kernel"]["id"] for s in sessions}) == 1
    started = set(jp_serverapp.kernel_manager.list_kernel_ids()) - before
    assert started == {sessions[0]["kernel"]["id"]}
    listed = json.loads((await jp_fetch("api", "sessions")).body)
    assert [s["path"] for s in listed].count("class.ipynb") == 1


async def test_sessions_of_different_notebooks_are_not_merged(jp_fetch, jp_root_dir):
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(), str(jp_root_dir / name))

    async def open_notebook(path):
        body = {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
        return json.loads(response.body)

    a, b = await asyncio.gather(open_notebook("a.ipynb"), open_notebook("b.ipynb"))
    assert a["id"] != b["id"] and a["kernel"]["id"] != b["kernel"]["id"]
