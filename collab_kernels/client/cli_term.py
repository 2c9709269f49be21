"""The terminal side of ``collab-kernels``: exit codes, messages, stdin lines, hidden input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import TextIO

EXIT_OK = 0
EXIT_CELL_ERROR = 1
EXIT_USAGE = 2
EXIT_KERNEL_DIED = 3
EXIT_TIMEOUT = 4
EXIT_CANCELLED = 5
EXIT_SERVER = 6
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    the run finished and every cell succeeded (or --allow-errors was given, or a cell
       ended the run with sys.exit(0) / raise SystemExit, as papermill counts it)
  1    a cell raised an error; the run stopped there (its error is in the notebook)
  2    usage error: bad arguments, missing notebook, bad parameters, unknown run id, a
       kernel the server does not have, a notebook without a kernel name and no -k
  3    the kernel died during the run, or did not start within --start-timeout
  4    a cell ran longer than --timeout; it was interrupted and the run cancelled
  5    the run was cancelled (`collab-kernels cancel`, or from another client)
  6    the server could not be reached, refused the token, or answered with an error
  130  Ctrl-C: `attach` and `run --server` detach (the run goes on in the server);
       `run` with its embedded server cancels the run and stops the server
With --exit-codes papermill (or COLLAB_KERNELS_EXIT_CODES=papermill) the codes are
papermill's: 0 ok, 138 dead kernel, 2 bad arguments, 1 everything else.
"""

#: papermill 2.7's exit code for each of ours (measured: a dead kernel exits 138 there)
PAPERMILL_EXIT_CODES = {
    EXIT_OK: 0,
    EXIT_CELL_ERROR: 1,
    EXIT_KERNEL_DIED: 138,
    EXIT_TIMEOUT: 1,
    EXIT_CANCELLED: 1,
    EXIT_SERVER: 1,
    EXIT_INTERRUPTED: 130,
}


class UsageError(Exception):
    """Bad arguments, a missing notebook, bad parameters, an unknown run: exit code 2."""


class KernelSpecError(UsageError):
    """No kernel name, or a kernel the server does not have (papermill: exit code 1)."""


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain(text: str, stream: TextIO) -> str:
    return text if getattr(stream, "isatty", lambda: False)() else _ANSI.sub("", text)


def write(stream: TextIO, text: str) -> None:
    if not text.endswith("\n"):
        text += "\n"
    stream.write(_plain(text, stream))
    stream.flush()


def note(text: str) -> None:
    write(sys.stderr, text)


def note_detached(run_id: str) -> None:
    note(
        f"collab-kernels: detached; run {run_id} goes on. "
        f"`collab-kernels attach {run_id}` to come back"
    )


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StdinLines:
    """Reads stdin lines without blocking the event loop (kept buffered across prompts)."""

    def __init__(self, closed: bool = False) -> None:
        self.buffer = b""
        self.eof = closed  # closed: no stdin at all (the Python API)

    async def readline(self) -> str | None:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buffer and not self.eof:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                self.eof = True
                break
            ready: asyncio.Future[None] = loop.create_future()
            try:
                loop.add_reader(fd, _set_done, ready)
            except (OSError, ValueError, NotImplementedError, PermissionError):
                # a regular file (e.g. `< answers.txt`): read it directly
                data = os.read(fd, 65536)
                self.buffer += data
                self.eof = not data
                continue
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            data = os.read(fd, 65536)
            if not data:
                self.eof = True
            self.buffer += data
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            return line.decode("utf-8", "replace").rstrip("\r")
        if self.buffer:
            line, self.buffer = self.buffer, b""
            return line.decode("utf-8", "replace")
        return None


@contextlib.contextmanager
def no_echo(enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stdin.isatty():
        yield
        return
    import termios

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
