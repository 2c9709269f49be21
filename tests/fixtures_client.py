"""Fixtures for the client and CLI tests: notebooks on disk, the server's URL and token, and
the ``collab-kernels`` command run as a real subprocess against the test server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from collab_kernels.client.servers import ServerInfo

CLI = str(Path(sys.executable).with_name("collab-kernels"))


def write_notebook(path: Path, cells: list) -> Path:
    """``cells``: sources, or ``(source, tags)``, or ``("markdown", text)`` pairs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for cell in cells:
        if isinstance(cell, tuple) and cell[0] == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        elif isinstance(cell, tuple):
            nb.cells.append(nbformat.v4.new_code_cell(cell[0], metadata={"tags": list(cell[1])}))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def read_notebook(path: Path):
    return nbformat.read(path, as_version=4)


def stream_text(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


@pytest.fixture
def make_notebook(jp_root_dir):
    def make(name: str, cells: list) -> Path:
        return write_notebook(Path(jp_root_dir) / name, cells)

    return make


@pytest.fixture
def server_info(jp_serverapp, http_server, jp_http_port, jp_base_url) -> ServerInfo:
    """The test server (listening: `http_server` serves its web app) as a ServerInfo."""
    return ServerInfo(
        url=f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        token=jp_serverapp.identity_provider.token,
        root_dir=str(jp_serverapp.root_dir),
    )


class CLIProcess:
    """A running ``collab-kernels`` subprocess whose output lines can be awaited."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        self._readers = [
            asyncio.ensure_future(self._read(proc.stdout, self.stdout)),
            asyncio.ensure_future(self._read(proc.stderr, self.stderr)),
        ]

    async def _read(self, stream, sink: list[str]) -> None:
        while True:
            chunk = await stream.read(65536)  # not by line: prompts end without a newline
            if not chunk:
                break
            sink.append(chunk.decode("utf-8", "replace"))
            self._changed.set()
        self._changed.set()

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return "".join(self.stderr)

    async def wait_for_output(
        self, pattern: str, timeout: float = 60, stream: str = "stdout"
    ) -> re.Match:
        """Wait until stdout (or stderr) matches ``pattern``; fails if the process ends first."""
        regex = re.compile(pattern, re.M)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            match = regex.search(self.out if stream == "stdout" else self.err)
            if match:
                return match
            if all(r.done() for r in self._readers):
                raise AssertionError(
                    f"collab-kernels ended without {pattern!r}:\n{self.out}\n{self.err}"
                )
            self._changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.out}\n{self.err}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        await self.proc.stdin.drain()

    async def wait(self, timeout: float = 120) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(asyncio.gather(*self._readers), timeout)
        return code


class Processes:
    """The subprocesses a test starts (stdin, stdout and stderr piped, unbuffered Python);
    ``kill()`` ends those still running, at the test's end."""

    def __init__(self) -> None:
        self.started: list[CLIProcess] = []

    async def start(self, *argv: str, cwd: Path, env: dict[str, str] | None = None) -> CLIProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        )
        process = CLIProcess(proc)
        self.started.append(process)
        return process

    def kill(self) -> None:
        for process in self.started:
            if process.proc.returncode is None:
                process.proc.kill()


@pytest.fixture
def start_cli(jp_root_dir):
    """Start ``collab-kernels ARGS...`` (cwd: the server root); returns a CLIProcess."""
    processes = Processes()

    async def start(*args: str, cwd: Path | None = None) -> CLIProcess:
        return await processes.start(CLI, *args, cwd=cwd or jp_root_dir, env={"NO_COLOR": "1"})

    yield start
    processes.kill()


@pytest.fixture
def cli(start_cli):
    """Run ``collab-kernels ARGS...`` to the end: (exit code, stdout, stderr)."""

    async def run(
        *args: str, stdin: str | None = None, timeout: float = 120, cwd: Path | None = None
    ):
        p = await start_cli(*args, cwd=cwd)
        if stdin is not None:
            await p.send(stdin)
        p.proc.stdin.close()
        code = await p.wait(timeout)
        return code, p.out, p.err

    return run


@pytest.fixture
def server_args(server_info) -> list[str]:
    return ["--server", server_info.url, "--token", server_info.token]
