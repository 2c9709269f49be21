"""Added to jupyter_server's own tests/conftest.py by tests/upstream/run.py.

With ``COLLAB_KERNELS_UPSTREAM=1`` every test server starts the way an installed
collab_kernels starts it: the extensions its jupyter-config file enables, and its kernel
manager and kernel websocket classes written into the server's config (unless the test
configures its own, as a user would). Without it (the stock run) nothing changes, except
that the ``flaky`` marker is registered without the flaky plugin: no test is rerun in
either run.
"""

from __future__ import annotations

import json
import os
import typing as t

import pytest
from traitlets.config import Config

ENABLED = os.environ.get("COLLAB_KERNELS_UPSTREAM") == "1"
JUPYTER_CONFIG = os.environ.get("COLLAB_KERNELS_JUPYTER_CONFIG", "")

MANAGER = "collab_kernels.kernels.manager.SharedClientMappingKernelManager"
WEBSOCKET = "collab_kernels.kernels.websocket.SharedClientWebsocketConnection"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flaky: upstream marker (not rerun here)")


def with_collab_kernels(config: t.Any) -> Config:
    """The server config with collab_kernels in force (modified in place when a Config)."""
    if not isinstance(config, Config):
        config = Config(config or {})
    with open(JUPYTER_CONFIG, encoding="utf-8") as f:
        installed = json.load(f)
    # (a section may be a plain dict: pytest-jupyter's factory setdefault()s one)
    serverapp = config.setdefault("ServerApp", Config())
    extensions = dict(serverapp.get("jpserver_extensions", {}))
    for name, enabled in installed["ServerApp"]["jpserver_extensions"].items():
        extensions.setdefault(name, enabled)
    serverapp["jpserver_extensions"] = extensions
    serverapp.setdefault("kernel_manager_class", MANAGER)
    serverapp.setdefault("kernel_websocket_connection_class", WEBSOCKET)
    return config


if ENABLED:

    @pytest.fixture
    def jp_configurable_serverapp(
        jp_configurable_serverapp: t.Any, jp_server_config: t.Any
    ) -> t.Callable[..., t.Any]:
        """pytest-jupyter's server factory, with collab_kernels in every config it gets."""
        with_collab_kernels(jp_server_config)

        def factory(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if args:
                kwargs["config"], args = args[0], args[1:]
            kwargs["config"] = with_collab_kernels(kwargs.get("config", jp_server_config))
            return jp_configurable_serverapp(*args, **kwargs)

        return factory
