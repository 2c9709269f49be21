"""REST endpoints of server-side execution (see docs/architecture.md, "execution/").

All are under jupyter_server's authorization with resource ``kernels``: ``execute`` for running
cells and answering input, ``write`` for cancelling, ``read`` for status.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

_kernel = r"(?P<kernel_id>[^/]+)"
_request = r"(?P<request_id>[^/]+)"


class ExecutionAPIHandler(APIHandler):
    auth_resource = "kernels"

    @property
    def execution_manager(self) -> Any:
        manager = self.settings.get("collab_execution_manager")
        if manager is None:
            raise web.HTTPError(503, "Server-side execution is not available")
        return manager

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise web.HTTPError(400, f"Invalid JSON in the request body: {e}") from e

    def request_url(self, request: Any) -> str:
        return url_path_join(
            self.base_url, "api", "kernels", request.kernel_id, "requests", request.request_id
        )

    def get_request_or_404(self, kernel_id: str | None, request_id: str) -> Any:
        request = self.execution_manager.get_request(kernel_id, request_id)
        if request is None:
            raise web.HTTPError(404, f"No execute request {request_id} on kernel {kernel_id}")
        return request


class ExecuteHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        body = self.body_json()
        user = self.current_user
        username = getattr(user, "username", None) if user is not None else None
        request = await self.execution_manager.submit(kernel_id, body, username=username)
        self.set_status(202)
        self.set_header("Location", self.request_url(request))
        self.finish(json.dumps(request.to_dict()))


class RequestHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self, kernel_id: str, request_id: str) -> None:
        request = self.get_request_or_404(kernel_id, request_id)
        self.finish(json.dumps(request.to_dict()))

    @web.authenticated
    @authorized("execute")
    async def delete(self, kernel_id: str, request_id: str) -> None:
        request = self.get_request_or_404(kernel_id, request_id)
        running = self.get_query_argument("running", "0") not in ("0", "false", "")
        cancelled = self.execution_manager.cancel(request) or (
            running and await self.execution_manager.cancel_running(request)
        )
        if not cancelled:
            raise web.HTTPError(
                409,
                f"Execute request {request_id} is {request.status}; only a queued one can be cancelled (add ?running=1 to cancel a running one)",
            )
        self.set_status(200)
        self.finish(json.dumps(request.to_dict()))


class KernelRequestsHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self, kernel_id: str) -> None:
        requests = self.execution_manager.list_requests(kernel_id)
        self.finish(json.dumps([r.to_dict() for r in requests]))


class AllRequestsHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        requests = self.execution_manager.list_requests(None)
        self.finish(json.dumps([r.to_dict() for r in requests]))


class InputHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The request body must be a JSON object")
        document_id, cell_id, value = (
            body.get("document_id"),
            body.get("cell_id"),
            body.get("value"),
        )
        if not isinstance(document_id, str) or not isinstance(cell_id, str):
            raise web.HTTPError(400, "'document_id' and 'cell_id' are required")
        if not isinstance(value, str):
            raise web.HTTPError(400, "'value' must be a string")
        if kernel_id not in self.execution_manager.kernel_manager:
            raise web.HTTPError(404, f"No such kernel: {kernel_id}")
        self.execution_manager.inputs.answer(kernel_id, document_id, cell_id, value)
        self.set_status(200)
        self.finish(json.dumps({"status": "ok"}))


default_handlers = [
    (rf"/api/kernels/{_kernel}/execute", ExecuteHandler),
    (rf"/api/kernels/{_kernel}/requests/{_request}", RequestHandler),
    (rf"/api/kernels/{_kernel}/requests", KernelRequestsHandler),
    (rf"/api/kernels/{_kernel}/input", InputHandler),
    (r"/api/collaboration/requests", AllRequestsHandler),
]
