"""Papermill-style parameters: parse them, write them as code, put them into a notebook document.

The rules are papermill's (2.7):

- ``-p NAME VALUE`` values are read as ``None``/``True``/``False``, an int, a float (``nan`` and
  ``inf`` included), or else kept as the string; ``-r NAME VALUE`` keeps the string as is;
  ``-y YAML``, ``-b BASE64-YAML`` and ``-f FILE.yaml`` give YAML mappings whose values are used
  as loaded, dates kept as strings. Later sources win: paths, ``-b``, ``-f``, ``-y``, ``-p``,
  ``-r`` (:func:`merge_parameters`).
- Python values are written as papermill writes them (strings in double quotes), so that the
  injected cell is the one papermill would inject.
- The new cell is a code cell tagged ``injected-parameters``. It takes the place of a previous
  injected cell if there is one (every other previously injected cell is removed), else it goes
  right after the first cell tagged ``parameters``, else at the top of the notebook.
"""

from __future__ import annotations

import base64
import binascii
import json
import keyword
import math
import uuid
from collections.abc import Iterable, Mapping
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
            return cast(text)
        except ValueError:
            continue
    return text


def _yaml_loader() -> Any:
    """A safe YAML loader that keeps dates and times as strings (as papermill's does)."""
    import yaml

    loader: Any = type("NoDatesLoader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return loader


def load_parameters_yaml(text: str | bytes, what: str = "YAML parameters") -> dict[str, Any]:
    """A YAML mapping of parameters (empty text: no parameters)."""
    import yaml

    try:
        data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ParameterError(f"{what} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError(
            f"{what} must hold a mapping of names to values, not {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def load_parameters_base64(text: str) -> dict[str, Any]:
    """``-b``: base64 of a YAML mapping."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ParameterError(f"-b {text[:40]!r}: not valid base64") from None
    return load_parameters_yaml(raw, "-b parameters")


def load_parameters_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of parameters."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ParameterError(f"parameters file not found: {path}") from None
    except OSError as e:
        raise ParameterError(f"cannot read parameters file {path}: {e}") from None
    return load_parameters_yaml(text, f"parameters file {path}")


def merge_parameters(
    *,
    paths: Mapping[str, str] | None = None,
    base64_yaml: Iterable[str] = (),
    files: Iterable[str | Path] = (),
    yaml_texts: Iterable[str] = (),
    values: Iterable[tuple[str, str]] = (),
    raw: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Every parameter source in papermill's order of precedence (later wins)."""
    params: dict[str, Any] = dict(paths or {})
    for text in base64_yaml:
        params.update(load_parameters_base64(text))
    for path in files:
        params.update(load_parameters_file(path))
    for text in yaml_texts:
        params.update(load_parameters_yaml(text, f"-y {text[:40]!r}"))
    for name, value in values:
        params[name] = parse_cli_value(value)
    for name, value in raw:
        params[name] = value
    return params


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"parameter name {name!r} is not a valid identifier")


def _python_str(value: Any) -> str:
    # papermill's form: a double-quoted literal, non-ASCII and control characters escaped.
    text = str(value).encode("unicode_escape").decode("utf-8").replace('"', '\\"')
    return f'"{text}"'


def _python_literal(value: Any) -> str:
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, str):
        return _python_str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_python_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        # keys are written as strings, as papermill does
        return (
            "{"
            + ", ".join(f"{_python_str(k)}: {_python_literal(v)}" for k, v in value.items())
            + "}"
        )
    # other YAML scalars: their text form, so the cell always runs.
    return _python_str(value)


def _float_literal(value: float) -> str:
    """A number as R and Julia write it: NaN, Inf and -Inf by those names."""
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")


def _r_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"{value}L" if abs(value) < 2**31 else repr(float(value))
    if isinstance(value, float):
        return _float_literal(value)
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
        return _float_literal(value)
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


def _tags(ycell: Any) -> list[str]:
    metadata = ycell.get("metadata")
    if metadata is None:
        return []
    tags = metadata.get("tags") if hasattr(metadata, "get") else None
    if tags is None:
        return []
    if hasattr(tags, "to_py"):
        tags = tags.to_py()
    return [str(t) for t in tags] if isinstance(tags, (list, tuple)) else []


def find_tagged(ynotebook: Any, tag: str) -> list[int]:
    """Indexes of the cells of a ``jupyter_ydoc.YNotebook`` that carry ``tag``."""
    return [i for i, ycell in enumerate(ynotebook.ycells) if tag in _tags(ycell)]


def inject_parameters(
    ynotebook: Any, parameters: Mapping[str, Any], language: str = "python"
) -> str:
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
