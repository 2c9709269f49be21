"""The servers under test, each run as a subprocess from its own virtual environment.

Every server gets a loopback port, a token, and a fresh temporary directory holding its root
dir and its Jupyter config/data/runtime dirs (so nothing from ~/.jupyter leaks in). The
notebook under test is written there before start. Each kind knows how to open the notebook's
room, start a kernel for it, and ask for server-side execution of one cell in its own dialect.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
from procs import free_port

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / "bench" / ".venvs"
NOTEBOOK = "bench.ipynb"
WARMUP_CELL = "warmup-cell"
BENCH_CELL = "bench-cell"


def murmur2(data: bytes, seed: int = 0) -> int:
    """MurmurHash2, 32 bit (jupyter-server-documents checks a cell source hash with it)."""
    m = 0x5BD1E995
    h = (seed ^ len(data)) & 0xFFFFFFFF
    whole = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[whole:]
    if tail:
        for i in reversed(range(len(tail))):
            h ^= tail[i] << (8 * i)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def notebook_json(code: str, warmup: str) -> dict:
    def cell(cid: str, src: str) -> dict:
        return {
            "cell_type": "code",
            "id": cid,
            "metadata": {},
            "source": src,
            "outputs": [],
            "execution_count": None,
        }

    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [cell(WARMUP_CELL, warmup), cell(BENCH_CELL, code)],
    }


@dataclass
class ProcessStats:
    """CPU and memory of a server process (children excluded) and of its kernels."""

    cpu: float = 0.0
    kernel_cpu: float = 0.0
    rss: int = 0
    peak_rss: int = 0
    fds: int = 0


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds; ``peak`` is the highest seen."""

    def __init__(self, proc: psutil.Process, interval: float = 0.05):
        super().__init__(daemon=True)
        self.proc = proc
        self.interval = interval
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join(1)
        return self.peak


@dataclass
class Server:
    """One server under test. Subclasses fill in the dialect."""

    key = "server"
    label = "server"
    venv: Path = field(default=REPO / ".venv")
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.port = free_port()
        self.token = os.urandom(12).hex()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fanout-{self.key}-"))
        self.root = self.tmp / "root"
        self.root.mkdir()
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
            trust_env=False,
        )
        self.log_path = self.tmp / "server.log"

    # ------------------------------------------------------------------ lifecycle

    @property
    def available(self) -> bool:
        return (self.venv / "bin" / "jupyter-server").exists()

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "jupyter-server"),
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            "--ServerApp.log_level=WARN",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTER", "PYTHONPATH", "VIRTUAL_ENV"))
        }
        for name in ("config", "data", "runtime"):
            (self.tmp / name).mkdir(exist_ok=True)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.tmp / "config"),
            JUPYTER_DATA_DIR=str(self.tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
            JUPYTER_PLATFORM_DIRS="0",
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '')}",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        return env

    def write_notebook(self, code: str, warmup: str) -> None:
        (self.root / NOTEBOOK).write_text(json.dumps(notebook_json(code, warmup), indent=1))

    def start(self, timeout: float = 90) -> None:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env(),
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited at start:\n{self.log_tail()}")
            try:
                if self.http.get("/api/status").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not answer in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ measurements

    def stats(self) -> ProcessStats:
        s = ProcessStats()
        if self.ps is None:
            return s
        t = self.ps.cpu_times()
        s.cpu = t.user + t.system
        for child in self.ps.children(recursive=True):
            try:
                c = child.cpu_times()
                s.kernel_cpu += c.user + c.system
            except psutil.Error:
                pass
        s.rss = self.ps.memory_info().rss
        s.fds = self.ps.num_fds()
        return s

    # ------------------------------------------------------------------ dialect

    def open_document(self, path: str = NOTEBOOK) -> tuple[str, str | None]:
        """(room id, session id for the websocket query) of the notebook at ``path``."""
        r = self.http.put(
            f"/api/collaboration/session/{quote(path)}", json={"format": "json", "type": "notebook"}
        )
        r.raise_for_status()
        body = r.json()
        return f"json:notebook:{body['fileId']}", body.get("sessionId")

    def start_kernel(self, path: str = NOTEBOOK) -> str:
        """Start a kernel for the notebook through a session, as JupyterLab does; the warm-up
        cell (whose result the caller awaits) doubles as the wait for the kernel to be ready."""
        r = self.http.post(
            "/api/sessions",
            json={
                "path": path,
                "name": os.path.basename(path),
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        r.raise_for_status()
        return r.json()["kernel"]["id"]

    def connection_file(self, kernel_id: str) -> str | None:
        """The kernel's connection file in this server's runtime dir, if it wrote one."""
        found = sorted((self.tmp / "runtime").rglob(f"*{kernel_id}*.json"))
        return str(found[0]) if found else None

    def room_url(self, room_id: str, session_id: str | None) -> str:
        q = f"token={self.token}"
        if session_id:
            q += f"&sessionId={session_id}"
        return f"ws://127.0.0.1:{self.port}/api/collaboration/room/{room_id}?{q}"

    def execute(self, kernel_id: str, room_id: str, cell_id: str, code: str) -> httpx.Response:
        raise NotImplementedError


def _main_checkout_venv() -> Path:
    """This tree's .venv, or in a git worktree the main checkout's."""
    if (REPO / ".venv").exists():
        return REPO / ".venv"
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        common = ""
    main = Path(common).parent / ".venv" if common else REPO / ".venv"
    return main if main.exists() else REPO / ".venv"


@dataclass
class Ours(Server):
    key = "ours"
    label = "collab_kernels"
    # A git worktree has no .venv of its own: use the main checkout's (its editable install
    # points there, so PYTHONPATH below makes this tree's collab_kernels win).
    venv: Path = field(default=_main_checkout_venv())

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = str(REPO)  # the collab_kernels of the tree this benchmark runs from
        return env

    def command(self) -> list[str]:
        # FANOUT_OURS_ARGS: extra command-line settings for our server only (e.g.
        # "--SharedClientKernelManager.ipc_transport=False" to compare kernel transports)
        return super().command() + os.environ.get("FANOUT_OURS_ARGS", "").split()

    def execute(self, kernel_id, room_id, cell_id, code):
        return self.http.post(
            f"/api/kernels/{kernel_id}/execute", json={"cell_id": cell_id, "document_id": room_id}
        )


@dataclass
class Collaboration(Server):
    key = "collab"
    label = "jupyter-collaboration + nbmodel"
    venv: Path = field(default=VENVS / "jupyter-collaboration")

    def execute(self, kernel_id, room_id, cell_id, code):
        return self.http.post(
            f"/api/kernels/{kernel_id}/execute",
            json={"code": code, "metadata": {"cell_id": cell_id, "document_id": room_id}},
        )


@dataclass
class Documents(Server):
    key = "documents"
    label = "jupyter-server-documents"
    venv: Path = field(default=VENVS / "jupyter-server-documents")

    def open_document(self, path=NOTEBOOK):
        # No session endpoint: the frontend indexes the file, then opens json:notebook:<id>.
        r = self.http.post("/api/fileid/index", params={"path": path})
        r.raise_for_status()
        return f"json:notebook:{r.json()['id']}", None

    def execute(self, kernel_id, room_id, cell_id, code):
        return self.http.post(
            f"/api/kernels/{kernel_id}/execute",
            json={
                "document_id": room_id,
                "cells": [{"cell_id": cell_id, "source_hash": str(murmur2(code.encode()))}],
            },
        )


SERVERS: dict[str, type[Server]] = {cls.key: cls for cls in (Ours, Collaboration, Documents)}


def versions(venv: Path, dists: list[str]) -> dict[str, str]:
    """Installed versions of ``dists`` in a virtual environment."""
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for d in sys.argv[1:]:\n    try: out[d]=version(d)\n    except Exception: pass\n"
        "print(json.dumps(out))"
    )
    try:
        res = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code, *dists],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(res.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
