"""Following a run in the terminal (``run`` and ``attach``): progress, outputs, prompts, timeout,
and the exit code a finished run gives."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

from ..contract import is_kernel_gone
from .cli_term import (
    EXIT_CANCELLED,
    EXIT_CELL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_TIMEOUT,
    StdinLines,
    no_echo,
    note,
    write,
)


class Watcher:
    """Follows a :class:`~collab_kernels.client.client.Run`: progress, outputs, prompts, timeout."""

    def __init__(
        self,
        run,
        *,
        log_output: bool,
        progress: bool,
        timeout: float | None,
        interrupted: asyncio.Event,
        stdin: StdinLines,
    ):
        self.run = run
        self.log_output = log_output
        self.timeout = timeout
        self.interrupted = interrupted
        self.stdin = stdin
        self.timed_out = False
        self.errors: list[tuple[int, Any]] = []
        self.done = 0
        self.total = len(run.cell_ids)
        self.current_started: float | None = None
        self.current = None
        self._prompt_task: asyncio.Task | None = None
        self._echo: str | None = None
        self.progress = None
        if progress and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[notebook]}[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task("queued", total=self.total, notebook=run.path)

    def _describe(self, event) -> str:
        first = (event.source.strip().splitlines() or [""])[0]
        if len(first) > 40:
            first = first[:39] + "…"
        return f"cell {event.position}/{event.total}: {first}"

    async def follow(self) -> dict | None:
        """Consume the run's events until it finishes; None if detached by Ctrl-C."""
        from .client import CellFinished, CellStarted, InputRequested, Output, RunFinished

        events = self.run.events()
        if self.progress is not None:
            self.progress.start()
        next_event: asyncio.Future | None = None
        interrupted = asyncio.ensure_future(self.interrupted.wait())
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(events.__anext__())
                wait = None
                if self.timeout and self.current_started is not None and not self.timed_out:
                    wait = max(0.0, self.current_started + self.timeout - time.monotonic())
                done, _ = await asyncio.wait(
                    {next_event, interrupted}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if interrupted in done:
                    return None
                if not done:
                    await self._on_timeout()
                    continue
                try:
                    event = next_event.result()
                except StopAsyncIteration:
                    return self.run.record
                next_event = None
                if isinstance(event, CellStarted):
                    self.current = event
                    self.current_started = time.monotonic()
                    if self.progress is not None:
                        self.progress.update(self.task, description=self._describe(event))
                elif isinstance(event, Output):
                    if (
                        self._echo is not None
                        and event.output_type == "stream"
                        and event.text == self._echo
                    ):
                        self._echo = None
                        continue
                    if event.output_type == "error":
                        self.errors.append((event.position, event.output))
                    if self.log_output:
                        stream = (
                            sys.stderr
                            if event.name == "stderr" or event.output_type == "error"
                            else sys.stdout
                        )
                        write(stream, event.text)
                elif isinstance(event, InputRequested):
                    self._start_prompt(event)
                elif isinstance(event, CellFinished):
                    self._stop_prompt()
                    self.done += 1
                    self.current_started = None
                    if self.progress is not None:
                        self.progress.update(self.task, completed=self.done)
                elif isinstance(event, RunFinished):
                    return event.status
        finally:
            self._stop_prompt()
            interrupted.cancel()
            if next_event is not None:
                next_event.cancel()
            with contextlib.suppress(BaseException):
                await events.aclose()
            if self.progress is not None:
                self.progress.stop()

    async def _on_timeout(self) -> None:
        self.timed_out = True
        where = f"cell {self.current.position}/{self.current.total}" if self.current else "a cell"
        note(
            f"collab-kernels: {where} ran longer than {self.timeout:g} s: "
            f"interrupting it and cancelling run {self.run.run_id}"
        )
        await self.run.cancel()

    # -- input() prompts ---------------------------------------------------------------------

    def _start_prompt(self, event) -> None:
        self._stop_prompt()
        self._prompt_task = asyncio.ensure_future(self._prompt(event))

    def _stop_prompt(self) -> None:
        if self._prompt_task is not None and not self._prompt_task.done():
            self._prompt_task.cancel()
        self._prompt_task = None

    async def _prompt(self, event) -> None:
        if self.progress is not None:
            self.progress.stop()
        try:
            sys.stderr.write(f"[cell {event.position}] {event.prompt}")
            sys.stderr.flush()
            with no_echo(event.password):
                value = await self.stdin.readline()
            if event.password or not sys.stdin.isatty():
                sys.stderr.write("\n")  # the terminal did not echo the newline
            if value is None:
                note(
                    "collab-kernels: stdin is closed; the prompt stays open "
                    "(answer it with `collab-kernels attach` or in JupyterLab)"
                )
                return
            await self.run.answer_input(value, event.cell_id)
            # The server echoes "prompt + value" into the cell's stdout; the user just saw it.
            self._echo = event.prompt + ("" if event.password else value) + "\n"
        finally:
            if self.progress is not None:
                self.progress.start()


def _kernel_died(status: dict, errors: list[tuple[Any, dict]] = ()) -> bool:
    """Whether the run ended because its kernel went away: the server then writes one of the
    error names of ``contract.KERNEL_GONE_ENAMES`` into the cell that was running."""
    cells = status.get("cells") or []
    return any(is_kernel_gone((c.get("error") or {}).get("ename")) for c in cells) or any(
        is_kernel_gone(o.get("ename")) for _, o in errors
    )


async def exit_code(run, status: dict | None, watcher: Watcher, allow_errors: bool) -> int:
    if status is None:
        return EXIT_INTERRUPTED
    result = status.get("result")
    if watcher.timed_out:
        return EXIT_TIMEOUT
    if result == "ok":
        return EXIT_OK
    if _kernel_died(status, watcher.errors):
        return EXIT_KERNEL_DIED
    if result == "cancelled":
        return EXIT_CANCELLED
    if allow_errors and result == "error":
        return EXIT_OK
    return EXIT_CELL_ERROR


def report(run, status: dict | None, code: int, watcher: Watcher, elapsed: float) -> None:
    if status is None:
        return
    words = {
        EXIT_OK: "finished",
        EXIT_CELL_ERROR: "failed: a cell raised an error",
        EXIT_KERNEL_DIED: "failed: the kernel died",
        EXIT_TIMEOUT: "timed out",
        EXIT_CANCELLED: "was cancelled",
    }
    note(
        f"collab-kernels: run {run.run_id} of {run.path} {words.get(code, status.get('result'))} "
        f"({watcher.done}/{watcher.total} cells, {elapsed:.1f} s)"
    )
    if code in (EXIT_CELL_ERROR,) and watcher.errors and not watcher.log_output:
        position, output = watcher.errors[-1]
        note(f"--- cell {position} ---")
        note(
            "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"])
        )
