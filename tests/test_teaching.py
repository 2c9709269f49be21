"""A teaching session: one room, an instructor and a viewer with per-person tokens.

Roles are enforced per connection by the server; presence lists who is there and what runs.
"""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

STUDENT = "student-token-0123456789abcdef"


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                "identity_provider_class": "collab_kernels.teaching.auth.ClassroomIdentityProvider",
                "authorizer_class": "collab_kernels.teaching.auth.RoleAuthorizer",
            },
            "ClassroomIdentityProvider": {"user_tokens": {STUDENT: "bob"}},
            "RoleAuthorizer": {"roles": {"bob": "viewer"}},
        }
    )


def sources(doc) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def append(doc, text: str) -> None:
    source = doc.ycells[0]["source"]
    source.insert(len(source), text)


async def test_viewer_edits_dropped_instructor_edits_land(
    rooms_notebook, collab_client, jp_root_dir
):
    path = rooms_notebook("lesson.ipynb", ["print('lesson')"])
    teacher = await collab_client(path)
    student = await collab_client(path, token=STUDENT)

    append(student.document, "  # student scribble")
    append(teacher.document, "  # teacher note")
    await student.wait_for(lambda doc: "teacher note" in sources(doc)[0])
    # the teacher's edit came after the student's on the wire: had the student's edit been
    # accepted, the teacher would have it by now
    late = await collab_client(path)
    assert "student scribble" not in sources(late.document)[0]
    assert "student scribble" not in sources(teacher.document)[0]
    assert await student.save() == "failed"


async def test_viewer_cannot_execute_or_interrupt(rooms_notebook, collab_client, jp_fetch):
    path = rooms_notebook(
        "run.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(120)"]
    )
    teacher = await collab_client(path)
    response = await jp_fetch(
        "api",
        "sessions",
        method="POST",
        body=json.dumps({"path": path, "type": "notebook", "kernel": {"name": "python3"}}),
    )
    kernel_id = json.loads(response.body)["kernel"]["id"]
    cell_id = teacher.document.ycells[0]["id"]
    student = {"Authorization": f"token {STUDENT}"}
    for parts, body in [
        (("execute",), {"cell_id": cell_id, "document_id": teacher.room_id}),
        (("interrupt",), {}),
        (("restart",), {}),
        (("input",), {"document_id": teacher.room_id, "cell_id": cell_id, "value": "x"}),
    ]:
        with pytest.raises(HTTPClientError) as error:
            await jp_fetch(
                "api",
                "kernels",
                kernel_id,
                *parts,
                method="POST",
                body=json.dumps(body),
                headers=student,
            )
        assert error.value.code == 403, parts
    # the instructor runs it
    response = await jp_fetch(
        "api",
        "kernels",
        kernel_id,
        "execute",
        method="POST",
        body=json.dumps({"cell_id": cell_id, "document_id": teacher.room_id}),
    )
    assert response.code == 202
    await teacher.wait_for(
        lambda doc: "started" in json.dumps(doc.ycells[0].to_py().get("outputs"))
    )
    # presence tells who runs what
    response = await jp_fetch("api", "collaboration", "room", teacher.room_id, "presence")
    [running] = json.loads(response.body)["executions"]
    assert running["running_cell"] == cell_id and running["status"] == "running"
    # the student still cannot stop it; the instructor can
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch(
            "api", "kernels", kernel_id, "interrupt", method="POST", body="{}", headers=student
        )
    assert error.value.code == 403
    await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="{}")
    await teacher.wait_for(lambda doc: doc.ycells[0].get("execution_count") is not None)


async def test_presence_lists_both_with_roles(rooms_notebook, collab_client, jp_fetch):
    path = rooms_notebook("presence.ipynb")
    teacher = await collab_client(path)
    student = await collab_client(path, token=STUDENT)
    student.set_awareness({"user": {"name": "Bob", "username": "bob"}})
    cid = student.awareness.client_id
    await teacher.wait_for(lambda _d: cid in teacher.awareness.states)

    response = await jp_fetch(
        "api",
        "collaboration",
        "room",
        teacher.room_id,
        "presence",
        headers={"Authorization": f"token {STUDENT}"},
    )
    presence = json.loads(response.body)
    assert presence["path"] == path
    by_name = {c["username"]: c for c in presence["clients"]}
    assert by_name["bob"]["role"] == "viewer"
    assert by_name["bob"]["can_write"] is False
    assert by_name["bob"]["awareness"] == [{"user": {"name": "Bob", "username": "bob"}}]
    others = [c for name, c in by_name.items() if name != "bob"]
    assert len(others) == 1 and others[0]["role"] == "instructor"
    assert others[0]["can_execute"] is True


async def test_presence_of_unknown_room_is_404(jp_fetch):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("api", "collaboration", "room", "json:notebook:nope", "presence")
    assert error.value.code == 404
