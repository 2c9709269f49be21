"""``GET /api/collaboration/room/{room_id}/presence``: who is in a document, and doing what."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers_base import CollabAPIHandler
from .auth import RoleAuthorizer

ACTIVE = ("queued", "running")


def connection_role(authorizer: Any, client: Any) -> str:
    """The role of a connection: the RoleAuthorizer's, or what its rights amount to."""
    if isinstance(authorizer, RoleAuthorizer) and client.user is not None:
        return authorizer.role_of(client.user)
    if client.can_execute:
        return "runner"
    return "editor" if client.can_write else "viewer"


def describe_client(authorizer: Any, room: Any, client: Any) -> dict[str, Any]:
    user = client.user
    states = [
        room.awareness.states[cid]
        for cid in sorted(client.awareness_ids)
        if cid in room.awareness.states
    ]
    return {
        "username": getattr(user, "username", None),
        "display_name": getattr(user, "display_name", None) or getattr(user, "name", None),
        "role": connection_role(authorizer, client),
        "can_write": client.can_write,
        "can_execute": client.can_execute,
        "awareness": states,
    }


def describe_request(request: Any) -> dict[str, Any]:
    running = [c.cell_id for c in request.cells if c.status == "running"]
    return {
        "request_id": request.request_id,
        "kernel_id": request.kernel_id,
        "username": request.username,
        "status": request.status,
        "running_cell": running[0] if running else None,
        "cells": [c.cell_id for c in request.cells if c.status in ACTIVE],
        "input_request": (
            request.input_request.to_dict() if request.input_request is not None else None
        ),
    }


class PresenceHandler(CollabAPIHandler):
    auth_resource = "contents"

    @web.authenticated
    @authorized("read")
    async def get(self, room_id: str) -> None:
        room = self.room_manager.find_room(room_id)
        if room is None:
            raise web.HTTPError(404, f"No open document {room_id}")
        clients = sorted((c for c in room.clients if not c.closed), key=lambda c: c.name)
        requests = (
            [
                r
                for r in self.execution_manager.list_requests(None)
                if r.document_id == room_id and r.status in ACTIVE
            ]
            if self.has_execution_manager
            else []
        )
        self.finish(
            json.dumps(
                {
                    "room_id": room_id,
                    "path": room.path,
                    "clients": [describe_client(self.authorizer, room, c) for c in clients],
                    "executions": [describe_request(r) for r in requests],
                }
            )
        )


default_handlers = [
    (r"/api/collaboration/room/([^/]+)/presence", PresenceHandler),
]
