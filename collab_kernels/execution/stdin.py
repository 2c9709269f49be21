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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.web import HTTPError

from ..kernels.message import KernelMessage
from .outputs import error_output
from .ports import Log
from .requests import CellRun, ExecutionRequest, InputPrompt
from .routing import KernelLink, Route
from .writer_pool import WriterPool


@dataclass(eq=False)
class PendingInput:
    link: KernelLink
    route: Route
    request: ExecutionRequest
    header: dict[str, Any]
    prompt: str
    password: bool
    timer: asyncio.TimerHandle | None = None


class InputBroker:
    """Pending ``input()`` prompts of server-side executions, by (document, cell).

    ``publish(document_id)`` shows a change of prompts to the document's collaborators
    (the queue entries); ``interrupt(kernel_id)`` stops a kernel whose prompt timed out.
    """

    def __init__(
        self,
        writers: WriterPool,
        *,
        timeout: Callable[[], float],
        publish: Callable[[str], None],
        interrupt: Callable[[str], Awaitable[None]],
        log: Log,
    ):
        self.writers = writers
        self.timeout = timeout
        self.publish = publish
        self.interrupt = interrupt
        self.log = log
        self.pending: dict[tuple[str, str], PendingInput] = {}

    def on_input_request(self, link: KernelLink, route: Route, msg: KernelMessage) -> None:
        request, run = route.request, route.run
        if request is None or run is None:
            return
        content = msg.content
        pending = PendingInput(
            link=link,
            route=route,
            request=request,
            header=dict(msg.header),
            prompt=str(content.get("prompt", "")),
            password=bool(content.get("password", False)),
        )
        key = (request.queue_key, route.cell_id)
        old = self.pending.pop(key, None)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        self.pending[key] = pending
        timeout = self.timeout()
        if timeout and timeout > 0:
            pending.timer = asyncio.get_event_loop().call_later(
                timeout, lambda: asyncio.ensure_future(self._timed_out(key, pending))
            )
        request.input_request = InputPrompt(route.cell_id, pending.prompt, pending.password)
        self.log.info(
            "collab_kernels: cell %s of %s waits for input (prompt %r)",
            route.cell_id,
            request.path,
            pending.prompt,
        )
        if route.document_id is not None:
            self.publish(route.document_id)

    def answer(
        self, kernel_id: str, document_id: str | None, cell_id: str | None, value: str
    ) -> None:
        """Answer the prompt of ``cell_id`` of ``document_id``; with both None, the kernel's
        one pending prompt (the nbmodel protocol's ``{"input"}``)."""
        if document_id is None or cell_id is None:
            keys = [k for k, p in self.pending.items() if p.link.kernel_id == kernel_id]
            if len(keys) != 1:
                raise HTTPError(
                    409,
                    f"Kernel {kernel_id} has {len(keys)} pending input prompts; answer one "
                    "with {document_id, cell_id, value}"
                    if keys
                    else f"No execution on kernel {kernel_id} is waiting for input",
                )
            key = keys[0]
        else:
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
        echo = {
            "name": "stdout",
            "text": pending.prompt + ("" if pending.password else value) + "\n",
        }
        self._write(pending, "stream", echo)
        self._clear(pending)

    def _write(self, pending: PendingInput, msg_type: str, content: dict[str, Any]) -> None:
        """An output the server adds to the prompting cell (its document, its result)."""
        run, route = pending.route.run, pending.route
        if run is not None and run.outputs is not None:
            run.outputs.add(msg_type, content)
        if route.document_id is not None:
            self.writers.get(route.document_id).enqueue(route.cell_id, msg_type, content)

    def _clear(self, pending: PendingInput) -> None:
        pending.request.input_request = None
        if pending.route.document_id is not None:
            self.publish(pending.route.document_id)

    async def _timed_out(self, key: tuple[str, str], pending: PendingInput) -> None:
        if self.pending.get(key) is not pending:
            return
        del self.pending[key]
        timeout = self.timeout()
        self.log.warning(
            "collab_kernels: input() in cell %s of %s got no answer within %ss; interrupting "
            "kernel %s",
            pending.route.cell_id,
            pending.request.path,
            timeout,
            pending.link.kernel_id,
        )
        output = error_output(
            "StdinTimeout",
            f"input() got no answer within {timeout:g} s; the kernel was interrupted.",
        )
        self._write(pending, "error", {k: v for k, v in output.items() if k != "output_type"})
        self._clear(pending)
        try:
            await self.interrupt(pending.link.kernel_id)
        except Exception:
            self.log.exception(
                "collab_kernels: could not interrupt kernel %s", pending.link.kernel_id
            )

    def cancel(self, request: ExecutionRequest, run: CellRun) -> None:
        key = (request.queue_key, run.cell_id)
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
