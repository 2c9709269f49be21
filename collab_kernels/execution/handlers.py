"""REST endpoints of server-side execution (see docs/architecture.md, "execution/").

All are under jupyter_server's authorization with resource ``kernels``: ``execute`` for running
cells and answering input, ``write`` for cancelling, ``read`` for status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized as _authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..contract import DONE
from ..handlers_base import CollabAPIHandler
from .body import parse_input
from .requests import ExecutionRequest

F = TypeVar("F", bound=Callable[..., Any])


def authorized(action: str) -> Callable[[F], F]:
    """jupyter_server's ``@authorized(action)``, typed."""
    return cast(Callable[[F], F], _authorized(action))


_kernel = r"(?P<kernel_id>[^/]+)"
_request = r"(?P<request_id>[^/]+)"


class ExecutionAPIHandler(CollabAPIHandler):
    auth_resource = "kernels"

    def limited_json_body(self, limit: int, trait: str) -> Any:
        """The JSON body, 413 if it is larger than ``limit`` bytes (the trait ``trait``)."""
        size = len(self.request.body or b"")
        if size > limit:
            raise web.HTTPError(
                413,
                f"The request body has {size} bytes; ExecutionManager.{trait} allows {limit}",
            )
        return self.json_body()

    def request_url(self, request: ExecutionRequest) -> str:
        return str(
            url_path_join(
                self.base_url, "api", "kernels", request.kernel_id, "requests", request.request_id
            )
        )

    def get_request_or_404(self, kernel_id: str | None, request_id: str) -> ExecutionRequest:
        request = self.execution_manager.get_request(kernel_id, request_id)
        if request is None:
            raise web.HTTPError(404, f"No execute request {request_id} on kernel {kernel_id}")
        return request


class ExecuteHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        manager = self.execution_manager
        body = self.limited_json_body(manager.max_execute_body_bytes, "max_execute_body_bytes")
        request = await self.execution_manager.submit(kernel_id, body, username=self.username)
        self.set_status(202)
        self.set_header("Location", self.request_url(request))
        body = request.to_dict()
        # As jupyter-server-nbmodel: where to poll, relative to the server's base URL (clients
        # such as jupyter-mcp-server join it to their server URL, which has the base URL).
        body["request_url"] = url_path_join(
            "/api/kernels", request.kernel_id, "requests", request.request_id
        )
        self.finish(json.dumps(body))


def status_view(
    request: ExecutionRequest, document_input_status: int = 202
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body of ``GET .../requests/{uid}``, in the nbmodel protocol:
    202 while queued or running, 300 while its code waits for ``input()``
    (``input_request``), 200 when done, with ``execution_count`` and, for ``{"code"}``
    executions, ``outputs`` (nbformat outputs as a JSON string, as jupyter-server-nbmodel
    sends them). The request's own fields come alongside.

    A document cell waiting for input answers ``document_input_status`` (202 by default:
    anyone in the document may answer, so the request is still running for its requester;
    jupyter-mcp-server's HTTP mode would take a 300 as the end of the cell); a scratch
    execution always answers 300."""
    body = request.to_dict()
    if request.input_request is not None:
        return (300 if request.document_id is None else document_input_status), body
    if request.status != DONE:
        return 202, body
    outputs = request.outputs
    if request.outputs_dropped:
        body["outputs_dropped"] = True
    elif outputs is not None:
        body["outputs"] = json.dumps(outputs)
    return 200, body


class RequestHandler(ExecutionAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self, kernel_id: str, request_id: str) -> None:
        request = self.get_request_or_404(kernel_id, request_id)
        code, body = status_view(request, self.execution_manager.document_input_status)
        self.set_status(code)
        if code == 300:
            self.set_header(
                "Location", url_path_join(self.base_url, "api", "kernels", kernel_id, "input")
            )
        self.finish(json.dumps(body))

    @web.authenticated
    @authorized("execute")
    async def delete(self, kernel_id: str, request_id: str) -> None:
        request = self.get_request_or_404(kernel_id, request_id)
        # As in jupyter-server-nbmodel, a DELETE stops the run, queued or running;
        # ?running=0 cancels only a request that has not started.
        running = self.get_query_argument("running", "1") not in ("0", "false", "")
        cancelled = self.execution_manager.cancel(request) or (
            running and await self.execution_manager.cancel_running(request)
        )
        if not cancelled:
            raise web.HTTPError(
                409,
                f"Execute request {request_id} is {request.status}; "
                + (
                    "it is over"
                    if request.status == DONE
                    else "?running=0 cancels only a queued one"
                ),
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
        manager = self.execution_manager
        spec = parse_input(
            self.limited_json_body(manager.max_input_body_bytes, "max_input_body_bytes")
        )
        self.execution_manager.answer_input(kernel_id, spec.document_id, spec.cell_id, spec.value)
        self.set_status(200)
        self.finish(json.dumps({"status": "ok"}))


default_handlers = [
    (rf"/api/kernels/{_kernel}/execute", ExecuteHandler),
    (rf"/api/kernels/{_kernel}/requests/{_request}", RequestHandler),
    (rf"/api/kernels/{_kernel}/requests", KernelRequestsHandler),
    (rf"/api/kernels/{_kernel}/input", InputHandler),
    (r"/api/collaboration/requests", AllRequestsHandler),
]
