"""``input()`` in server-side executions.

Server-side execute requests are sent with ``allow_stdin=True`` by the document listener, which
also receives the kernel's ``input_request`` (stdin replies to a request go to the listener that
sent it). A pending prompt is:

- visible in the document: the cell's entry of the ``execution`` root map gets
  ``"input_request": {"prompt", "password"}`` (never saved to the file);
- visible in ``GET /api/kernels/{id}/requests/{request_id}`` as ``input_request``;
- answered by any collaborator allowed to execute on the kernel, or the CLI, with
  ``POST /api/kernels/{id}/input {"document_id","cell_id","value"}``.

The answer is echoed into the cell's stdout like a terminal would (``prompt + value``; a
password is not echoed). A prompt nobody answers within ``ExecutionManager.input_timeout``
seconds gets an error output saying so, and the kernel is interrupted so that the queue moves
on instead of waiting forever.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado.web import HTTPError

from .outputs import error_output
from .queue import utcnow

if TYPE_CHECKING:  # pragma: no cover
    from .link import KernelLink, Route
    from .manager import ExecutionManager
    from .queue import CellRun, ExecutionRequest


@dataclass(eq=False)
class PendingInput:
    link: KernelLink
    route: Route
    header: dict[str, Any]
    prompt: str
    password: bool
    timer: asyncio.TimerHandle | None = None


class InputBroker:
    def __init__(self, manager: ExecutionManager):
        self.manager = manager
        # (document_id, cell_id) -> pending prompt
        self.pending: dict[tuple[str, str], PendingInput] = {}

    def on_input_request(self, link: KernelLink, route: Route, msg: Any) -> None:
        request, run = route.request, route.run
        if request is None or run is None:
            return
        content = msg.content
        pending = PendingInput(
            link=link,
            route=route,
            header=dict(msg.header),
            prompt=str(content.get("prompt", "")),
            password=bool(content.get("password", False)),
        )
        key = (route.document_id, route.cell_id)
        old = self.pending.pop(key, None)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        self.pending[key] = pending
        timeout = self.manager.input_timeout
        if timeout and timeout > 0:
            pending.timer = asyncio.get_event_loop().call_later(
                timeout, lambda: asyncio.ensure_future(self._timed_out(key, pending))
            )
        request.input_request = {
            "cell_id": route.cell_id,
            "prompt": pending.prompt,
            "password": pending.password,
            "requested": utcnow(),
        }
        self.manager.log.info(
            "collab_kernels: cell %s of %s waits for input (prompt %r)",
            route.cell_id,
            request.path,
            pending.prompt,
        )
        self._publish(route.document_id)

    def _publish(self, document_id: str) -> None:
        queue = self.manager.queues.get(document_id)
        if queue is not None:
            self.manager._publish_queue(queue)

    def answer(self, kernel_id: str, document_id: str, cell_id: str, value: str) -> None:
        key = (document_id, cell_id)
        pending = self.pending.get(key)
        if pending is None or pending.link.kernel_id != kernel_id:
            raise HTTPError(409, f"Cell {cell_id} is not waiting for input on kernel {kernel_id}")
        del self.pending[key]
        if pending.timer is not None:
            pending.timer.cancel()
        client = pending.link.client
        reply = client.session.msg("input_reply", {"value": value}, parent=pending.header)
        client.send("stdin", reply)
        echo = pending.prompt + ("" if pending.password else value) + "\n"
        self.manager.writer(document_id).enqueue(
            cell_id, "stream", {"name": "stdout", "text": echo}
        )
        self._clear(pending)

    def _clear(self, pending: PendingInput) -> None:
        request = pending.route.request
        if request is not None:
            request.input_request = None
        self._publish(pending.route.document_id)

    async def _timed_out(self, key: tuple[str, str], pending: PendingInput) -> None:
        if self.pending.get(key) is not pending:
            return
        del self.pending[key]
        timeout = self.manager.input_timeout
        self.manager.log.warning(
            "collab_kernels: input() in cell %s of %s got no answer within %ss; interrupting "
            "kernel %s",
            pending.route.cell_id,
            pending.route.request.path if pending.route.request else pending.route.document_id,
            timeout,
            pending.link.kernel_id,
        )
        output = error_output(
            "StdinTimeout",
            f"input() got no answer within {timeout:g} s; the kernel was interrupted.",
        )
        self.manager.writer(pending.route.document_id).enqueue(
            pending.route.cell_id,
            "error",
            {k: v for k, v in output.items() if k != "output_type"},
        )
        self._clear(pending)
        try:
            await self.manager.interrupt(pending.link.kernel_id)
        except Exception:
            self.manager.log.exception(
                "collab_kernels: could not interrupt kernel %s", pending.link.kernel_id
            )

    def cancel(self, request: ExecutionRequest, run: CellRun) -> None:
        key = (request.document_id, run.cell_id)
        pending = self.pending.get(key)
        if pending is not None and pending.route.run is run:
            del self.pending[key]
            if pending.timer is not None:
                pending.timer.cancel()
            request.input_request = None

    def cancel_all(self) -> None:
        for pending in self.pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self.pending.clear()
