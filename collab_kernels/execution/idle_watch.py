"""The idle-grace check: a cell whose execute_reply came but whose iopub idle never did.

A kernel's PUB socket drops messages for a subscriber that could not read (a server process
that got no CPU for a while, a full unix-socket buffer): the idle status that ends a cell can
be among them. Without this check such a cell would stay ``[*]`` for ever. After the reply,
:class:`IdleWatch` waits while the kernel keeps delivering the run's messages; once iopub
has been quiet for ``grace`` seconds, the cell ends with :func:`lost_output_notice` in its
outputs and a warning in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..contract import RUNNING
from .ports import Log
from .routing import Route


def lost_output_notice() -> dict[str, Any]:
    """The stderr line a cell gets when the kernel's end-of-cell status was lost."""
    return {
        "output_type": "stream",
        "name": "stderr",
        "text": (
            "[collab_kernels] The kernel's end-of-cell status never reached the server; "
            "some output of this cell may be missing.\n"
        ),
    }


class IdleWatch:
    """Ends cells whose idle status was lost, ``grace`` seconds after iopub went quiet.

    ``end_cell(route, extra_outputs)`` completes the cell in the document (the runner's
    ``complete_cell``); the watch then resolves the cell's ``finished`` future.
    """

    def __init__(
        self,
        *,
        grace: Callable[[], float],
        end_cell: Callable[[Route, list[dict[str, Any]]], None],
        log: Log,
    ):
        self.grace = grace
        self.end_cell = end_cell
        self.log = log

    def reply_seen(self, route: Route) -> None:
        """The run's execute_reply arrived: watch for its idle (no-op when the grace is 0
        or the idle came first)."""
        run = route.run
        grace = self.grace()
        if run is None or grace <= 0 or run.idle_seen:
            return
        asyncio.get_event_loop().call_later(grace, self._check, route, grace)

    def _check(self, route: Route, grace: float) -> None:
        run = route.run
        if run is None or run.idle_seen or run.finished is None or run.finished.done():
            return
        quiet = time.monotonic() - run.last_heard
        if quiet < grace:
            asyncio.get_event_loop().call_later(grace - quiet, self._check, route, grace)
            return
        request = route.request
        self.log.warning(
            "collab_kernels: cell %s of %s: the kernel's end-of-cell status never arrived "
            "(%.1f s after its reply); some of its output may have been lost, ending the cell",
            run.cell_id,
            request.path if request is not None else "a scratch execution",
            quiet,
        )
        run.idle_seen = True
        if request is not None and run.status == RUNNING:
            self.end_cell(route, [lost_output_notice()])
        run.finished.set_result(None)
