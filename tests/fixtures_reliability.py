"""Fixtures for the reliability tests: a real ``jupyter server`` process one can ``kill -9``.

- ``ServerProcess(root, home, token=..., config=[...])``: ``start()`` runs
  ``python -m jupyter_server`` with collab_kernels on a free loopback port, with its own
  Jupyter config/data/runtime dirs under ``home`` (so the file id database and the update
  store survive a restart of the same ``home``); ``kill9()`` sends SIGKILL to the server and
  to every process it started (kernels included: nothing is left running); ``stop()`` ends it
  politely. ``api(method, path, json=...)`` is an httpx call with the token.
- ``server_process``: a factory fixture that kills whatever is left at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

TOKEN = "reliability-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), deepest last."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


class ServerProcess:
    def __init__(self, root: Path, home: Path, *, token: str = TOKEN, config: list[str] = ()):
        self.root = root
        self.home = home
        self.token = token
        self.config = list(config)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = home / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("config", "data", "runtime"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        env["JUPYTER_CONFIG_DIR"] = str(self.home / "config")
        extensions = {"collab_kernels": True, "jupyter_server_fileid": True}
        (self.home / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": extensions}})
        )
        env["JUPYTER_DATA_DIR"] = str(self.home / "data")
        env["JUPYTER_RUNTIME_DIR"] = str(self.home / "runtime")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JPY_SESSION_NAME", None)
        return env

    async def start(self, timeout: float = 60) -> ServerProcess:
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            *self.config,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept for the process's life
        self.proc = subprocess.Popen(
            args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root
        )
        log.close()
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    r = await client.get(self.base_url + "api/status", headers=self.headers)
                    if r.status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")
                await asyncio.sleep(0.2)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.request(
                method, self.base_url + path.lstrip("/"), headers=self.headers, **kwargs
            )

    def kill9(self) -> None:
        """SIGKILL the server and everything it started, at once."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = descendants(self.proc.pid)
        for pid in [self.proc.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        children = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        for pid in children:  # kernels the server did not get to shut down
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def server_process(tmp_path):
    started: list[ServerProcess] = []

    def make(root: Path | None = None, home: Path | None = None, **kwargs) -> ServerProcess:
        root = root or tmp_path / "root"
        home = home or tmp_path / "home"
        root.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        server = ServerProcess(root, home, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill9()
