"""Notebook repair: bring a Y notebook back to the notebook schema before it is saved.

A client can send any valid Y update: a number in ``cells``, a cell without a source, metadata
that is not a map. jupyter_ydoc cannot turn such a document into a notebook (every save would
fail, and honest edits would never reach the file again), and the JupyterLab frontend chokes on
it too. The fix is a normal transaction, so every collaborator gets the repaired document:
items that are not cells are removed, unknown cell types become raw cells, missing or mistyped
fields get their defaults.

Pure: works on a pycrdt ``Doc`` only (no room, no server), so it is unit tested on its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from pycrdt import Array, Doc, Map, Text


def repair_notebook(ydoc: Doc[Any]) -> list[str]:
    """Repair the notebook held by ``ydoc`` in one transaction; the problems found."""
    problems: list[str] = []
    ycells = ydoc.get("cells", type=Array)
    meta = ydoc.get("meta", type=Map)
    with ydoc.transaction():
        for index in reversed(range(len(ycells))):
            ycell = ycells[index]
            if not isinstance(ycell, Map):
                del ycells[index]
                problems.append(f"removed a non-cell item at index {index}")
                continue
            problems.extend(repair_cell(ycell, index))
        if not isinstance(meta.get("metadata"), (Map, dict)):
            meta["metadata"] = Map()
            problems.append("notebook metadata was not a map")
        for key, default in (("nbformat", 4), ("nbformat_minor", 5)):
            value = meta.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                meta[key] = default
                problems.append(f"{key} was {value!r}")
    return problems


def repair_cell(ycell: Map[Any], index: int) -> list[str]:
    """Repair one cell ``Map`` in place (inside the caller's transaction)."""
    problems = []
    cell_type = ycell.get("cell_type")
    if cell_type not in ("code", "markdown", "raw"):
        problems.append(f"cell {index} had cell type {cell_type!r}")
        ycell["cell_type"] = cell_type = "raw"
    source = ycell.get("source")
    if not isinstance(source, Text):
        text = source if isinstance(source, str) else "" if source is None else str(source)
        ycell["source"] = Text(text)
        problems.append(f"cell {index} had no text source")
    if not isinstance(ycell.get("metadata"), (Map, dict)):
        ycell["metadata"] = Map()
        problems.append(f"cell {index} had no metadata map")
    cell_id = ycell.get("id")
    if not isinstance(cell_id, str) or not cell_id:
        ycell["id"] = uuid.uuid4().hex[:16]
        problems.append(f"cell {index} had no id")
    if cell_type == "code":
        outputs = ycell.get("outputs")
        if not isinstance(outputs, (Array, list)):
            ycell["outputs"] = Array()
            problems.append(f"cell {index} outputs were not a list")
        elif isinstance(outputs, Array):
            for j in reversed(range(len(outputs))):
                output = outputs[j]
                if not isinstance(output, (Map, dict)) or not isinstance(
                    output.get("output_type"), str
                ):
                    del outputs[j]
                    problems.append(f"cell {index} output {j} was not an output")
        count = ycell.get("execution_count")
        if "execution_count" not in ycell:
            ycell["execution_count"] = None
        elif count is not None and (not isinstance(count, (int, float)) or isinstance(count, bool)):
            ycell["execution_count"] = None
            problems.append(f"cell {index} execution count was {count!r}")
    else:
        for key in ("outputs", "execution_count"):
            if key in ycell:
                del ycell[key]
    return problems
