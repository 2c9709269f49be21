"""Roles are enforced by jupyter_server's auth layer: per-person tokens, per-role rights."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from collab_kernels.teaching.auth import ROLES, role_allows

TOKENS = {
    "viewer": "tok-viewer-0123456789",
    "editor": "tok-editor-0123456789",
    "runner": "tok-runner-0123456789",
}


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {
                    "collab_kernels": True,
                    "jupyter_server_fileid": True,
                    "jupyterlab": True,
                },
                "identity_provider_class": "collab_kernels.teaching.auth.ClassroomIdentityProvider",
                "authorizer_class": "collab_kernels.teaching.auth.RoleAuthorizer",
            },
            "ClassroomIdentityProvider": {
                "user_tokens": {tok: f"{role}-user" for role, tok in TOKENS.items()},
            },
            "RoleAuthorizer": {
                "roles": {"runner-user": "runner", "group:writers": "editor"},
                "groups": {"writers": ["editor-user"]},
                "default_role": "viewer",
            },
        }
    )


def as_user(role):
    return {"Authorization": f"token {TOKENS[role]}"}


async def status_of(jp_fetch, *parts, role=None, **kwargs):
    headers = as_user(role) if role else None
    try:
        response = await jp_fetch(*parts, headers=headers, **kwargs)
    except HTTPClientError as error:
        return error.code
    return response.code


async def start_kernel_status(jp_fetch, role: str) -> int:
    """The status of POST /api/kernels (start a python3 kernel) as ``role``."""
    body = json.dumps({"name": "python3"})
    return await status_of(jp_fetch, "api", "kernels", role=role, method="POST", body=body)


async def test_each_token_identifies_its_holder(jp_fetch):
    response = await jp_fetch("api", "me", headers=as_user("editor"))
    assert json.loads(response.body)["identity"]["username"] == "editor-user"


async def test_viewer_reads_but_cannot_write_or_execute(jp_fetch, jp_root_dir):
    (jp_root_dir / "lesson.txt").write_text("hello")
    assert await status_of(jp_fetch, "api", "contents", "lesson.txt", role="viewer") == 200
    body = json.dumps({"type": "file", "format": "text", "content": "changed"})
    assert (
        await status_of(
            jp_fetch, "api", "contents", "lesson.txt", role="viewer", method="PUT", body=body
        )
        == 403
    )
    assert await start_kernel_status(jp_fetch, "viewer") == 403
    assert (jp_root_dir / "lesson.txt").read_text() == "hello"


async def test_editor_writes_contents_but_cannot_start_kernels(jp_fetch, jp_root_dir):
    body = json.dumps({"type": "file", "format": "text", "content": "edited"})
    assert await status_of(
        jp_fetch, "api", "contents", "notes.txt", role="editor", method="PUT", body=body
    ) in (200, 201)
    assert (jp_root_dir / "notes.txt").read_text() == "edited"
    assert await start_kernel_status(jp_fetch, "editor") == 403


async def test_server_token_is_the_instructor(jp_fetch):
    assert await status_of(jp_fetch, "api", "terminals") == 200
    assert await status_of(jp_fetch, "api", "terminals", role="runner") == 403


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_listen_to_the_event_bus(role):
    """JupyterLab pages subscribe to /api/events/subscribe; a 403 there loops in every page."""
    assert role_allows(role, "execute", "events")
    assert role_allows(role, "write", "events") == (role == "instructor")


@pytest.mark.parametrize("role", ROLES)
def test_role_table_is_monotonic(role):
    """Each role may do everything the role before it may do."""
    resources = ["contents", "kernels", "sessions", "terminals", "files", "kernelspecs"]
    index = ROLES.index(role)
    for lower in ROLES[:index]:
        for action in ("read", "write", "execute"):
            for resource in resources:
                if role_allows(lower, action, resource):
                    assert role_allows(role, action, resource), (lower, role, action, resource)


async def test_pages_of_other_users_do_not_carry_the_server_token(jp_fetch, jp_serverapp):
    server_token = jp_serverapp.identity_provider.token
    student_page = await jp_fetch("lab", headers=as_user("viewer"))
    assert server_token not in student_page.body.decode()
    owner_page = await jp_fetch("lab")
    assert server_token in owner_page.body.decode()
