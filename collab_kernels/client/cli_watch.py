"""Following a run in the terminal (``run`` and ``attach``): progress, outputs, prompts, timeout,
and the exit code a finished run gives."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from ..contract import KERNEL_NOT_READY, is_kernel_gone
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
from .papermill import is_clean_exit
from .records import CellFinished, CellStarted, InputRequested, Output, RunEvent, RunFinished

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from .records import RunRecord
    from .run import Run

Listener = Callable[[RunEvent], None]


class Watcher:
    """Follows a :class:`~collab_kernels.client.client.Run`: progress, outputs, prompts, timeout."""

    def __init__(
        self,
        run: Run,
        *,
        log_output: bool,
        progress: bool,
        timeout: float | None,
        interrupted: asyncio.Event,
        stdin: StdinLines,
        listeners: Sequence[Listener] = (),
        stdout: TextIO | None = None,
    ):
        self.run = run
        self.log_output = log_output
        self.timeout = timeout
        self.interrupted = interrupted
        self.stdin = stdin
        self.listeners = list(listeners)
        #: where --log-output prints stdout (stderr when the notebook itself goes to stdout)
        self.stdout = stdout
        self.timed_out = False
        self.stdin_closed = False
        self.errors: list[tuple[int, dict[str, Any]]] = []
        self.done = 0
        self.total = len(run.cell_ids)
        self.current_started: float | None = None
        self.current: CellStarted | None = None
        self._prompt_task: asyncio.Task[None] | None = None
        self._echo: str | None = None
        self.progress: Progress | None = None
        self.task: TaskID | None = None
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

    def _describe(self, event: CellStarted) -> str:
        first = (event.source.strip().splitlines() or [""])[0]
        if len(first) > 40:
            first = first[:39] + "…"
        return f"cell {event.position}/{event.total}: {first}"

    async def follow(self) -> RunRecord | None:
        """Consume the run's events until it finishes; None if detached by Ctrl-C."""
        events = cast(AsyncGenerator[RunEvent, None], self.run.events())
        if self.progress is not None:
            self.progress.start()
        next_event: asyncio.Future[RunEvent] | None = None
        interrupted: asyncio.Future[Any] = asyncio.ensure_future(self.interrupted.wait())
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
                for listener in self.listeners:
                    listener(event)
                if isinstance(event, CellStarted):
                    self.current = event
                    self.current_started = time.monotonic()
                    if self.progress is not None and self.task is not None:
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
                            else (self.stdout or sys.stdout)
                        )
                        write(stream, event.text)
                elif isinstance(event, InputRequested):
                    self._start_prompt(event)
                elif isinstance(event, CellFinished):
                    self._stop_prompt()
                    self.done += 1
                    self.current_started = None
                    if self.progress is not None and self.task is not None:
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

    def _start_prompt(self, event: InputRequested) -> None:
        self._stop_prompt()
        self._prompt_task = asyncio.ensure_future(self._prompt(event))

    def _stop_prompt(self) -> None:
        if self._prompt_task is not None and not self._prompt_task.done():
            self._prompt_task.cancel()
        self._prompt_task = None

    async def _prompt(self, event: InputRequested) -> None:
        if self.stdin.eof and not self.stdin.buffer:
            await self._refuse_prompt(event)
            return
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
                await self._refuse_prompt(event)
                return
            await self.run.answer_input(value, event.cell_id)
            # The server echoes "prompt + value" into the cell's stdout; the user just saw it.
            self._echo = event.prompt + ("" if event.password else value) + "\n"
        finally:
            if self.progress is not None:
                self.progress.start()

    async def _refuse_prompt(self, event: InputRequested) -> None:
        """stdin is closed: nobody can answer, so the cell fails now (papermill's
        StdinNotImplementedError) instead of waiting for the input timeout."""
        self.stdin_closed = True
        note(
            f"collab-kernels: cell {event.position} called input() but stdin is closed: "
            "interrupting it (give the run a stdin to answer, or --detach and "
            "`collab-kernels attach`)"
        )
        await self.run.interrupt()


def _first_error(status: RunRecord) -> tuple[str | None, str | None]:
    for cell in status.get("cells") or []:
        if cell.get("result") == "error":
            error = cell.get("error") or {}
            return error.get("ename"), error.get("evalue")
    return None, None


def kernel_died(status: RunRecord, errors: Sequence[tuple[int, dict[str, Any]]] = ()) -> bool:
    """Whether the run ended because its kernel went away (or never became ready): the server
    then writes one of the error names of :mod:`~collab_kernels.contract` into the cell."""
    names = [(c.get("error") or {}).get("ename") for c in status.get("cells") or []]
    names += [o.get("ename") for _, o in errors]
    return any(is_kernel_gone(n) or n == KERNEL_NOT_READY for n in names)


def exit_code(status: RunRecord | None, watcher: Watcher, allow_errors: bool) -> int:
    """The exit code of a finished run (see ``EXIT_CODES_HELP``)."""
    if status is None:
        return EXIT_INTERRUPTED
    result = status.get("result")
    if watcher.timed_out:
        return EXIT_TIMEOUT
    if result == "ok":
        return EXIT_OK
    if kernel_died(status, watcher.errors):
        return EXIT_KERNEL_DIED
    if result == "cancelled":
        return EXIT_CANCELLED
    if result == "error" and (allow_errors or is_clean_exit(*_first_error(status))):
        return EXIT_OK  # sys.exit(0) / raise SystemExit: a success, as in papermill
    return EXIT_CELL_ERROR


def report(run: Run, status: RunRecord | None, code: int, watcher: Watcher, elapsed: float) -> None:
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
