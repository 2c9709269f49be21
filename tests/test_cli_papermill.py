"""``collab-kernels run`` against papermill 2.7: its own test notebooks, run by both.

The notebooks come from papermill's sdist (``papermill/tests/notebooks/``), downloaded once by
``pip download`` into pytest's cache. Each case runs ``papermill IN OUT`` and
``collab-kernels run IN OUT`` (embedded server) on copies of the same notebook and compares
exit codes and the executed notebooks where the behaviour is meant to match. Where it is not
(docs/papermill.md), the test asserts our behaviour and papermill's side by side.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
from fixtures_client import CLI, read_notebook, stream_text, write_notebook

from collab_kernels.client.cli import (
    EXIT_CELL_ERROR,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)

pytestmark = pytest.mark.timeout(300)

PAPERMILL = str(Path(sys.executable).with_name("papermill"))


@pytest.fixture(scope="session")
def papermill_notebooks(request) -> Path:
    """papermill 2.7's test notebooks, from its sdist (fetched once, kept in pytest's cache)."""
    cache = Path(request.config.cache.mkdir("papermill-2.7-sdist"))
    notebooks = cache / "notebooks"
    if not (notebooks / "simple_execute.ipynb").exists():
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, "papermill==2.7.*", "-d", str(cache), "-q"], check=True)
        sdist = next(cache.glob("papermill-2.7*.tar.gz"))
        notebooks.mkdir(exist_ok=True)
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if parts[-3:-1] == ("tests", "notebooks") and member.name.endswith(".ipynb"):
                    data = tar.extractfile(member)
                    assert data is not None
                    (notebooks / parts[-1]).write_bytes(data.read())
    return notebooks


async def _run(*cmd: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=str(cwd),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), 240)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def both(papermill_notebooks, tmp_path, jp_environ):
    """Run a papermill test notebook through papermill and through collab-kernels."""

    async def run(name: str, *args: str, ours: tuple[str, ...] = ()):
        for who in ("pm", "ck"):
            shutil.copy(papermill_notebooks / name, tmp_path / f"{who}_{name}")
        pm, ck = (asyncio.ensure_future(c) for c in (
            _run(PAPERMILL, f"pm_{name}", f"pm_out_{name}", "--no-progress-bar", *args,
                 cwd=tmp_path),
            _run(CLI, "run", f"ck_{name}", f"ck_out_{name}", "--no-progress", *args, *ours,
                 cwd=tmp_path),
        ))  # fmt: skip
        (pm_code, _, pm_err), (ck_code, _, ck_err) = await asyncio.gather(pm, ck)
        outputs = [tmp_path / f"{who}_out_{name}" for who in ("pm", "ck")]
        nbs = [read_notebook(p) if p.exists() else None for p in outputs]
        return (pm_code, nbs[0], pm_err), (ck_code, nbs[1], ck_err)

    return run


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def comparable(nb, who: str) -> dict:
    """What papermill-based tools read, without times, ids and versions."""
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        record = cell.metadata.get("papermill", {})
        entry = {
            "type": cell.cell_type,
            "tags": tags,
            "status": record.get("status"),
            "exception": record.get("exception"),
            "hidden": cell.metadata.get("jupyter", {}).get("source_hidden", False),
        }
        if "papermill-error-cell-tag" not in tags:  # our marker text is our own
            entry["source"] = _text(cell.source)
        if cell.cell_type == "code":
            entry["count"] = cell.execution_count
            entry["outputs"] = [
                {
                    k: _text(v) if k in ("text",) else v
                    for k, v in o.items()
                    if k in ("output_type", "name", "text", "ename", "evalue")
                }
                | ({"plain": _text(o["data"].get("text/plain"))} if "data" in o else {})
                for o in cell.outputs
            ]
        cells.append(entry)
    record = dict(nb.metadata.get("papermill", {}))
    return {
        "cells": json.loads(json.dumps(cells).replace(f"{who}_", "")),
        # as JSON text: NaN (from -p x nan) is not equal to itself
        "parameters": json.dumps(record.get("parameters"), sort_keys=True).replace(f"{who}_", ""),
        "exception": record.get("exception"),
        "paths": [str(record.get(k)).replace(f"{who}_", "") for k in ("input_path", "output_path")],
        "keys": sorted(set(record) - {"version"}),
        "timed": all(
            isinstance(c.metadata.get("papermill", {}).get("duration"), (int, float))
            for c in nb.cells
            if c.metadata.get("papermill", {}).get("status") in ("completed", "failed")
        )
        and isinstance(record.get("duration"), (int, float)),
    }


@pytest.mark.parametrize(
    "name, args, code",
    [
        ("simple_execute.ipynb", ("-p", "msg", "Hello"), 0),
        ("no_parameters.ipynb", ("-p", "msg", "Hello"), 0),  # injected at the top
        ("broken1.ipynb", (), 1),  # old markers removed, new ones added, the rest pending
        ("line_magic_error.ipynb", (), 1),
        ("sysexit.ipynb", (), 0),  # sys.exit() counts as success
        ("sysexit0.ipynb", (), 0),
        ("systemexit.ipynb", (), 0),
        ("sysexit1.ipynb", (), 1),
        ("report_mode_test.ipynb", ("--report-mode", "-p", "a", "2"), 0),
        ("nb_version_4.4.ipynb", ("-y", "var: 7\nother: [1, x]"), 0),
        # its parameters cell is broken on purpose (papermill's inspection tests): both fail
        ("complex_parameters.ipynb", ("-p", "msg", "2.5", "-r", "b", "3"), 1),
    ],
)
async def test_same_as_papermill(both, name, args, code):
    (pm_code, pm_nb, pm_err), (ck_code, ck_nb, ck_err) = await both(name, *args)
    assert pm_code == code, pm_err
    assert ck_code == code, ck_err
    assert comparable(ck_nb, "ck") == comparable(pm_nb, "pm")


async def test_nan_parameter(both):
    """-p x nan is a float, written as papermill writes it; only metadata.papermill.parameters
    differs: the shared document cannot hold NaN, so it records the string "nan"."""
    (pm_code, pm_nb, _), (ck_code, ck_nb, err) = await both(
        "simple_execute.ipynb", "-p", "msg", "nan", "-p", "big", "-inf"
    )
    assert pm_code == ck_code == 0, err
    assert ck_nb.cells[1].source == pm_nb.cells[1].source
    assert "msg = float('nan')\nbig = float('-inf')" in ck_nb.cells[1].source
    assert stream_text(ck_nb.cells[2]) == stream_text(pm_nb.cells[2]) == "nan\n"
    assert ck_nb.metadata.papermill.parameters == {"msg": "nan", "big": "-inf"}
    assert str(pm_nb.metadata.papermill.parameters["msg"]) == "nan"  # a float NaN there


async def test_prepare_only_and_base64_parameters_as_papermill(both):
    params = base64.b64encode(b"msg: from base64\nn: 3\n").decode()
    (pm_code, pm_nb, _), (ck_code, ck_nb, err) = await both(
        "result_no_exec.ipynb", "--prepare-only", "-b", params, "--inject-paths"
    )
    assert pm_code == ck_code == 0, err
    assert comparable(ck_nb, "ck") == comparable(pm_nb, "pm")
    injected = ck_nb.cells[1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert 'PAPERMILL_INPUT_PATH = "ck_result_no_exec.ipynb"' in injected.source
    assert 'msg = "from base64"' in injected.source and ck_nb.cells[1].outputs == []


async def test_no_kernel_name_and_missing_kernel_are_errors_naming_the_installed(both):
    # papermill raises (exit 1); we exit 2 (a usage error), or 1 with --exit-codes papermill
    (pm_code, _, pm_err), (ck_code, ck_nb, err) = await both("blank-vscode.ipynb")
    assert pm_code == 1 and "No kernel name found" in pm_err
    assert ck_code == EXIT_USAGE and "has no kernel name" in err and ck_nb is None
    (pm_code, _, pm_err), (ck_code, _, err) = await both(
        "notimplemented_translator.ipynb", ours=("--exit-codes", "papermill")
    )
    assert pm_code == 1 and "No such kernel named r" in pm_err
    assert ck_code == 1 and "no kernel named 'r'" in err
    assert "installed:" in err and "python3" in err.split("installed:")[1]


async def test_kernel_override_with_k(both):
    # -k names a kernel the notebook does not: papermill and we use it
    (pm_code, pm_nb, _), (ck_code, ck_nb, err) = await both(
        "notimplemented_translator.ipynb", "-k", "python3", "-l", "python", "-p", "msg", "1"
    )
    assert pm_code == ck_code == 0, err
    assert comparable(ck_nb, "ck") == comparable(pm_nb, "pm")


def _custom(folder: Path, name: str, cells: list[str]) -> Path:
    return write_notebook(folder / name, cells)


async def test_dead_kernel_timeout_and_closed_stdin(tmp_path, jp_environ):
    """Where our exit codes differ from papermill's on purpose, and --exit-codes papermill."""
    _custom(tmp_path, "dead.ipynb", ["import os\nprint('bye', flush=True)\nos._exit(1)", "1"])
    _custom(tmp_path, "slow.ipynb", ["import time\ntime.sleep(60)", "print('never')"])
    _custom(tmp_path, "ask.ipynb", ["name = input('name? ')", "print('never')"])
    runs = await asyncio.gather(
        _run(PAPERMILL, "dead.ipynb", "pm_dead.ipynb", cwd=tmp_path),
        _run(CLI, "run", "dead.ipynb", "ck_dead.ipynb", cwd=tmp_path),
        _run(CLI, "run", "dead.ipynb", "ck_dead2.ipynb", "--exit-codes", "papermill", cwd=tmp_path),
        _run(PAPERMILL, "slow.ipynb", "pm_slow.ipynb", "--execution-timeout", "2", cwd=tmp_path),
        _run(CLI, "run", "slow.ipynb", "ck_slow.ipynb", "--execution-timeout", "2", cwd=tmp_path),
        _run(PAPERMILL, "ask.ipynb", "pm_ask.ipynb", cwd=tmp_path),
        _run(CLI, "run", "ask.ipynb", "ck_ask.ipynb", cwd=tmp_path),
    )
    codes = [r[0] for r in runs]
    expected = [138, EXIT_KERNEL_DIED, 138, 1, EXIT_TIMEOUT, 1, EXIT_CELL_ERROR]
    wrong = [(i, runs[i][0], runs[i][2]) for i, code in enumerate(expected) if codes[i] != code]
    assert not wrong, "\n\n".join(f"run {i} exited {c}, stderr:\n{e}" for i, c, e in wrong)
    dead = read_notebook(tmp_path / "ck_dead.ipynb")
    markers = [c for c in dead.cells if "papermill-error-cell-tag" in c.metadata.tags]
    code_cells = [c for c in dead.cells if c.cell_type == "code"]
    assert len(markers) == 2  # papermill leaves none: it dies with a traceback instead
    assert code_cells[0].metadata.papermill["status"] == "failed"
    assert code_cells[0].outputs[-1]["ename"] in ("KernelDied", "KernelRestarted")
    assert code_cells[1].metadata.papermill["status"] == "pending"
    # input() with stdin closed fails the cell at once (papermill: StdinNotImplementedError)
    assert "called input() but stdin is closed" in runs[6][2]
    ask = [c for c in read_notebook(tmp_path / "ck_ask.ipynb").cells if c.cell_type == "code"]
    assert ask[0].outputs[-1]["ename"] == "KeyboardInterrupt"
    pm_ask = [c for c in read_notebook(tmp_path / "pm_ask.ipynb").cells if c.cell_type == "code"]
    assert pm_ask[0].outputs[-1]["ename"] == "StdinNotImplementedError"
    assert ask[1].outputs == []


def _files(folder: Path) -> list[str]:
    # (not .ipynb_checkpoints: the server keeps checkpoints there, as for every notebook)
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


async def test_stdin_and_stdout_as_notebooks(papermill_notebooks, tmp_path, jp_environ):
    source = (papermill_notebooks / "simple_execute.ipynb").read_bytes()
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    # `-` as OUTPUT: the executed notebook on stdout, nothing left on disk
    shutil.copy(papermill_notebooks / "simple_execute.ipynb", tmp_path / "in.ipynb")
    code, out, err = await _run(CLI, "run", "in.ipynb", "-", "-p", "msg", "out", cwd=tmp_path)
    assert code == EXIT_OK, err
    nb = nbformat.reads(out, as_version=4)
    assert stream_text(nb.cells[2]) == "out\n"
    assert nb.metadata.papermill["output_path"] == "-"
    assert _files(tmp_path) == ["in.ipynb"]
    # `-` as NOTEBOOK: read from stdin
    code, out, err = await _run(
        CLI, "run", "-", "out.ipynb", "-p", "msg", "piped", "--log-output", cwd=tmp_path,
        stdin=source,
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert "piped" in err  # --log-output goes to stderr when stdin/stdout carry notebooks
    assert stream_text(read_notebook(tmp_path / "out.ipynb").cells[2]) == "piped\n"
    assert _files(tmp_path) == ["in.ipynb", "out.ipynb"]


async def test_stdout_and_stderr_files_as_papermill(tmp_path, jp_environ):
    _custom(
        tmp_path,
        "streams.ipynb",
        ["import sys\nprint('one')\nprint('err', file=sys.stderr)", "print('two')"],
    )
    for who, cmd in (("pm", [PAPERMILL]), ("ck", [CLI, "run"])):
        code, _, err = await _run(
            *cmd, "streams.ipynb", f"{who}.ipynb", "--stdout-file", f"{who}.out",
            "--stderr-file", f"{who}.err", cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
    for ext in ("out", "err"):
        assert (tmp_path / f"ck.{ext}").read_text() == (tmp_path / f"pm.{ext}").read_text()
    assert (tmp_path / "ck.out").read_text() == "one\ntwo\n"


async def test_batch_on_one_embedded_server(tmp_path, jp_environ, jp_data_dir):
    for i in range(3):
        _custom(tmp_path, f"nb{i}.ipynb", [f"print({i} * 10)"])
    _custom(tmp_path, "bad.ipynb", ["1 / 0"])
    (tmp_path / "out").mkdir()
    code, _, err = await _run(
        CLI, "run", "nb0.ipynb", "bad.ipynb", "nb1.ipynb", "nb2.ipynb", "--output-dir", "out",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == EXIT_CELL_ERROR, err  # the first failure's code; the others still ran
    assert "batch of 4: 3 ok; bad.ipynb: exit 1" in err
    for i in range(3):
        out_nb = read_notebook(tmp_path / "out" / f"nb{i}.ipynb")
        assert stream_text(out_nb.cells[0]) == f"{i * 10}\n"
        assert read_notebook(tmp_path / f"nb{i}.ipynb").cells[0].outputs == []
    # --batch with two notebooks: both are inputs, run in place
    code, _, err = await _run(CLI, "run", "--batch", "nb0.ipynb", "nb1.ipynb", cwd=tmp_path)
    assert code == EXIT_OK, err
    assert stream_text(read_notebook(tmp_path / "nb1.ipynb").cells[0]) == "10\n"
    # a server that lives as long as the command keeps no update store and no file-id
    # database in the user's data directory (nobody reconnects to it; a long-lived server
    # of the same data directory keeps the store to itself)
    assert not (jp_data_dir / "collab_kernels").exists()
    assert not (jp_data_dir / "file_id_manager.db").exists()


COUNTER = "try:\n    n += 1\nexcept NameError:\n    n = 1\nprint(n)"


async def test_server_runs_get_a_fresh_kernel_shut_down_after(
    make_notebook, cli, server_args, server_info, jp_serverapp
):
    make_notebook("counter.ipynb", [COUNTER])
    km = jp_serverapp.kernel_manager
    before = set(km.list_kernel_ids())
    for _ in range(3):
        code, out, err = await cli("run", "counter.ipynb", *server_args, "--log-output")
        assert code == EXIT_OK, err
        assert out.splitlines() == ["1"]  # no state leaks from the previous run
    assert set(km.list_kernel_ids()) == before  # each run's kernel was shut down
    # --reuse-kernel keeps the session's kernel and its state
    outs = []
    for _ in range(2):
        code, out, err = await cli(
            "run", "counter.ipynb", *server_args, "--log-output", "--reuse-kernel"
        )
        assert code == EXIT_OK, err
        outs.append(out.strip())
    assert outs == ["1", "2"]
    # a default run on a notebook that has a session: its kernel restarted, kept after
    code, out, err = await cli("run", "counter.ipynb", *server_args, "--log-output")
    assert code == EXIT_OK and out.strip() == "1", err
    assert "restarting its kernel" in err
    assert len(set(km.list_kernel_ids()) - before) == 1


async def test_missing_kernelspec_with_server(make_notebook, cli, server_args, jp_root_dir):
    path = make_notebook("r.ipynb", ["1"])
    nb = read_notebook(path)
    nb.metadata.kernelspec = {"name": "ir", "display_name": "R", "language": "R"}
    nbformat.write(nb, path)
    code, out, err = await cli("run", "r.ipynb", *server_args)
    assert code == EXIT_USAGE and "no kernel named 'ir'" in err
    assert "installed:" in err and "python3" in err.split("installed:")[1]
    assert read_notebook(path).metadata.kernelspec["name"] == "ir"  # untouched, not run
    code, out, err = await cli("run", "r.ipynb", *server_args, "-k", "python3", "--log-output")
    assert code == EXIT_OK and out.strip() == "1", err


async def test_run_with_server_does_not_import_jupyter_server(make_notebook, server_args, tmp_path):
    make_notebook("quick.ipynb", ["print('hi')"])
    code = (
        "import sys\n"
        "from collab_kernels.client.cli import main\n"
        f"rc = main(['run', 'quick.ipynb', *{server_args!r}, '--no-progress'])\n"
        "print(json.dumps([rc, 'jupyter_server.serverapp' in sys.modules,"
        " 'jupyter_server' in sys.modules]))\n"
    )
    code = "import json\n" + code
    rc, out, err = await _run(sys.executable, "-c", code, cwd=tmp_path)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == [0, False, False]


async def test_python_api_has_papermills_shape(papermill_notebooks, tmp_path, jp_environ):
    from collab_kernels.client import ExecutionError, execute_notebook

    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    shutil.copy(papermill_notebooks / "simple_execute.ipynb", tmp_path / "in.ipynb")
    shutil.copy(papermill_notebooks / "broken1.ipynb", tmp_path / "broken.ipynb")

    def run():
        nb = execute_notebook(
            str(tmp_path / "in.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"msg": "api"},
            progress_bar=False,
        )
        with pytest.raises(ExecutionError) as failure:
            execute_notebook(tmp_path / "broken.ipynb", None, progress_bar=False)
        return nb, failure.value

    nb, error = await asyncio.to_thread(run)
    assert stream_text(nb.cells[2]) == "api\n"
    assert nb.metadata.papermill["parameters"] == {"msg": "api"}
    assert stream_text(read_notebook(tmp_path / "out.ipynb").cells[2]) == "api\n"
    assert error.ename == "AssertionError" and error.exec_count == 2
    assert "Exception encountered" in str(error)
    assert _files(tmp_path) == ["broken.ipynb", "in.ipynb", "out.ipynb"]  # no scratch file left
