"""Fixtures for the remote-kernel tests: a real Jupyter Kernel Gateway on loopback.

- ``kernel_gateway`` (session): ``jupyter-kernel-gateway`` 3.x started as a subprocess on a
  free loopback port with an auth token and kernel listing on (its own runtime dir). Its log
  is read by a thread; ``wait_log(text)`` waits for a line (an event, not a poll), and
  ``api(method, path)`` calls its REST API with the token (to count its websocket
  connections per kernel, from the gateway's side).
- ``gateway_server_config``: the test server's config for gateway mode (use it as
  ``jp_server_config`` in a test module). An autouse fixture resets jupyter_server's
  ``GatewayClient`` singleton before every test, which pytest-jupyter does not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import typing as t
import urllib.request
from pathlib import Path

import pytest
from traitlets.config import Config

GATEWAY_TOKEN = "gateway-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KernelGateway:
    """A running Kernel Gateway process and its log."""

    def __init__(
        self,
        root: Path,
        token: str = GATEWAY_TOKEN,
        enterprise: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ):
        self.root = root
        #: the python of an Enterprise Gateway environment, or None for Kernel Gateway
        self.enterprise = enterprise
        #: (certfile, keyfile) to serve HTTPS and WSS
        self.tls = tls
        self.token = token
        self.port = _free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60) -> None:
        runtime = self.root / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["JUPYTER_RUNTIME_DIR"] = str(runtime)
        env.pop("JUPYTER_GATEWAY_URL", None)
        if self.enterprise:
            for key in ("PYTHONPATH", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR"):
                env.pop(key, None)
            env["EG_LIST_KERNELS"] = "True"
            env["KERNEL_USERNAME"] = "collab-test"
            argv = [
                self.enterprise,
                "-m",
                "enterprise_gateway",
                "--EnterpriseGatewayApp.ip=127.0.0.1",
                f"--EnterpriseGatewayApp.port={self.port}",
                f"--EnterpriseGatewayApp.auth_token={self.token}",
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "kernel_gateway",
                "--KernelGatewayApp.ip=127.0.0.1",
                f"--KernelGatewayApp.port={self.port}",
                f"--KernelGatewayApp.auth_token={self.token}",
                "--JupyterWebsocketPersonality.list_kernels=True",
                # the Jupyter server's one websocket carries every tab and document: rate
                # limits belong there (it applies them per tab), not on the gateway
                "--ZMQChannelsWebsocketConnection.limit_rate=False",
            ]
            if self.tls:
                argv += [
                    f"--KernelGatewayApp.certfile={self.tls[0]}",
                    f"--KernelGatewayApp.keyfile={self.tls[1]}",
                ]
        self.proc = subprocess.Popen(
            argv,
            cwd=str(self.root),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_log("is available at", timeout)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.root / "gateway.log", "a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, text: str, timeout: float = 30, start: int = 0) -> str:
        """Wait for a log line containing ``text`` (at index ``start`` or later)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    if text in self.lines[index]:
                        return self.lines[index]
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    tail = "".join(self.lines[-20:])
                    raise AssertionError(f"gateway logged no {text!r} in {timeout}s:\n{tail}")
                self._cond.wait(remaining)

    def mark(self) -> int:
        """The current end of the log (for ``wait_log(start=...)``)."""
        with self._cond:
            return len(self.lines)

    def api(self, method: str, path: str, body: t.Any = None) -> t.Any:
        """A (blocking, short) REST call to the gateway with the token."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=str(self.tls[0]))
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def connections(self, kernel_id: str) -> int:
        """Websocket connections the gateway counts for a kernel."""
        return int(self.api("GET", f"api/kernels/{kernel_id}")["connections"])

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def kernel_gateway(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[KernelGateway]:
    gateway = KernelGateway(tmp_path_factory.mktemp("kernel-gateway"))
    gateway.start()
    yield gateway
    gateway.stop()


def gateway_config(gateway: KernelGateway) -> dict[str, t.Any]:
    """The ``GatewayClient`` settings of a server using ``gateway``."""
    return {
        "url": gateway.url,
        "auth_token": gateway.token,
        # reconnect quickly in tests (the backoff doubles from here)
        "gateway_retry_interval": 0.2,
        "gateway_retry_interval_max": 2.0,
        "gateway_retry_max": 5,
    }


@pytest.fixture(autouse=True)
def _fresh_gateway_client() -> None:
    """Every test server gets its own ``GatewayClient`` singleton (pytest-jupyter keeps it
    across tests: a gateway test would leave gateway mode on for the next one, and a local
    test would hide the gateway configuration of the next). Cleared at setup only: the
    server's teardown still needs it to shut its gateway kernels down."""
    from jupyter_server.gateway.gateway_client import GatewayClient

    GatewayClient.clear_instance()


@pytest.fixture
def gateway_server_config(kernel_gateway: KernelGateway) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
            "GatewayClient": gateway_config(kernel_gateway),
        }
    )


@pytest.fixture
def gateway_client(jp_serverapp: t.Any) -> t.Callable[[str], t.Any]:
    """``gateway_client(kernel_id)``: the shared client of a gateway kernel."""

    def get(kernel_id: str) -> t.Any:
        return jp_serverapp.kernel_manager.get_kernel(kernel_id).shared_client

    return get
