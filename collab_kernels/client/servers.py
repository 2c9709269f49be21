"""Finding a running Jupyter server, or starting one in this process.

- :func:`running_servers` reads the server info files that ``jupyter server list`` reads
  (without importing jupyter_server: ``collab-kernels`` starts in a fraction of a second).
- :class:`EmbeddedServer` starts jupyter_server's ``ServerApp`` with collab_kernels inside the
  calling asyncio loop, on a free loopback port with a random token, and stops it cleanly
  (documents saved, kernels shut down).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit


@dataclass
class ServerInfo:
    """Where a Jupyter server is and how to authenticate to it."""

    #: The server's base URL, always ending with ``/`` (e.g. ``http://127.0.0.1:8888/``).
    url: str
    token: str | None = None
    #: The server's root directory on this machine, when known (local servers only).
    root_dir: str | None = None
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = normalize_url(self.url)

    def api_path_for(self, local_path: str | os.PathLike[str]) -> str | None:
        """The server (API) path of a local file, or None if it is outside the root."""
        if not self.root_dir:
            return None
        try:
            rel = Path(os.path.abspath(local_path)).relative_to(os.path.abspath(self.root_dir))
        except ValueError:
            return None
        return rel.as_posix() if str(rel) != "." else ""

    def same_server(self, url: str) -> bool:
        """Whether ``url`` names this server (``localhost``, ``127.0.0.1``, ``::1`` and this
        machine's name are the same host for a local server)."""
        mine, other = urlsplit(self.url), urlsplit(normalize_url(url))
        if (mine.scheme, mine.port, mine.path) != (other.scheme, other.port, other.path):
            return False
        local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname().lower()}
        hosts = {(mine.hostname or "").lower(), (other.hostname or "").lower()}
        return len(hosts) == 1 or hosts <= local

    def lab_url(self, api_path: str) -> str:
        """A JupyterLab URL that opens the notebook (the token included when there is one)."""
        url = f"{self.url}lab/tree/{quote(api_path)}"
        if self.token:
            url += f"?token={quote(self.token)}"
        return url


def normalize_url(url: str) -> str:
    """``host:port`` -> ``http://host:port/``; always a trailing slash; query dropped."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server URL must be http:// or https://, not {url!r}")
    if not parts.netloc:
        raise ValueError(f"server URL has no host: {url!r}")
    path = parts.path or "/"
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def token_from_url(url: str) -> str | None:
    """The ``token=`` query parameter of a URL such as the one ``jupyter server`` prints."""
    from urllib.parse import parse_qs

    values = parse_qs(urlsplit(url.strip()).query).get("token")
    return values[0] if values else None


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # no pid recorded: let the caller find out
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def running_servers(runtime_dir: str | None = None) -> list[ServerInfo]:
    """The Jupyter servers running on this machine (as ``jupyter server list`` shows them).

    Reads the ``jpserver-*.json`` files of the Jupyter runtime directory, as jupyter_server's
    ``list_running_servers`` does, without importing jupyter_server (that takes seconds).
    """
    import json

    from jupyter_core.paths import jupyter_runtime_dir

    folder = Path(runtime_dir or jupyter_runtime_dir())
    servers = []
    for file in sorted(folder.glob("jpserver-*.json")):
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        url = info.get("url") if isinstance(info, dict) else None
        if not url or not _pid_alive(info.get("pid")):
            continue
        try:
            servers.append(
                ServerInfo(
                    url=url,
                    token=info.get("token") or None,
                    root_dir=info.get("root_dir"),
                    pid=info.get("pid"),
                    extra=info,
                )
            )
        except ValueError:
            continue
    return servers


def server_for_path(
    local_path: str | os.PathLike[str], runtime_dir: str | None = None
) -> ServerInfo | None:
    """The running server whose root directory holds ``local_path`` most closely."""
    best: tuple[int, ServerInfo] | None = None
    for server in running_servers(runtime_dir):
        if server.api_path_for(local_path) is None:
            continue
        depth = len(Path(os.path.abspath(server.root_dir or "/")).parts)
        if best is None or depth > best[0]:
            best = (depth, server)
    return best[1] if best else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _embedded_app_class() -> Any:
    from jupyter_server.serverapp import ServerApp

    class EmbeddedServerApp(ServerApp):
        """A ServerApp that lives inside another program's asyncio loop.

        It installs no signal handlers (the host program owns Ctrl-C) and never opens a browser.
        """

        def init_signal(self) -> None:  # the host program handles signals
            pass

    return EmbeddedServerApp


class EmbeddedServer:
    """jupyter_server with collab_kernels, started in the running asyncio loop.

    ``root_dir`` is the folder the server serves; the server listens on 127.0.0.1 on a free
    port with a random token. Usual Jupyter configuration files apply (so JupyterLab is there
    to watch the run), with collab_kernels and jupyter_server_fileid always enabled.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        *,
        log_level: str = "ERROR",
        config: dict[str, Any] | None = None,
    ):
        self.root_dir = os.path.abspath(root_dir)
        self.log_level = log_level
        self.config = config or {}
        self.app = None
        self.info: ServerInfo | None = None

    async def start(self) -> ServerInfo:
        from traitlets.config import Config

        app_class = _embedded_app_class()
        token = secrets.token_hex(24)
        c = Config(
            {
                "ServerApp": {
                    "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                    "open_browser": False,
                    "ip": "127.0.0.1",
                    "port": free_port(),
                    "port_retries": 50,
                    "root_dir": self.root_dir,
                    "log_level": self.log_level,
                    # Loopback only, random token, lives as long as this command.
                    "allow_root": True,
                },
                "Application": {"log_level": self.log_level},
                "IdentityProvider": {"token": token},
                # Nobody reconnects to a server that lives as long as one command, so it keeps
                # no update store, and its file ids only in memory: it does not contend with
                # (or lock out of the store) a long-lived server of the same data directory.
                "RoomManager": {"update_store": "none"},
                "BaseFileIdManager": {"db_path": ":memory:"},
            }
        )
        for section, values in self.config.items():
            c[section].update(values)
        app_class.clear_instance()
        app = app_class.instance(config=c)
        # initialize() takes the current loop as its IOLoop: we are inside the caller's loop.
        app.initialize(argv=[])
        for name in ("ServerApp", "EmbeddedServerApp"):
            logging.getLogger(name).setLevel(self.log_level)
        app.start_app()
        await app.extension_manager.start_all_extensions()
        self.app = app
        self.info = ServerInfo(
            url=app.connection_url, token=token, root_dir=self.root_dir, pid=os.getpid()
        )
        return self.info

    async def stop(self) -> None:
        """Save and free every document, shut down the kernels, close the port."""
        app, self.app = self.app, None
        if app is None:
            return
        try:
            await app._cleanup()
        finally:
            # Let the closing websockets and kernel sockets finish their last callbacks.
            await asyncio.sleep(0)
            type(app).clear_instance()

    async def __aenter__(self) -> ServerInfo:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
