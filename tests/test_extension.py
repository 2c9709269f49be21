"""The extension loads, is documented by its traits, and sets the frontend's page config."""

import json

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
