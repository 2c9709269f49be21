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


@pytest.fixture
def jp_argv(jp_data_dir):
    """Each test server's file-id database in the test's own data dir.

    jupyter_server_fileid computes its default database path at import, from the real
    ``JUPYTER_DATA_DIR`` (the user's home), so test servers would share one database with
    each other and with any Jupyter run on the machine; and a database another manager made
    there decides which manager rooms use (``rooms/content.py``: moves outside Jupyter are
    then not followed)."""
    return [f"--BaseFileIdManager.db_path={jp_data_dir / 'file_id_manager.db'}"]
