"""Papermill-style parameters: parse them, write them as code, put them into a notebook document.

The rules follow what papermill users expect:

- ``-p NAME VALUE`` values are read as ``None``/``True``/``False``, an int, a float, or else kept
  as the string; ``-f params.yaml`` gives a YAML mapping whose values are used as loaded;
  ``-p`` wins over ``-f``.
- The new cell is a code cell tagged ``injected-parameters``. It takes the place of a previous
  injected cell if there is one (every other previously injected cell is removed), else it goes
  right after the first cell tagged ``parameters``, else at the top of the notebook.
"""

from __future__ import annotations

import json
import keyword
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


class ParameterError(ValueError):
    """A parameter, a parameters file, or the target language cannot be used."""


def parse_cli_value(text: str) -> Any:
    """Turn the VALUE of ``-p NAME VALUE`` into a Python value, as papermill does."""
    if text == "None":
        return None
    if text == "True":
        return True
    if text == "False":
        return False
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            # "nan"/"inf" stay strings: a user who types them rarely means a float.
            return text
        return value
    return text


def load_parameters_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of parameters."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParameterError(f"parameters file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ParameterError(f"parameters file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError(
            f"parameters file {path} must hold a mapping of names to values, "
            f"not {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"parameter name {name!r} is not a valid identifier")


def _python_literal(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_python_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{_python_literal(k)}: {_python_literal(v)}" for k, v in value.items())
            + "}"
        )
    # dates and other YAML scalars: their text form, so the cell always runs.
    return repr(str(value))


def _r_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"{value}L" if abs(value) < 2**31 else repr(float(value))
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf"))
        )
    if isinstance(value, (list, tuple)):
        return "list(" + ", ".join(_r_literal(v) for v in value) + ")"
    if isinstance(value, Mapping):
        return (
            "list("
            + ", ".join(f"{json.dumps(str(k))} = {_r_literal(v)}" for k, v in value.items())
            + ")"
        )
    return json.dumps(str(value))


def _julia_literal(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return (
            repr(value)
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf"))
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_julia_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "Dict("
            + ", ".join(f"{json.dumps(str(k))} => {_julia_literal(v)}" for k, v in value.items())
            + ")"
        )
    return json.dumps(str(value))


_TRANSLATORS = {
    "python": ("#", " = ", _python_literal),
    "r": ("#", " = ", _r_literal),
    "julia": ("#", " = ", _julia_literal),
}


def parameters_source(parameters: Mapping[str, Any], language: str = "python") -> str:
    """The source of the injected cell: one assignment per parameter, in the given order."""
    lang = (language or "python").strip().lower()
    if lang not in _TRANSLATORS:
        raise ParameterError(
            f"cannot write parameters for kernel language {language!r}; "
            f"supported: {', '.join(sorted(_TRANSLATORS))}"
        )
    comment, assign, literal = _TRANSLATORS[lang]
    lines = [f"{comment} Parameters"]
    for name, value in parameters.items():
        _check_name(name)
        lines.append(f"{name}{assign}{literal(value)}")
    return "\n".join(lines) + "\n"


def _tags(ycell) -> list[str]:
    metadata = ycell.get("metadata")
    if metadata is None:
        return []
    tags = metadata.get("tags") if hasattr(metadata, "get") else None
    if tags is None:
        return []
    if hasattr(tags, "to_py"):
        tags = tags.to_py()
    return [str(t) for t in tags] if isinstance(tags, (list, tuple)) else []


def find_tagged(ynotebook, tag: str) -> list[int]:
    """Indexes of the cells of a ``jupyter_ydoc.YNotebook`` that carry ``tag``."""
    return [i for i, ycell in enumerate(ynotebook.ycells) if tag in _tags(ycell)]


def inject_parameters(ynotebook, parameters: Mapping[str, Any], language: str = "python") -> str:
    """Put the parameters cell into the document in one transaction; return its cell id.

    ``ynotebook`` is a ``jupyter_ydoc.YNotebook`` (e.g. a room connection's document): every
    collaborator sees a single edit.
    """
    source = parameters_source(parameters, language)
    cell_id = uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:4] + "-injected"
    with ynotebook.ydoc.transaction():
        injected = find_tagged(ynotebook, INJECTED_TAG)
        if injected:
            position = injected[0]
        else:
            params_cells = find_tagged(ynotebook, PARAMETERS_TAG)
            position = params_cells[0] + 1 if params_cells else 0
        for index in reversed(injected):
            del ynotebook.ycells[index]
        ycell = ynotebook.create_ycell(
            {
                "id": cell_id,
                "cell_type": "code",
                "source": source,
                "metadata": {"tags": [INJECTED_TAG]},
                "outputs": [],
                "execution_count": None,
            }
        )
        ynotebook.ycells.insert(min(position, len(ynotebook.ycells)), ycell)
    return cell_id
