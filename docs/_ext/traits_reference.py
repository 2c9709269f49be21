"""A Sphinx directive that documents every configurable trait of collab_kernels.

``{collab-config-reference}`` renders one section per configurable class with each trait's
name, type, default and help text, read from the classes themselves, so the reference can
never drift from the code (the same text ``jupyter server --help-all`` prints).
"""

from __future__ import annotations

import textwrap

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _configurable_classes():
    from collab_kernels.app import CollabKernelsApp

    seen = []
    for cls in [CollabKernelsApp, *CollabKernelsApp.classes]:
        if cls not in seen and cls.__module__.startswith("collab_kernels"):
            seen.append(cls)
    return seen


def _default_repr(trait) -> str:
    try:
        value = trait.default_value_repr()
    except Exception:  # a dynamic default
        value = "(computed at start-up)"
    return value


def reference_rst() -> str:
    lines: list[str] = []
    for cls in _configurable_classes():
        own = cls.class_own_traits(config=True)
        if not own:
            continue
        lines += [cls.__name__, "-" * len(cls.__name__), ""]
        doc = (cls.__doc__ or "").strip().splitlines()
        if doc:
            lines += [doc[0], ""]
        for name in sorted(own):
            trait = own[name]
            lines += [
                f"``{cls.__name__}.{name}``",
                f"    *{trait.__class__.__name__}*, default ``{_default_repr(trait)}``",
                "",
                textwrap.indent(trait.help.strip() or "(no help text)", "    "),
                "",
                f"    Command line: ``--{cls.__name__}.{name}=...``",
                "",
            ]
    return "\n".join(lines)


class ConfigReference(SphinxDirective):
    has_content = False

    def run(self):
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(reference_rst().splitlines()), 0, container)
        return container.children


def setup(app):
    app.add_directive("collab-config-reference", ConfigReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
