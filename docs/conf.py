"""Sphinx configuration for the collab_kernels documentation (MyST Markdown)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

from collab_kernels import __version__  # noqa: E402

project = "collab_kernels"
author = "The collab_kernels developers"
copyright = "2026, The collab_kernels developers"  # noqa: A001
release = version = __version__

extensions = [
    "myst_parser",
    "sphinxcontrib.mermaid",
    "traits_reference",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
html_theme = "furo"
html_title = f"collab_kernels {version}"
html_static_path: list[str] = []
nitpicky = False
