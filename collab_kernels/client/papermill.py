"""Papermill compatibility: the notebook papermill would write, from a run in the server.

Tools built on papermill (scrapbook, report builders, CI dashboards) read what papermill 2.7
writes into an executed notebook:

- ``metadata.papermill``: ``parameters``, ``input_path``, ``output_path``, ``start_time``,
  ``end_time``, ``duration``, ``exception`` (plus ``default_parameters``,
  ``environment_variables`` and ``version`` when the notebook had none);
- per cell ``metadata.papermill``: ``status`` (pending, running, completed, failed),
  ``start_time``, ``end_time``, ``duration``, ``exception``;
- a markdown cell tagged ``papermill-error-cell-tag`` at the top and one before the failing
  cell when a cell raised (``SystemExit(0)`` does not count).

:func:`prepare_notebook` is pure (nbformat dicts in, out). :class:`RunRecorder` writes the
per-cell records into the live document as the run's events arrive, and the end records.
Times are the client's observations of the document (papermill's are its kernel client's).
"""

from __future__ import annotations

import copy
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from .params import INJECTED_TAG, PARAMETERS_TAG, parameters_source

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
ERROR_MARKER_TAG = "papermill-error-cell-tag"
_RED = 'style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;"'


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _tags(cell: Mapping[str, Any]) -> list[str]:
    tags = (cell.get("metadata") or {}).get("tags") or []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def is_clean_exit(ename: object, evalue: object) -> bool:
    """``sys.exit()``, ``sys.exit(0)``, ``raise SystemExit``: papermill counts them a success."""
    return ename == "SystemExit" and str(evalue or "") in ("", "0")


# --- the parameters a notebook declares --------------------------------------------------------

_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")


def declared_parameters(nb: Mapping[str, Any]) -> list[str]:
    """The names the first cell tagged ``parameters`` assigns at top level (Python-like syntax:
    ``name = value`` or ``name: type = value``)."""
    for cell in nb.get("cells") or []:
        if PARAMETERS_TAG in _tags(cell):
            names = []
            for line in _source(cell).splitlines():
                match = _ASSIGNMENT.match(line)
                if match and match.group("name") not in names:
                    names.append(match.group("name"))
            return names
    return []


def describe_parameters(nb: Mapping[str, Any]) -> list[str]:
    """``--help-notebook``: one line per parameter the cell tagged ``parameters`` assigns,
    as written there (value, annotation and comment)."""
    for cell in nb.get("cells") or []:
        if PARAMETERS_TAG in _tags(cell):
            return [line.strip() for line in _source(cell).splitlines() if _ASSIGNMENT.match(line)]
    return []


def notebook_language(nb: Mapping[str, Any], override: str | None = None) -> str | None:
    meta = nb.get("metadata") or {}
    return (
        override
        or (meta.get("language_info") or {}).get("name")
        or (meta.get("kernelspec") or {}).get("language")
    )


def notebook_kernel_name(nb: Mapping[str, Any], override: str | None = None) -> str | None:
    return override or ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or None


# --- preparing the notebook (pure) -------------------------------------------------------------


@dataclass
class Prepared:
    notebook: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def prepare_notebook(
    nb: Mapping[str, Any],
    *,
    parameters: Mapping[str, Any] | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
    report_mode: bool = False,
    language: str | None = None,
    start_time: str | None = None,
    execute: bool = True,
) -> Prepared:
    """The notebook as papermill's ``execute_notebook`` has it just before the first cell runs.

    Parameters are injected (a cell tagged ``injected-parameters`` replacing a previous one,
    else after the first cell tagged ``parameters``, else at the top), previous error markers
    removed; with ``execute`` (not ``--prepare-only``) every cell's record is reset to pending
    and code cells are cleared.
    """
    out: dict[str, Any] = copy.deepcopy(dict(nb))
    warnings: list[str] = []
    meta = out.setdefault("metadata", {})
    record = meta.setdefault(
        "papermill",
        {
            "default_parameters": {},
            "parameters": {},
            "environment_variables": {},
            "version": f"collab_kernels {__version__}",
        },
    )
    cells: list[dict[str, Any]] = out.setdefault("cells", [])
    for cell in cells:
        cell.setdefault("metadata", {}).setdefault("tags", [])
        cell["metadata"].setdefault("papermill", {})
    if parameters:
        declared = declared_parameters(out)
        for name in parameters:
            if name not in declared:
                warnings.append(
                    f"parameter {name!r} is not assigned in the notebook's parameters cell"
                )
        lang = notebook_language(out, language) or "python"
        injected: dict[str, Any] = {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"tags": [INJECTED_TAG]},
            "outputs": [],
            "source": parameters_source(parameters, lang),
        }
        if report_mode:
            injected["metadata"]["jupyter"] = {"source_hidden": True}
        tagged = [i for i, c in enumerate(cells) if INJECTED_TAG in _tags(c)]
        params_at = [i for i, c in enumerate(cells) if PARAMETERS_TAG in _tags(c)]
        if tagged:
            cells[tagged[0]] = injected
        elif params_at:
            cells.insert(params_at[0] + 1, injected)
        else:
            warnings.append(
                "no cell is tagged 'parameters': the parameters go into a new first cell"
            )
            cells.insert(0, injected)
        record["parameters"] = _json_safe(dict(parameters))
    if report_mode:
        for cell in cells:
            if cell.get("cell_type") == "code":
                cell["metadata"].setdefault("jupyter", {})["source_hidden"] = True
    record["input_path"] = input_path
    record["output_path"] = output_path
    cells[:] = [c for c in cells if ERROR_MARKER_TAG not in _tags(c)]
    if execute:
        record.update(start_time=start_time, end_time=None, duration=None, exception=None)
        for cell in cells:
            if cell.get("cell_type") == "code":
                cell["execution_count"] = None
                cell["outputs"] = []
            cell["metadata"]["papermill"] = pending_record()
    # nbformat 4.5 cell ids (as papermill's upgrade gives them), so that the document and the
    # file agree on them
    if (out.get("nbformat"), out.get("nbformat_minor", 0)) < (4, 5):
        out["nbformat"], out["nbformat_minor"] = 4, 5
    for cell in cells:
        if not cell.get("id"):
            cell["id"] = secrets.token_hex(4)
    return Prepared(out, warnings)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``: the shared document
    (and strict JSON) cannot hold them; papermill writes them as bare ``NaN``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def pending_record() -> dict[str, Any]:
    return {
        "exception": None,
        "start_time": None,
        "end_time": None,
        "duration": None,
        "status": PENDING,
    }


def error_marker_cells(execution_count: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the headline at the top, the anchor just before the failing cell), tagged as papermill
    tags them so that papermill removes them on its next run, and we do too."""
    headline = (
        f"<span {_RED}>The run stopped at an exception in "
        f'<a href="#papermill-error-cell">In [{execution_count}]</a>.</span>'
    )
    anchor = (
        f'<span id="papermill-error-cell" {_RED}>This cell raised; the run stopped here:</span>'
    )

    def cell(text: str) -> dict[str, Any]:
        return {"cell_type": "markdown", "metadata": {"tags": [ERROR_MARKER_TAG]}, "source": text}

    return cell(headline), cell(anchor)


# --- recording a run in the live document -------------------------------------------------------


@dataclass
class CellOutcome:
    result: str | None
    ename: str | None = None
    evalue: str | None = None


class RunRecorder:
    """Writes papermill's records into a notebook's live document while a run goes on.

    ``ynotebook`` is the run's ``jupyter_ydoc.YNotebook``; each call is one transaction.
    """

    def __init__(self, ynotebook: Any, start_time: str):
        self.ynotebook = ynotebook
        self.start_time = start_time
        self.failed: tuple[str, CellOutcome] | None = None

    def _cells(self) -> list[tuple[str, Any]]:
        return [(str(ycell.get("id")), ycell) for ycell in self.ynotebook.ycells]

    @staticmethod
    def _record(ycell: Any) -> dict[str, Any]:
        meta = ycell.get("metadata")
        value = _plain(meta.get("papermill")) if meta is not None else None
        return dict(value) if isinstance(value, dict) else pending_record()

    @staticmethod
    def _store(ycell: Any, record: dict[str, Any]) -> None:
        ycell["metadata"]["papermill"] = record

    @classmethod
    def _passed(cls, ycell: Any, record: dict[str, Any], when: str) -> None:
        """A pending cell the run went past without executing it (markdown, raw, empty
        code): completed, in no time."""
        record.update(
            status=COMPLETED, start_time=when, end_time=when, duration=0.0, exception=False
        )
        cls._store(ycell, record)

    def cell_started(self, cell_id: str) -> None:
        now = now_iso()
        with self.ynotebook.ydoc.transaction():
            for cid, ycell in self._cells():
                record = self._record(ycell)
                if cid == cell_id:
                    record.update(status=RUNNING, start_time=now, exception=False)
                    self._store(ycell, record)
                    return
                if record.get("status") == PENDING:
                    self._passed(ycell, record, now)

    def cell_finished(self, cell_id: str, outcome: CellOutcome) -> None:
        now = now_iso()
        with self.ynotebook.ydoc.transaction():
            for cid, ycell in self._cells():
                if cid != cell_id:
                    continue
                record = self._record(ycell)
                if not record.get("start_time"):
                    record["start_time"] = now
                record["end_time"] = now
                record["duration"] = _seconds(record["start_time"], now)
                if outcome.result == "error":
                    record.update(status=FAILED, exception=True)
                    if self.failed is None:
                        self.failed = (cell_id, outcome)
                else:
                    record.update(status=COMPLETED, exception=False)
                self._store(ycell, record)
                return

    def reconcile(self, status: Mapping[str, Any]) -> None:
        """The server's final record is authoritative: a cell it reports failed is failed."""
        for cell in status.get("cells") or []:
            if cell.get("result") != "error":
                continue
            cell_id = str(cell.get("cell_id"))
            if self.failed is not None and self.failed[0] == cell_id:
                continue
            error = cell.get("error") or {}
            outcome = CellOutcome("error", error.get("ename"), error.get("evalue"))
            with self.ynotebook.ydoc.transaction():
                for cid, ycell in self._cells():
                    if cid == cell_id:
                        record = self._record(ycell)
                        record.update(status=FAILED, exception=True)
                        if not record.get("start_time"):
                            record["start_time"] = record["end_time"] = now_iso()
                            record["duration"] = 0.0
                        self._store(ycell, record)
            if self.failed is None:
                self.failed = (cell_id, outcome)

    def finish(self, *, markers: bool = True) -> None:
        """The notebook's end record; error markers when a cell failed (not a clean exit)."""
        end = now_iso()
        meta = self.ynotebook.ydoc.get("meta", type=_map_type())
        with self.ynotebook.ydoc.transaction():
            for _cid, ycell in self._cells():
                record = self._record(ycell)
                if record.get("status") == FAILED:
                    break
                if record.get("status") == PENDING and self.failed is None:
                    self._passed(ycell, record, end)
            metadata = meta.get("metadata")
            found = _plain(metadata.get("papermill")) if metadata is not None else None
            record = dict(found) if isinstance(found, dict) else {}
            record.update(
                start_time=record.get("start_time") or self.start_time,
                end_time=end,
                duration=_seconds(record.get("start_time") or self.start_time, end),
                exception=True if self.failed is not None else None,
            )
            if metadata is not None:
                metadata["papermill"] = record
            if markers and self.failed is not None:
                cell_id, outcome = self.failed
                if not is_clean_exit(outcome.ename, outcome.evalue):
                    self._insert_markers(cell_id)

    def _insert_markers(self, cell_id: str) -> None:
        ycells = self.ynotebook.ycells
        index = next((i for i, (cid, _) in enumerate(self._cells()) if cid == cell_id), None)
        if index is None:
            return
        count = ycells[index].get("execution_count")
        headline, anchor = error_marker_cells(int(count) if count is not None else None)
        ycells.insert(index, self.ynotebook.create_ycell(anchor))
        ycells.insert(0, self.ynotebook.create_ycell(headline))


def _plain(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


def _map_type() -> Any:
    from pycrdt import Map

    return Map
