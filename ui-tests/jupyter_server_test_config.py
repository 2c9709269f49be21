"""Server configuration used only by the browser tests (loaded by ui-tests/start-lab.sh).

Three people, each logging in with a token of their own (``/lab?token=...``) through
collab_kernels' ``ClassroomIdentityProvider``; ``RoleAuthorizer`` gives them their rights:

- ``alice`` and ``bob``: role ``runner`` (edit, save, run cells);
- ``viewer``: role ``viewer`` (read only: no ``contents:write``, no ``kernels:execute``);
- ``teacher``: role ``instructor`` (everything, also JupyterLab's settings).

The server's own token stays empty on purpose: JupyterLab copies ``IdentityProvider.token``
into every page it serves, and every browser context would then send that one token. With it
empty, each context is identified by the login cookie its per-person token gave it.

The tokens come from the environment (``CK_UI_TOKEN_ALICE``/``_BOB``/``_VIEWER``), set by
playwright.config.ts from tests/helpers/constants.ts.
"""

import os

c = get_config()  # noqa: F821  (provided by the traitlets config loader)

c.ServerApp.identity_provider_class = "collab_kernels.teaching.auth.ClassroomIdentityProvider"
c.ServerApp.authorizer_class = "collab_kernels.teaching.auth.RoleAuthorizer"
c.IdentityProvider.token = ""
c.ClassroomIdentityProvider.user_tokens = {
    os.environ.get("CK_UI_TOKEN_ALICE", "ui-alice-token"): "alice",
    os.environ.get("CK_UI_TOKEN_BOB", "ui-bob-token"): "bob",
    os.environ.get("CK_UI_TOKEN_VIEWER", "ui-viewer-token"): "viewer",
    os.environ.get("CK_UI_TOKEN_TEACHER", "ui-teacher-token"): "teacher",
}
c.RoleAuthorizer.roles = {
    "alice": "runner",
    "bob": "runner",
    "viewer": "viewer",
    "teacher": "instructor",
}
c.RoleAuthorizer.default_role = "viewer"

c.ServerApp.open_browser = False
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port_retries = 0
# Lets the tests read the notebook model (window.jupyterapp) as well as the DOM.
c.LabApp.expose_app_in_browser = True
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
# No terminals: they only add load on a 2-core machine.
c.ServerApp.terminals_enabled = False
