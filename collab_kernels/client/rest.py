"""The server's REST API as the client uses it: one method per endpoint, errors as exceptions.

:class:`RestClient` holds the HTTP connection pool and the server's address and token; every
call goes through :meth:`RestClient.request`, which turns an unexpected status into
:class:`~.errors.ServerError` (:class:`~.errors.NotFound` for a 404) with the server's message.
"""

from __future__ import annotations

import contextlib
import json as _json
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote

import httpx

from .errors import NotFound, RunNotFound, ServerError
from .records import RunRecord
from .servers import ServerInfo


class RestClient:
    """The REST endpoints of one server (sessions, contents, kernels, runs, input)."""

    def __init__(
        self,
        url: str | ServerInfo,
        token: str | None = None,
        *,
        request_timeout: float = 60.0,
        poll_interval: float = 0.3,
    ):
        self.server = url if isinstance(url, ServerInfo) else ServerInfo(url=url, token=token)
        if token is not None:
            self.server.token = token
        self.poll_interval = poll_interval
        headers = {"Accept": "application/json"}
        if self.server.token:
            headers["Authorization"] = f"token {self.server.token}"
        self._http = httpx.AsyncClient(headers=headers, timeout=request_timeout)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str | None:
        return self.server.token

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- REST --------------------------------------------------------------------------------

    def api_url(self, *parts: str) -> str:
        return self.server.url + "/".join(quote(p, safe="/") for p in parts if p)

    async def request(
        self,
        method: str,
        *parts: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok: Iterable[int] = (200, 201, 202, 204),
    ) -> Any:
        """One request; the decoded JSON body (None when empty), or a :class:`ServerError`."""
        url = self.api_url(*parts)
        try:
            # NaN and infinities allowed (papermill's parameters may hold them; Python's JSON
            # reader on the server takes them, as nbformat writes them)
            body = None if json is None else _json.dumps(json).encode("utf-8")
            headers = {"Content-Type": "application/json"} if body is not None else None
            response = await self._http.request(
                method, url, content=body, headers=headers, params=params
            )
        except httpx.HTTPError as e:
            raise ServerError(
                f"cannot reach the server at {self.server.url}: {e}", None, method, url
            ) from e
        if response.status_code not in tuple(ok):
            message = response.reason_phrase
            try:
                body = response.json()
                message = body.get("message") or body.get("reason") or message
            except Exception:
                if response.text:
                    message = response.text[:300]
            cls = NotFound if response.status_code == 404 else ServerError
            raise cls(
                f"{method} {url}: {response.status_code} {message}",
                response.status_code,
                method,
                url,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    async def request_object(self, method: str, *parts: str, **kwargs: Any) -> dict[str, Any]:
        """A request whose answer must be a JSON object."""
        body = await self.request(method, *parts, **kwargs)
        if not isinstance(body, dict):
            raise ServerError(
                f"{method} {self.api_url(*parts)}: expected a JSON object, got {body!r:.100}",
                None,
                method,
                self.api_url(*parts),
            )
        return body

    async def request_list(self, method: str, *parts: str, **kwargs: Any) -> list[Any]:
        """A request whose answer must be a JSON list."""
        body = await self.request(method, *parts, **kwargs)
        if not isinstance(body, list):
            raise ServerError(
                f"{method} {self.api_url(*parts)}: expected a JSON list, got {body!r:.100}",
                None,
                method,
                self.api_url(*parts),
            )
        return body

    # -- server, contents --------------------------------------------------------------------

    async def check(self) -> dict[str, Any]:
        """The server's version info; raises :class:`ServerError` if unreachable or unauthorized."""
        await self.request("GET", "api", "status")
        return await self.request_object("GET", "api")

    async def kernelspecs(self) -> dict[str, Any]:
        """``{"default": name, "kernelspecs": {name: spec}}``."""
        return await self.request_object("GET", "api", "kernelspecs")

    async def get_contents(self, path: str, content: bool = True) -> dict[str, Any]:
        return await self.request_object(
            "GET", "api", "contents", path, params={"content": "1" if content else "0"}
        )

    async def save_notebook_to(self, path: str, notebook: dict[str, Any]) -> dict[str, Any]:
        """Write a notebook (nbformat dict) at ``path`` through the contents API."""
        return await self.request_object(
            "PUT",
            "api",
            "contents",
            path,
            json={"type": "notebook", "format": "json", "content": notebook},
        )

    async def delete_contents(self, path: str) -> None:
        await self.request("DELETE", "api", "contents", path, ok=(204,))

    # -- kernels and sessions ----------------------------------------------------------------

    async def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        try:
            return await self.request_object("GET", "api", "kernels", kernel_id)
        except NotFound:
            return None

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self.request("POST", "api", "kernels", kernel_id, "interrupt")

    async def restart_kernel(self, kernel_id: str) -> dict[str, Any]:
        """A fresh process for the kernel (same id): its state is gone."""
        return await self.request_object("POST", "api", "kernels", kernel_id, "restart")

    async def shutdown_kernel(self, kernel_id: str) -> None:
        with contextlib.suppress(NotFound):
            await self.request("DELETE", "api", "kernels", kernel_id, ok=(204,))

    async def sessions(self) -> list[dict[str, Any]]:
        return [s for s in await self.request_list("GET", "api", "sessions") if isinstance(s, dict)]

    async def session_for(self, path: str) -> dict[str, Any] | None:
        for session in await self.sessions():
            if session.get("path") == path:
                return session
        return None

    async def delete_session(self, session_id: str) -> None:
        """Delete a session; the server shuts its kernel down (unless another session uses it)."""
        with contextlib.suppress(NotFound):
            await self.request("DELETE", "api", "sessions", session_id, ok=(204,))

    async def start_session(
        self, path: str, kernel_name: str | None = None, cwd: str | None = None
    ) -> dict[str, Any]:
        """The notebook's session (kernel), created if there is none.

        ``cwd`` (a server path of a folder) starts the kernel there instead of the notebook's
        folder; it applies only when a new kernel is started.
        """
        existing = await self.session_for(path)
        if existing is not None:
            return existing
        return await self.create_session(path, kernel_name, cwd)

    async def create_session(
        self, path: str, kernel_name: str | None = None, cwd: str | None = None
    ) -> dict[str, Any]:
        """A new session for ``path`` with a new kernel (``kernel_name``, started in ``cwd``)."""
        kernel: dict[str, Any] = {}
        if cwd is not None:
            model: dict[str, Any] = {"path": cwd}
            if kernel_name:
                model["name"] = kernel_name
            started = await self.request_object("POST", "api", "kernels", json=model, ok=(201,))
            kernel["id"] = started["id"]
        elif kernel_name:
            kernel["name"] = kernel_name
        body = {"path": path, "type": "notebook", "name": path.rsplit("/", 1)[-1], "kernel": kernel}
        return await self.request_object("POST", "api", "sessions", json=body, ok=(201,))

    async def collaboration_session(self, path: str, file_type: str = "notebook") -> dict[str, Any]:
        """``PUT /api/collaboration/session/{path}``: ``{"fileId", "sessionId", ...}``."""
        return await self.request_object(
            "PUT",
            "api",
            "collaboration",
            "session",
            path,
            json={"format": "json", "type": file_type},
            ok=(200, 201),
        )

    # -- runs --------------------------------------------------------------------------------

    async def list_runs(self, kernel_id: str | None = None) -> list[RunRecord]:
        """Every execute request the server knows (newest last)."""
        if kernel_id:
            runs = await self.request_list("GET", "api", "kernels", kernel_id, "requests")
        else:
            runs = await self.request_list("GET", "api", "collaboration", "requests")
        return [cast(RunRecord, r) for r in runs if isinstance(r, dict)]

    async def find_run(self, run_id: str) -> RunRecord:
        runs = await self.list_runs()
        for record in runs:
            if record.get("request_id") == run_id:
                return record
        # allow an unambiguous prefix, as git does for commits
        matches = [r for r in runs if str(r.get("request_id", "")).startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        raise RunNotFound(f"no run {run_id!r} on {self.server.url}")

    async def run_status(self, kernel_id: str, run_id: str) -> RunRecord:
        # 202 while it runs, 300 while it waits for input, 200 when done (nbmodel protocol)
        record = await self.request_object(
            "GET", "api", "kernels", kernel_id, "requests", run_id, ok=(200, 202, 300)
        )
        return cast(RunRecord, record)

    async def cancel_run(self, kernel_id: str, run_id: str) -> RunRecord:
        """Stop a run: a queued one is dropped; a running one is cancelled (queued cells
        dropped, the running cell interrupted). Returns the request record."""
        try:
            await self.request(
                "DELETE",
                "api",
                "kernels",
                kernel_id,
                "requests",
                run_id,
                params={"running": "1"},
                ok=(200, 202, 204),
            )
        except ServerError as e:
            if e.status != 409:
                raise
            record = await self.run_status(kernel_id, run_id)
            if record.get("status") != "done":
                # A server that cannot cancel a running request: interrupt the cell that runs
                # (the server then drops the kernel's queued cells).
                await self.interrupt_kernel(kernel_id)
            return record
        return await self.run_status(kernel_id, run_id)

    async def answer_input(
        self, kernel_id: str, document_id: str, cell_id: str, value: str
    ) -> None:
        await self.request(
            "POST",
            "api",
            "kernels",
            kernel_id,
            "input",
            json={"document_id": document_id, "cell_id": cell_id, "value": value},
        )
