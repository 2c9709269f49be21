"""The execute requests of documents still running on a gateway kernel, kept on disk.

A restarted Jupyter server adopts the gateway kernels of its saved sessions; the gateway
replays what they sent while no server was connected. Which cell each replayed message
belongs to was the previous process's routing table: this small file per kernel (message
id -> document, cell, execution count), written when a request is sent, when it starts
and when it ends, lets the new process route the replay to those cells.
"""

from __future__ import annotations

import json
import logging
import typing as t
from pathlib import Path


class InflightRequests:
    """``msg_id -> {"document_id", "cell_id", "execution_count"}``, saved to ``path``."""

    def __init__(self, path: Path | None, log: logging.Logger | logging.LoggerAdapter[t.Any]):
        self.path = path
        self.log = log
        self.requests: dict[str, dict[str, t.Any]] = {}

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self.requests

    def __len__(self) -> int:
        return len(self.requests)

    def track(self, header: dict[str, t.Any], metadata: dict[str, t.Any]) -> None:
        """An execute request was sent: kept if it names its document and cell."""
        if self.path is None or header.get("msg_type") != "execute_request":
            return
        document_id, cell_id = metadata.get("documentId"), metadata.get("cellId")
        if not (isinstance(document_id, str) and isinstance(cell_id, str)):
            return
        self.requests[str(header.get("msg_id"))] = {
            "document_id": document_id,
            "cell_id": cell_id,
            "execution_count": None,
        }
        self.save()

    def started(self, msg_id: str, execution_count: t.Any) -> None:
        if msg_id in self.requests:
            self.requests[msg_id]["execution_count"] = execution_count
            self.save()

    def ended(self, msg_id: str) -> None:
        if self.requests.pop(msg_id, None) is not None:
            self.save()

    def clear(self) -> None:
        self.requests.clear()
        self.save()

    def save(self) -> None:
        path = self.path
        if path is None:
            return
        try:
            if not self.requests:
                path.unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.requests))
            tmp.replace(path)
        except OSError as e:
            self.log.warning("collab_kernels: cannot keep running requests in %s: %s", path, e)

    def load(self) -> dict[str, dict[str, t.Any]]:
        """What the previous server process kept (also kept here from now on)."""
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if isinstance(data, dict):
            self.requests = {
                str(k): v for k, v in data.items() if isinstance(v, dict) and "cell_id" in v
            }
        return dict(self.requests)


__all__ = ["InflightRequests"]
