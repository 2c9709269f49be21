"""Papermill-style parameters: value parsing, files, code generation, placement in the doc."""

from __future__ import annotations

import math

import pytest
from jupyter_ydoc import YNotebook

from collab_kernels.client.params import (
    INJECTED_TAG,
    ParameterError,
    inject_parameters,
    load_parameters_file,
    parameters_source,
    parse_cli_value,
)


def _doc(cells):
    nb = YNotebook()
    nb.set(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "source": src,
                    "metadata": {"tags": tags},
                    "outputs": [],
                    "execution_count": None,
                    "id": f"c{i}",
                }
                for i, (src, tags) in enumerate(cells)
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    return nb


def test_cli_values_are_typed_like_papermill():
    assert parse_cli_value("3") == 3
    assert parse_cli_value("-2.5") == -2.5
    assert parse_cli_value("True") is True
    assert parse_cli_value("False") is False
    assert parse_cli_value("None") is None
    assert parse_cli_value("hello world") == "hello world"
    assert math.isnan(parse_cli_value("nan")) and parse_cli_value("-inf") == float("-inf")


def test_parameters_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("alpha: 0.5\nnames: [a, b]\nnested: {k: 1}\n")
    assert load_parameters_file(f) == {"alpha": 0.5, "names": ["a", "b"], "nested": {"k": 1}}
    f.write_text("- just\n- a list\n")
    with pytest.raises(ParameterError, match="mapping"):
        load_parameters_file(f)
    f.write_text("a: [unclosed\n")
    with pytest.raises(ParameterError, match="YAML"):
        load_parameters_file(f)
    with pytest.raises(ParameterError, match="not found"):
        load_parameters_file(tmp_path / "missing.yaml")


def test_python_source_round_trips():
    params = {"a": 1, "b": "it's", "c": [1.5, None, True], "d": {"x": "y"}, "e": float("inf")}
    source = parameters_source(params)
    ns: dict = {}
    exec(source, ns)
    assert {k: ns[k] for k in params} == params


def test_bad_names_and_languages():
    with pytest.raises(ParameterError, match="identifier"):
        parameters_source({"not valid": 1})
    with pytest.raises(ParameterError, match="identifier"):
        parameters_source({"class": 1})
    with pytest.raises(ParameterError, match="language"):
        parameters_source({"a": 1}, "cobol")
    assert "a = 1L" in parameters_source({"a": 1}, "R")


def test_injected_after_parameters_cell_and_replaced_on_rerun():
    nb = _doc([("import x", []), ("a = 0", ["parameters"]), ("print(a)", [])])
    first = inject_parameters(nb, {"a": 1})
    cells = nb.get()["cells"]
    assert [c["source"] for c in cells][:2] == ["import x", "a = 0"]
    assert cells[2]["id"] == first and cells[2]["metadata"]["tags"] == [INJECTED_TAG]
    assert "a = 1" in cells[2]["source"]
    second = inject_parameters(nb, {"a": 2})
    cells = nb.get()["cells"]
    assert len(cells) == 4
    injected = [c for c in cells if INJECTED_TAG in c["metadata"].get("tags", [])]
    assert [c["id"] for c in injected] == [second]
    assert cells[2]["id"] == second and "a = 2" in cells[2]["source"]


def test_injected_at_top_without_parameters_cell():
    nb = _doc([("print(a)", [])])
    inject_parameters(nb, {"a": "x"})
    cells = nb.get()["cells"]
    assert cells[0]["metadata"]["tags"] == [INJECTED_TAG]
    assert cells[1]["source"] == "print(a)"
