"""Shared fixtures: a real jupyter_server (pytest-jupyter) with collab_kernels and ipykernel.

Each area keeps its own fixtures in a plugin module beside the tests (listed below).
"""

from __future__ import annotations

import pytest
from traitlets.config import Config

pytest_plugins = [
    "pytest_jupyter.jupyter_server",
    "fixtures_rooms",
    "fixtures_kernels",
    "fixtures_execution",
    "fixtures_client",
    "fixtures_reliability",
    "fixtures_gateway",
]


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
