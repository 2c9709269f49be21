"""The outputs of one execution as plain nbformat JSON: what a request's status returns.

Clients of the jupyter-server-nbmodel protocol (``{"code"}`` executions, with or without a
cell) read the outputs of their execution from ``GET /api/kernels/{id}/requests/{uid}``
instead of from a document. An :class:`OutputCollector` applies the kernel's output messages
to a list of nbformat outputs the way a notebook would (streams merged, ``\\r`` resolved,
``clear_output``, ``update_display_data`` within the execution), within a byte budget.
Pure: no kernel, no document.
"""

from __future__ import annotations

from typing import Any

from .outputs import display_id_of, output_from_message
from .terminal import resolve_stream_text


class OutputCollector:
    """Outputs of one execution, at most ``limit`` bytes of text and data (then a note)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.outputs: list[dict[str, Any]] = []
        self.size = 0
        self.truncated = False
        self._clear_pending = False
        self._displays: dict[str, list[int]] = {}

    def _clear(self) -> None:
        self.outputs.clear()
        self._displays.clear()
        self.size = 0
        self._clear_pending = False

    def _fits(self, added: int) -> bool:
        if self.size + added <= self.limit:
            self.size += added
            return True
        if not self.truncated:
            self.truncated = True
            self.outputs.append(
                {
                    "output_type": "stream",
                    "name": "stderr",
                    "text": f"[further output not kept: over {self.limit} bytes]\n",
                }
            )
        return False

    def add(self, msg_type: str, content: dict[str, Any]) -> None:
        """Apply one iopub message of the execution."""
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self._clear()
            return
        if msg_type == "update_display_data":
            display_id = display_id_of(content)
            for index in self._displays.get(display_id or "", ()):
                shown = self.outputs[index]
                shown["data"] = dict(content.get("data") or {})
                shown["metadata"] = dict(content.get("metadata") or {})
            return
        new = output_from_message(msg_type, content)
        if new is None:
            return
        output = new
        if self._clear_pending:
            self._clear()
        if self.truncated:
            return
        if not self._fits(_size_of(output)):
            return
        last = self.outputs[-1] if self.outputs else None
        if (
            output["output_type"] == "stream"
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == output["name"]
        ):
            last["text"] = resolve_stream_text(str(last["text"]) + str(output["text"]))
            return
        if output["output_type"] == "stream":
            output["text"] = resolve_stream_text(str(output["text"]))
        self.outputs.append(output)
        display_id = display_id_of(content)
        if display_id is not None:
            self._displays.setdefault(display_id, []).append(len(self.outputs) - 1)

    def add_output(self, output: dict[str, Any]) -> None:
        """An output the server writes itself (an error saying the kernel went away)."""
        if self._fits(_size_of(output)):
            self.outputs.append(dict(output))


def _size_of(output: dict[str, Any]) -> int:
    size = 0
    for key in ("text", "ename", "evalue"):
        value = output.get(key)
        if isinstance(value, str):
            size += len(value)
    for line in output.get("traceback") or ():
        size += len(str(line))
    for value in (output.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    return size
