"""A multi-user server with every installed server extension, for the security tests.

People log in with tokens of their own (``ClassroomIdentityProvider``) and get the rights of
their role (``RoleAuthorizer``), as in ``ui-tests/jupyter_server_test_config.py``; the
server's own token is the owner's. Every server extension enabled in this environment's
``etc/jupyter/jupyter_server_config.d`` is enabled, so the tests see every route a real
``jupyter lab`` serves here.

Import the fixtures into a test module: ``from fixtures_security import *  # noqa``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import httpx
import pytest
from traitlets.config import Config

#: role -> login token (the owner uses the server's token, anonymous none)
TOKENS = {
    "instructor": "sec-instructor-token-8d1f0a",
    "runner": "sec-runner-token-41c9e2",
    "editor": "sec-editor-token-7b3d55",
    "viewer": "sec-viewer-token-c0ffee",
}
USERS = {role: f"{role}-user" for role in TOKENS}
ROLES = ("anonymous", "viewer", "editor", "runner", "instructor", "owner")


def classroom_config_file(
    path: Path, user_tokens: dict[str, str], roles: dict[str, str] | None = None
) -> str:
    """Write a config file for a server process (``ServerProcess``) where each token of
    ``user_tokens`` ({token: username}) logs its holder in, with the ``roles`` of
    ``RoleAuthorizer``; returns the ``--config=`` argument."""
    config: dict = {
        "ServerApp": {
            "identity_provider_class": "collab_kernels.teaching.auth.ClassroomIdentityProvider",
            "authorizer_class": "collab_kernels.teaching.auth.RoleAuthorizer",
        },
        "ClassroomIdentityProvider": {"user_tokens": user_tokens},
    }
    if roles is not None:
        config["RoleAuthorizer"] = {"roles": roles}
    path.write_text(json.dumps(config))
    return f"--config={path}"


def installed_server_extensions() -> dict[str, bool]:
    """Server extensions this environment enables (what ``jupyter lab`` would load)."""
    found: dict[str, bool] = {}
    folder = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d"
    for path in sorted(folder.glob("*.json")):
        enabled = json.loads(path.read_text()).get("ServerApp", {}).get("jpserver_extensions", {})
        found.update({name: True for name, on in enabled.items() if on})
    return found


def security_config(**extra: dict) -> Config:
    config = {
        "ServerApp": {
            "jpserver_extensions": installed_server_extensions(),
            "identity_provider_class": "collab_kernels.teaching.auth.ClassroomIdentityProvider",
            "authorizer_class": "collab_kernels.teaching.auth.RoleAuthorizer",
        },
        "ClassroomIdentityProvider": {
            "user_tokens": {token: USERS[role] for role, token in TOKENS.items()}
        },
        "RoleAuthorizer": {
            "roles": {USERS[role]: role for role in TOKENS},
            "default_role": "viewer",
        },
        # no network from the tests
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        },
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return Config(config)


@pytest.fixture
def jp_server_config(tmp_path):
    return security_config(LabApp=lab_dirs(tmp_path))


def lab_dirs(tmp_path: Path) -> dict[str, str]:
    """JupyterLab's writable folders in the test's own folder, its assets where installed.

    Users' settings and workspaces are written by the tests; the application folder is where
    ``POST /lab/api/build`` would build (a test that fails must not rebuild the JupyterLab of
    the shared environment).
    """
    from jupyterlab.commands import get_app_dir

    installed = Path(get_app_dir())
    app_dir = tmp_path / "lab" / "app"
    (app_dir / "static").mkdir(parents=True, exist_ok=True)
    # what LabApp checks to consider the application built (its assets: static_dir below)
    (app_dir / "static" / "index.html").write_text("")
    return {
        "app_dir": str(app_dir),
        "static_dir": str(installed / "static"),
        "templates_dir": str(installed / "static"),
        "schemas_dir": str(installed / "schemas"),
        "themes_dir": str(installed / "themes"),
        "app_settings_dir": str(installed / "settings"),
        "user_settings_dir": str(tmp_path / "lab" / "user-settings"),
        "workspaces_dir": str(tmp_path / "lab" / "workspaces"),
    }


@pytest.fixture(autouse=True)
def undo_notebook_shim_patch():
    """notebook_shim replaces ``ExtensionManager.sorted_extensions`` on the class, for the
    whole process, with one that fails where notebook_shim is not enabled: put it back for
    the tests that run after these."""
    from jupyter_server.extension.manager import ExtensionManager

    saved = ExtensionManager.__dict__["sorted_extensions"]
    yield
    ExtensionManager.sorted_extensions = saved


@pytest.fixture
def token_of(jp_serverapp):
    def get(role: str) -> str | None:
        if role == "owner":
            return jp_serverapp.identity_provider.token
        return TOKENS.get(role)

    return get


@pytest.fixture
def http_as(collab_base_url, token_of):
    """``async with http_as(role) as client``: an httpx client authenticated by token."""

    def make(role: str, **kwargs) -> httpx.AsyncClient:
        token = token_of(role)
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.AsyncClient(
            base_url=collab_base_url, headers=headers, timeout=60, follow_redirects=False, **kwargs
        )

    return make


@pytest.fixture
def browser_as(collab_base_url, token_of):
    """``async with browser_as(role) as client``: logged in by ``/lab?token=...`` (cookie)."""

    @contextlib.asynccontextmanager
    async def make(role: str):
        async with httpx.AsyncClient(
            base_url=collab_base_url, timeout=60, follow_redirects=False
        ) as client:
            token = token_of(role)
            if token:
                r = await client.get("lab", params={"token": token})
                assert r.status_code == 200, r.text[:300]
                assert client.cookies, "the token login set no cookie"
            yield client

    return make


__all__ = [
    "ROLES",
    "TOKENS",
    "USERS",
    "browser_as",
    "http_as",
    "installed_server_extensions",
    "jp_server_config",
    "lab_dirs",
    "security_config",
    "token_of",
    "undo_notebook_shim_patch",
]
