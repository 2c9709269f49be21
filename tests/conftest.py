"""Shared fixtures: a real jupyter_server (pytest-jupyter) with collab_kernels and ipykernel."""

from __future__ import annotations

import pytest
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {
                    "collab_kernels": True,
                    "jupyter_server_fileid": True,
                },
            },
        }
    )
