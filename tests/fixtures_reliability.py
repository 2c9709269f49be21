"""Fixtures for the reliability tests: a real ``jupyter server`` process one can ``kill -9``.

- ``ServerProcess(root, home, token=..., config=[...])``: ``start()`` runs
  ``python -m jupyter_server`` with collab_kernels on a free loopback port, with its own
  Jupyter config/data/runtime dirs under ``home`` (so the file id database and the update
  store survive a restart of the same ``home``); ``kill9()`` sends SIGKILL to the server and
  to every process it started (kernels included: nothing is left running); ``stop()`` ends it
  politely. ``api(method, path, json=...)`` is an httpx call with the token;
  ``open_notebook(path)`` starts a kernel session and the collaboration session of a notebook.
- ``server_process``: a factory fixture that kills whatever is left at teardown.

Fuzzing helpers (test_fuzz_*.py): hypothesis cannot drive a coroutine test on pytest-jupyter's
running loop, so inputs are drawn first (``draw``: a derandomized ``@given`` run collecting
what it generates, so a CI run is reproducible) and then played against the real server.
``FUZZ_SCALE`` (environment variable, default 1) multiplies the number of inputs.
``room_frames`` / ``mutated_updates`` make y-websocket frames; ``FrameProber`` plays one
frame on a raw room websocket and reports whether the server closed it (and with what code).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, write_var_uint
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

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
        log = open(self.log_path, "ab")
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

    async def open_notebook(self, path: str) -> tuple[str, str, str]:
        """Start a python3 kernel session for the notebook ``path`` and open its
        collaboration session; returns (kernel_id, session_id, document_id)."""
        body = {"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}}
        r = await self.api("POST", "api/sessions", json=body)
        assert r.status_code == 201, r.text
        kernel_id, session_id = r.json()["kernel"]["id"], r.json()["id"]
        r = await self.api(
            "PUT", f"api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
        )
        assert r.status_code in (200, 201), r.text
        return kernel_id, session_id, f"json:notebook:{r.json()['fileId']}"

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


# --- fuzzing ---------------------------------------------------------------------------------
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
#: every figure the fuzz tests measured in this process (printed at the end of each test)
FIGURES: dict[str, int] = {}


def count(name: str, n: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + n


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


def draw(strategy: st.SearchStrategy, n: int) -> list[Any]:
    """``n`` examples of ``strategy`` (reproducible: derandomized, no example database)."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


# --- y-websocket frames ----------------------------------------------------------------------
def var_bytes(payload: bytes, lie: int = 0) -> bytes:
    return write_var_uint(max(len(payload) + lie, 0)) + payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def awareness_payload(entries: list[tuple[int, int, bytes]]) -> bytes:
    out = write_var_uint(len(entries))
    for client_id, clock, state in entries:
        out += write_var_uint(client_id) + write_var_uint(clock) + var_bytes(state)
    return out


awareness_states = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.just(b"null"),
)

room_frames = st.one_of(
    # pure noise
    st.binary(max_size=600),
    # sync messages with junk payloads, any sub-type, and lying length prefixes
    st.builds(
        lambda sub, payload, lie: bytes([0]) + write_var_uint(sub) + var_bytes(payload, lie),
        st.integers(0, 300),
        st.binary(max_size=300),
        st.integers(-3, 3),
    ),
    # awareness: noise, then structured entries with junk or JSON states
    st.builds(
        lambda p, lie: bytes([1]) + var_bytes(p, lie), st.binary(max_size=300), st.integers(-2, 2)
    ),
    st.builds(
        lambda entries: bytes([1]) + var_bytes(awareness_payload(entries)),
        st.lists(
            st.tuples(st.integers(0, 2**53), st.integers(0, 2**32), awareness_states), max_size=4
        ),
    ),
    # raw messages: save with or without id, junk text, invalid UTF-8
    st.builds(
        lambda text, tail: bytes([2]) + var_bytes(text.encode()) + tail,
        st.sampled_from(["save", "", "{}", "save\x00"]) | st.text(max_size=40),
        st.binary(max_size=6),
    ),
    st.builds(lambda p: bytes([2]) + var_bytes(p), st.binary(max_size=60)),
    # other message types and huge varUints
    st.builds(
        lambda t, rest: write_var_uint(t) + rest, st.integers(3, 2**40), st.binary(max_size=40)
    ),
    st.just(b"\xff" * 12),
    st.just(b""),
)


def update_frame(update: bytes) -> bytes:
    return bytes([0, 2]) + var_bytes(update)


def mutated_updates(base_state: bytes, n: int, seed: int = 7) -> list[bytes]:
    """Real updates (edits of a copy of the document), then truncated or with bytes flipped."""
    rng = random.Random(seed)
    frames = []
    for i in range(n):
        doc = Doc()
        doc.apply_update(base_state)
        updates: list[bytes] = []
        sub = doc.observe(lambda e, updates=updates: updates.append(e.update))
        cells = doc.get("cells", type=Array)
        if len(cells):
            cell = cells[rng.randrange(len(cells))]
            try:
                source = cell["source"]
                source.insert(rng.randrange(len(source) + 1), "z" * rng.randint(1, 5))
            except Exception:
                pass
        doc.unobserve(sub)
        if not updates:
            continue
        update = bytearray(updates[0])
        mode = i % 3
        if mode == 0 and len(update) > 1:
            update = update[: rng.randrange(1, len(update))]
        elif mode == 1:
            for _ in range(rng.randint(1, 4)):
                update[rng.randrange(len(update))] = rng.randrange(256)
        else:
            update = update + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        frames.append(update_frame(bytes(update)))
    return frames


# --- playing frames ------------------------------------------------------------------------------
PROBE = bytes([0, 0]) + var_bytes(b"\x00")  # sync step1 with an empty state vector


class FrameProber:
    """A raw room websocket: send a frame, then a sync step1, and see what the server did.

    Returns None when the server answered the probe (the frame was ignored or applied) or the
    close code when it closed the connection; reconnects after a close.
    """

    def __init__(self, url: str, headers: dict[str, str]):
        self.url = url
        self.headers = headers
        self.ws: Any = None
        self.connections = 0

    async def _ensure(self) -> None:
        if self.ws is None:
            self.ws = await ws_connect(
                self.url, additional_headers=self.headers, max_size=None, open_timeout=30
            )
            self.connections += 1

    async def play(self, frame: bytes, timeout: float = 30) -> int | None:
        await self._ensure()
        try:
            await self.ws.send(frame)
            await self.ws.send(PROBE)
            while True:
                reply = await asyncio.wait_for(self.ws.recv(), timeout)
                if isinstance(reply, bytes) and reply[:2] == b"\x00\x01":
                    return None
        except ConnectionClosed as e:
            self.ws = None
            # no close frame from the server (connection dropped): -1
            return e.rcvd.code if e.rcvd is not None else -1

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
