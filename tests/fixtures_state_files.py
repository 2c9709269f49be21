"""Shared by the update store's state-file tests: a Y document whose updates are taken in
turn, and state files and stores that pause or fail on purpose."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pycrdt import Doc, Text

from collab_kernels.rooms.state_files import STATE_FILE_BYTES, StateFiles
from collab_kernels.rooms.store import SQLiteUpdateStore

BIG = 2 * STATE_FILE_BYTES  # a state this size goes to a file, in more than one piece


def text_of(updates: list[bytes]) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


class Room:
    """A Y document with one text, and the updates made to it since the last ``take``."""

    def __init__(self, text: str = ""):
        self.doc: Doc = Doc()
        self.text = self.doc.get("t", type=Text)
        self.text += text
        self._updates: list[bytes] = []
        self.doc.observe(lambda event: self._updates.append(event.update))

    def state(self) -> bytes:
        return self.doc.get_update()

    def edit(self, more: str) -> list[bytes]:
        self.text += more
        updates, self._updates = self._updates, []
        return updates


def state_names(path: str) -> list[str]:
    return sorted(os.listdir(path + ".states"))


class PausedFiles(StateFiles):
    """A state file write that stops after its first piece until ``resume`` is set."""

    writing = threading.Event()
    resume = threading.Event()

    def _write_piece(self, fd: int, piece: memoryview) -> None:
        super()._write_piece(fd, piece)
        if not self.writing.is_set():
            self.writing.set()
            assert self.resume.wait(30)


class PausedStore(SQLiteUpdateStore):
    state_files_class = PausedFiles


class FailingFiles(StateFiles):
    """The disk fails after the first piece of a state (ENOSPC)."""

    def _write_piece(self, fd: int, piece: memoryview) -> None:
        if os.fstat(fd).st_size:
            raise OSError(28, "No space left on device")
        super()._write_piece(fd, piece)


class FailingStore(SQLiteUpdateStore):
    state_files_class = FailingFiles


@contextlib.contextmanager
def killed_after(script: str, *args: str) -> Iterator[IO[str]]:
    """A Python process running ``script`` with ``args``, its output read by the block, and
    killed (SIGKILL, as a crashed server) when the block ends."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
