"""Which login token a page rendered for a user may carry: the user's own, or none.

jupyter_server's ``page.html`` writes ``{{token}}`` (``IdentityProvider.token``, the server's
own token) into the ``data-jupyter-api-token`` attribute of every page it renders for a
logged-in user, and JupyterLab copies the same token into its page config. On a server where
several people log in, that hands the server owner's token (full control) to everyone who
opens any page, a 404 included. :func:`page_token` decides instead, per request.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import (
    IdentityProvider,
    LegacyIdentityProvider,
    PasswordIdentityProvider,
)

#: jupyter_server's own providers: one person (whoever holds the token or the password)
_SINGLE_USER_PROVIDERS = (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)


def page_token(handler: Any) -> str:
    """The token that pages rendered for this request may carry ('' for none).

    - nobody logged in: none (stock renders none either);
    - an identity provider that knows its users' tokens (``page_token_for(user)``, as
      :class:`~collab_kernels.teaching.auth.ClassroomIdentityProvider` has): what it says;
    - jupyter_server's own single-user providers: the server's token (whoever logged in
      holds it or the password, as stock);
    - any other provider (it may log in many people): none. Pages then authenticate with
      the login cookie and the XSRF token, as cookie logins always do.
    """
    try:
        user = handler.current_user
    except Exception:  # rendering an error before authentication ran
        return ""
    if not user or user == "anonymous":
        return ""
    provider = handler.identity_provider
    own = getattr(provider, "page_token_for", None)
    if callable(own):
        return str(own(user) or "")
    if type(provider) in _SINGLE_USER_PROVIDERS:
        return str(provider.token or "")
    return ""


def page_config_hook(previous_hook: Any = None) -> Any:
    """A jupyterlab_server ``page_config_hook`` putting :func:`page_token` in the page config.

    JupyterLab writes ``IdentityProvider.token`` into the page config of every page it serves.
    """

    def hook(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
        if previous_hook is not None:
            page_config = previous_hook(handler, page_config)
        token = page_token(handler)
        if page_config.get("token") != token:
            # jupyterlab_server hands us its shared settings dict: change a copy
            page_config = {**page_config, "token": token}
        return page_config

    hook.collab_kernels_token_hook = True  # type: ignore[attr-defined]
    return hook


__all__ = ["page_config_hook", "page_token"]
