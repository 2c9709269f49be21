"""docs/api/openapi.yaml is valid and describes exactly the HTTP endpoints the extension serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate

from collab_kernels.app import CollabKernelsApp

SPEC = Path(__file__).parent.parent / "docs" / "api" / "openapi.yaml"


def load_spec() -> dict:
    return yaml.safe_load(SPEC.read_text())


def served_patterns() -> list[str]:
    app = CollabKernelsApp()
    app.initialize_handlers()
    return [pattern for pattern, *_ in app.handlers]


def test_spec_is_valid_openapi():
    validate(load_spec())


def test_every_documented_path_is_served_and_every_served_path_documented():
    patterns = served_patterns()
    documented = list(load_spec()["paths"])

    def example(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "x:y:z", path)

    for path in documented:
        assert any(re.fullmatch(p, example(path)) for p in patterns), f"{path} is not served"
    for pattern in patterns:
        assert any(re.fullmatch(pattern, example(path)) for path in documented), (
            f"{pattern} is not documented in {SPEC.name}"
        )
