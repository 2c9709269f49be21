"""The extension loads, is documented by its traits, and sets the frontend's page config."""

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

from traitlets.config import Configurable

import collab_kernels
from collab_kernels.app import CollabKernelsApp


async def test_page_config_turns_on_server_side_execution(jp_serverapp):
    page_config = jp_serverapp.web_app.settings["page_config_data"]
    assert page_config["serverSideExecution"] == "true"


async def test_kernels_api_still_answers(jp_fetch):
    response = await jp_fetch("api", "kernels", method="GET")
    assert response.code == 200
    assert json.loads(response.body) == []


def test_every_trait_has_help_text():
    for cls in CollabKernelsApp.classes:
        for name, trait in cls.class_own_traits(config=True).items():
            if cls.__module__.startswith("collab_kernels"):
                assert trait.help, f"{cls.__name__}.{name} has no help text"


def test_every_configurable_class_is_listed_for_help_all():
    """`jupyter server --help-all` (and the configuration reference) show the settings of the
    classes an extension lists: every class of the package with a setting must be there."""
    found = set()
    for info in pkgutil.walk_packages(collab_kernels.__path__, "collab_kernels."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Configurable)
                and obj.__module__ == info.name
                and obj.class_own_traits(config=True)
            ):
                found.add(obj)
    found.discard(CollabKernelsApp)
    # a base class of a listed class (RoomPreloads of RoomManager) is shown with it
    listed = CollabKernelsApp.classes
    missing = sorted(cls.__name__ for cls in found if not any(issubclass(c, cls) for c in listed))
    assert not missing, f"not in CollabKernelsApp.classes: {missing}"


def test_jupyter_collab_kernels_help_all_documents_the_settings():
    script = Path(sys.executable).parent / "jupyter-collab-kernels"
    out = subprocess.run(
        [str(script), "--help-all"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for option in (
        "--SharedKernelClient.handshake_timeout",
        "--RoomManager.save_delay",
        "--RoomManager.preload_rooms",  # a trait of its base class RoomPreloads
        "--ExecutionManager.output_batch_interval",
        "--CollabKernelsApp.server_side_execution",
        "--ServerApp.port",
    ):
        assert option in out, option
