"""Pure parts of the client and the CLI, without a server: papermill's notebook preparation,
parameter precedence, argument planning, path templates, server matching."""

from __future__ import annotations

import argparse

import pytest

from collab_kernels.client.cli import _pairs_as_single_tokens, build_parser
from collab_kernels.client.cli_run import format_path, plan
from collab_kernels.client.cli_term import UsageError
from collab_kernels.client.papermill import (
    ERROR_MARKER_TAG,
    PENDING,
    declared_parameters,
    is_clean_exit,
    prepare_notebook,
)
from collab_kernels.client.params import merge_parameters
from collab_kernels.client.servers import ServerInfo


def _nb(*cells: tuple[str, str, list[str]]) -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 4,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [
            {"cell_type": t, "source": s, "metadata": {"tags": tags}}
            | (
                {"outputs": [{"output_type": "stream"}], "execution_count": 3}
                if t == "code"
                else {}
            )
            for t, s, tags in cells
        ],
    }


def test_prepare_injects_resets_and_removes_markers():
    nb = _nb(
        ("markdown", "old marker", [ERROR_MARKER_TAG]),
        ("code", "a = 1\nb: int = 2\nc == 3", ["parameters"]),
        ("code", "print(a)", []),
    )
    prepared = prepare_notebook(
        nb, parameters={"a": 5, "zz": "x"}, input_path="in", output_path="out", start_time="t0"
    )
    cells = prepared.notebook["cells"]
    assert [c["metadata"]["tags"] for c in cells] == [["parameters"], ["injected-parameters"], []]
    assert cells[1]["source"] == '# Parameters\na = 5\nzz = "x"\n'
    assert all(c["metadata"]["papermill"]["status"] == PENDING for c in cells)
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells)
    record = prepared.notebook["metadata"]["papermill"]
    assert record["parameters"] == {"a": 5, "zz": "x"}
    assert (record["input_path"], record["output_path"], record["start_time"]) == (
        "in",
        "out",
        "t0",
    )
    assert [w for w in prepared.warnings if "'zz'" in w]  # not declared in the parameters cell
    assert all(c.get("id") for c in cells) and prepared.notebook["nbformat_minor"] == 5
    assert nb["cells"][0]["metadata"]["tags"] == [ERROR_MARKER_TAG]  # the input is not touched


def test_prepare_only_keeps_outputs_and_report_mode_hides_code():
    nb = _nb(("code", "x = 1", []))
    prepared = prepare_notebook(nb, parameters={"x": 2}, report_mode=True, execute=False)
    cells = prepared.notebook["cells"]
    assert cells[0]["metadata"]["tags"] == ["injected-parameters"]  # no parameters cell: on top
    assert any("no cell is tagged 'parameters'" in w for w in prepared.warnings)
    assert cells[1]["outputs"] and cells[1]["execution_count"] == 3
    assert all(c["metadata"]["jupyter"]["source_hidden"] for c in cells)
    assert "start_time" not in prepared.notebook["metadata"]["papermill"]


def test_declared_parameters_and_clean_exits():
    assert declared_parameters(
        _nb(("code", "a = 1\nb: float = 2.0 # x\nif a == 1: pass", ["parameters"]))
    ) == ["a", "b"]
    assert is_clean_exit("SystemExit", "") and is_clean_exit("SystemExit", "0")
    assert not is_clean_exit("SystemExit", "1") and not is_clean_exit("ValueError", "0")


def test_parameter_precedence_is_papermills():
    params = merge_parameters(
        paths={"PAPERMILL_INPUT_PATH": "in.ipynb", "a": "path"},
        base64_yaml=["YTogYjY0CmI6IGI2NAo="],  # a: b64, b: b64
        yaml_texts=["b: yaml\nc: 2020-01-02"],
        values=[("c", "3"), ("d", "nan")],
        raw=[("d", "raw")],
    )
    assert params == {
        "PAPERMILL_INPUT_PATH": "in.ipynb",
        "a": "b64",
        "b": "yaml",
        "c": 3,
        "d": "raw",
    }


def _args(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(_pairs_as_single_tokens(["run", *argv]))
    for dest in ("parameter", "raw"):
        for token in args.__dict__[f"pair_{dest}"]:
            getattr(args, dest).append(token.split("\0", 1))
    return args


def test_values_starting_with_a_dash():
    args = _args("nb.ipynb", "-p", "low", "-inf", "-r", "flag", "-x", "-p", "n", "1")
    assert args.parameter == [["low", "-inf"], ["n", "1"]] and args.raw == [["flag", "-x"]]


def test_plan_input_output_batches_and_dashes():
    assert [(p.input, p.output) for p in plan(_args("a.ipynb"))] == [("a.ipynb", None)]
    assert [(p.input, p.output) for p in plan(_args("a.ipynb", "b.ipynb"))] == [
        ("a.ipynb", "b.ipynb")
    ]
    assert [(p.input, p.output) for p in plan(_args("-"))] == [("-", "-")]
    batch = plan(_args("a.ipynb", "b.ipynb", "c.ipynb", "--output-dir", "out"))
    assert [(p.input, p.output) for p in batch] == [
        ("a.ipynb", "out/a.ipynb"),
        ("b.ipynb", "out/b.ipynb"),
        ("c.ipynb", "out/c.ipynb"),
    ]
    assert [p.output for p in plan(_args("--batch", "a.ipynb", "b.ipynb"))] == [None, None]
    for bad in (
        ("a.ipynb", "b.ipynb", "-o", "c.ipynb"),
        ("a", "b", "c", "-o", "x"),
        ("a", "-", "c"),
    ):
        with pytest.raises(UsageError):
            plan(_args(*bad))


def test_path_templates():
    assert format_path("out_{region}.ipynb", {"region": "EU"}) == "out_EU.ipynb"
    assert len(format_path("{pm[run_uuid]}.ipynb", {})) == 36 + 6
    assert format_path("-", {}) == "-"
    with pytest.raises(UsageError, match="missing"):
        format_path("out_{missing}.ipynb", {})


def test_same_server_for_loopback_names():
    server = ServerInfo(url="http://localhost:8888/")
    assert server.same_server("http://127.0.0.1:8888/?token=abc")
    assert server.same_server("localhost:8888")
    assert not server.same_server("http://127.0.0.1:8889/")
    assert not server.same_server("http://localhost:8888/user/x/")
    assert not server.same_server("http://example.org:8888/")


def test_help_notebook_lists_the_parameters_cell(tmp_path, capsys):
    from collab_kernels.client.cli import main
    from collab_kernels.client.papermill import describe_parameters

    nb = _nb(
        ("code", "import x", []), ("code", "a = 1  # first\nb: str = 'x'\nprint(a)", ["parameters"])
    )
    assert describe_parameters(nb) == ["a = 1  # first", "b: str = 'x'"]
    path = tmp_path / "p.ipynb"
    path.write_text(__import__("json").dumps(nb))
    assert main(["run", str(path), "--help-notebook"]) == 0
    assert "a = 1  # first" in capsys.readouterr().out
