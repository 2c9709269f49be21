"""The client's exceptions: what can go wrong talking to a server, in the caller's terms."""

from __future__ import annotations


class CollabError(Exception):
    """Base class of the client's errors."""


class ServerError(CollabError):
    """The server answered with an unexpected HTTP status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, method: str = "", url: str = ""):
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url


class NotFound(ServerError):
    """A 404 from the server."""


class RunNotFound(CollabError):
    """No server known to this client has a run (request) with that id."""
