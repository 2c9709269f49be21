"""Roles for single-server classes, expressed through jupyter_server's auth layer.

jupyter_server asks an ``Authorizer`` whether a user may ``read``, ``write`` or ``execute``
a resource (``contents``, ``kernels``, ``sessions``, ``terminals``...). Every handler of
collab_kernels goes through that same question, so a role is nothing more than a table of
allowed (action, resource) pairs:

=============  ===================================================================
role           may
=============  ===================================================================
``viewer``     read everything but terminals, listen to the event bus: open notebooks,
               watch outputs live
``editor``     viewer + write contents (edit cells, save)
``runner``     editor + execute and write kernels and sessions (run cells, answer
               ``input()``, interrupt, restart)
``instructor`` everything
=============  ===================================================================

``ClassroomIdentityProvider`` gives each person of a class a token of their own, so one
jupyter_server can tell the instructor from the students without a hub. Under JupyterHub,
keep the hub's identity provider and map the same roles onto the hub's scopes (see the
teaching page of the documentation).
"""

from __future__ import annotations

import hmac

from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets import Dict, Enum, List, Unicode

ROLES = ("viewer", "editor", "runner", "instructor")

_READ_ONLY_DENIED = {"terminals"}


def role_allows(role: str, action: str, resource: str) -> bool:
    """Whether ``role`` may perform ``action`` ('read', 'write', 'execute') on ``resource``."""
    if role == "instructor":
        return True
    if resource in _READ_ONLY_DENIED:
        return False
    if resource == "events" and action in ("read", "execute"):
        # /api/events/subscribe (execute): every JupyterLab page listens to the event bus
        return role in ROLES
    if action == "read":
        return role in ROLES
    if action == "write" and resource == "contents":
        return role in ("editor", "runner")
    if resource in ("kernels", "sessions"):
        return role == "runner"
    return False


class RoleAuthorizer(Authorizer):
    """Grant each user the rights of a role: viewer, editor, runner or instructor."""

    roles = Dict(
        key_trait=Unicode(),
        value_trait=Enum(ROLES),
        config=True,
        help=(
            "Role of each user, by username, or of each member of a group with the key "
            "'group:NAME' (groups from RoleAuthorizer.groups or the user's own 'groups' "
            "attribute). Example: {'alice': 'instructor', 'group:students': 'viewer'}."
        ),
    )

    groups = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="Members of each group, by group name: {'students': ['bob', 'carol']}.",
    )

    default_role = Enum(
        ROLES,
        default_value="viewer",
        config=True,
        help=(
            "Role of a user who is named neither in RoleAuthorizer.roles nor through a group. "
            "The server's own token (ServerApp.token) always has the instructor role."
        ),
    )

    def role_of(self, user: User) -> str:
        username = user.username
        if username in self.roles:
            return self.roles[username]
        user_groups = set(getattr(user, "groups", None) or ())
        user_groups.update(name for name, members in self.groups.items() if username in members)
        granted = [self.roles[f"group:{g}"] for g in user_groups if f"group:{g}" in self.roles]
        if granted:
            return max(granted, key=ROLES.index)
        if getattr(user, "is_server_owner", False):
            return "instructor"
        return self.default_role

    def is_authorized(self, handler, user: User, action: str, resource: str) -> bool:
        role = self.role_of(user)
        allowed = role_allows(role, action, resource)
        if not allowed:
            self.log.info("Refused %s %s to %s (role %s)", action, resource, user.username, role)
        return allowed


class ClassroomIdentityProvider(IdentityProvider):
    """Token login with one token per person, for classes on a single jupyter_server.

    The server's own token keeps working and identifies its owner (the instructor role
    under ``RoleAuthorizer``); each token of ``user_tokens`` logs its holder in under their
    own name, which ``RoleAuthorizer.roles`` then maps to a role.
    """

    user_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help=(
            "Per-person login tokens: {token: username}. Hand each student the URL "
            "http://host:port/lab?token=<their token>. Tokens should be long and random."
        ),
    )

    def _user_for_token(self, token: str) -> str | None:
        found = None
        for candidate, username in self.user_tokens.items():
            # compare every candidate so the time taken does not reveal which one matched
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = username
        return found

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        username = self._user_for_token(token) if token else None
        if username is not None:
            return User(username=username, name=username, display_name=username)
        user = await super().get_user_token(handler)
        if user is not None:
            user.is_server_owner = True
        return user

    def page_token_for(self, user: User) -> str:
        """The token pages rendered for ``user`` may carry: the server's for its owner only.

        Everyone else's pages carry none (they authenticate with their login cookie and the
        XSRF token); see :func:`collab_kernels.security.tokens.page_token`.
        """
        return self.token if getattr(user, "is_server_owner", False) else ""

    def user_from_cookie(self, cookie_value: str) -> User | None:
        import json

        user = super().user_from_cookie(cookie_value)
        if user is not None and json.loads(cookie_value).get("server_owner"):
            user.is_server_owner = True  # type:ignore[attr-defined]
        return user

    def user_to_cookie(self, user: User) -> str:
        import json

        data = json.loads(super().user_to_cookie(user))
        if getattr(user, "is_server_owner", False):
            data["server_owner"] = True
        return json.dumps(data)
