"""``collab-kernels`` as a real subprocess against a real server (the test server or embedded)."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from fixtures_client import read_notebook, stream_text, write_notebook

from collab_kernels.client.cli import (
    EXIT_CANCELLED,
    EXIT_CELL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from collab_kernels.client.cli import main as cli_main
from collab_kernels.client.connection import connect_room

pytestmark = pytest.mark.timeout(180)

# Prints five lines, waits until the file "go" exists, prints five more.
GATED = """\
import pathlib, time
for i in range(5):
    print(f"line {i}", flush=True)
while not pathlib.Path("go").exists():
    time.sleep(0.02)
for i in range(5, 10):
    print(f"line {i}", flush=True)
"""

STUCK = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.02)"


def _outputs_text(ycell) -> str:
    return json.dumps(ycell["outputs"].to_py())


async def test_run_to_completion_saves_outputs(make_notebook, cli, server_args, jp_root_dir):
    make_notebook("ok.ipynb", ["x = 6 * 7\nprint(x)", ("markdown", "text"), "x"])
    code, out, err = await cli("run", "ok.ipynb", *server_args, "--log-output")
    assert code == EXIT_OK, err
    assert out.splitlines() == ["42", "42"]
    assert "watch it live in JupyterLab: http://" in err and "/lab/tree/ok.ipynb?token=" in err
    nb = read_notebook(jp_root_dir / "ok.ipynb")
    assert stream_text(nb.cells[0]) == "42\n"
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"
    assert (
        nb.cells[0].execution_count is not None
        and nb.cells[2].execution_count > nb.cells[0].execution_count
    )


async def test_failing_cell_stops_the_run(make_notebook, cli, server_args, jp_root_dir):
    make_notebook("bad.ipynb", ["print('before')", "1 / 0", "print('never')"])
    code, _out, err = await cli("run", "bad.ipynb", *server_args)
    assert code == EXIT_CELL_ERROR, err
    assert "ZeroDivisionError" in err  # the failing cell's error is reported without --log-output
    nb = read_notebook(jp_root_dir / "bad.ipynb")
    assert stream_text(nb.cells[0]) == "before\n"
    assert nb.cells[1].outputs[0]["output_type"] == "error"
    assert nb.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None


async def test_allow_errors_runs_every_cell(make_notebook, cli, server_args, jp_root_dir):
    make_notebook("lenient.ipynb", ["1 / 0", "print('after')"])
    code, _out, err = await cli("run", "lenient.ipynb", *server_args, "--allow-errors")
    assert code == EXIT_OK, err
    nb = read_notebook(jp_root_dir / "lenient.ipynb")
    assert nb.cells[0].outputs[0]["ename"] == "ZeroDivisionError"
    assert stream_text(nb.cells[1]) == "after\n"


async def test_parameters_injected_papermill_style(make_notebook, cli, server_args, jp_root_dir):
    make_notebook(
        "params.ipynb",
        [
            "import sys",
            ("alpha = 1\nname = 'default'\nitems = []", ["parameters"]),
            "print(alpha, name, items)",
        ],
    )
    (jp_root_dir / "p.yaml").write_text("alpha: 0.5\nitems: [1, two]\n")
    code, out, err = await cli(
        "run",
        "params.ipynb",
        *server_args,
        "-f",
        "p.yaml",
        "-p",
        "alpha",
        "3",
        "-p",
        "name",
        "Ada Lovelace",
        "--log-output",
    )
    assert code == EXIT_OK, err
    assert out.splitlines() == ["3 Ada Lovelace [1, 'two']"]
    nb = read_notebook(jp_root_dir / "params.ipynb")
    assert [c.metadata.get("tags", []) for c in nb.cells] == [
        [],
        ["parameters"],
        ["injected-parameters"],
        [],
    ]
    assert "alpha = 3" in nb.cells[2].source and 'name = "Ada Lovelace"' in nb.cells[2].source

    # a second run replaces the injected cell instead of adding one
    code, out, err = await cli(
        "run", "params.ipynb", *server_args, "-p", "alpha", "4", "--log-output"
    )
    assert code == EXIT_OK, err
    assert out.splitlines() == ["4 default []"]
    nb = read_notebook(jp_root_dir / "params.ipynb")
    assert [c.metadata.get("tags", []) for c in nb.cells] == [
        [],
        ["parameters"],
        ["injected-parameters"],
        [],
    ]


async def test_detach_then_attach_mid_run_sees_every_line_once(
    make_notebook, cli, start_cli, server_args, server_info, jp_root_dir
):
    make_notebook("gated.ipynb", ["print('first cell')", GATED, "print('last cell')"])
    code, out, err = await cli("run", "gated.ipynb", *server_args, "--detach")
    assert code == EXIT_OK, err
    run_id = out.strip()
    assert run_id and f"collab-kernels attach {run_id}" in err

    # a browser-like collaborator waits until the run is half way
    conn = await connect_room(server_info.url, "gated.ipynb", token=server_info.token)
    try:
        await conn.wait_for(lambda doc: "line 4" in _outputs_text(doc.ycells[1]), 60)
        status = json.loads((await cli("status", run_id, *server_args, "--json"))[1])
        assert status["status"] == "running" and status["request_id"] == run_id

        attach = await start_cli("attach", run_id, *server_args)
        await attach.wait_for_output(r"^line 4$")
        (jp_root_dir / "go").touch()
        assert await attach.wait() == EXIT_OK, attach.err
    finally:
        await conn.close()
    expected = ["first cell"] + [f"line {i}" for i in range(10)] + ["last cell"]
    assert attach.out.splitlines() == expected

    listed = json.loads((await cli("list", *server_args, "--json"))[1])
    mine = [r for r in listed if r["request_id"] == run_id]
    assert mine and mine[0]["path"] == "gated.ipynb" and mine[0]["result"] == "ok"


async def test_cancel_stops_the_run(make_notebook, cli, start_cli, server_args, jp_root_dir):
    make_notebook("stuck.ipynb", [STUCK, "print('never')"])
    runner = await start_cli("run", "stuck.ipynb", *server_args, "--log-output")
    await runner.wait_for_output(r"^started$")
    run_id = (await runner.wait_for_output(r"run (\S+) of stuck.ipynb", stream="stderr")).group(1)
    code, out, err = await cli("cancel", run_id, *server_args)
    assert code == EXIT_OK, err
    assert "cancelled" in out
    assert await runner.wait() == EXIT_CANCELLED, runner.err
    nb = read_notebook(jp_root_dir / "stuck.ipynb")
    assert stream_text(nb.cells[0]).startswith("started\n")
    assert nb.cells[1].outputs == []


async def test_timeout_exit_code(make_notebook, cli, server_args, jp_root_dir):
    make_notebook("slow.ipynb", [STUCK, "print('never')"])
    code, _out, err = await cli("run", "slow.ipynb", *server_args, "--timeout", "2")
    assert code == EXIT_TIMEOUT, err
    assert "longer than 2 s" in err
    nb = read_notebook(jp_root_dir / "slow.ipynb")
    assert nb.cells[1].outputs == []


async def test_kernel_death_exit_code(make_notebook, cli, server_args, jp_root_dir):
    make_notebook(
        "die.ipynb", ["import os\nprint('bye', flush=True)\nos._exit(1)", "print('never')"]
    )
    code, _out, err = await cli("run", "die.ipynb", *server_args)
    assert code == EXIT_KERNEL_DIED, err
    nb = read_notebook(jp_root_dir / "die.ipynb")
    assert nb.cells[1].outputs == []


async def test_input_prompt_answered_in_run(make_notebook, start_cli, server_args):
    make_notebook("ask.ipynb", ["name = input('your name? ')\nprint('hello', name)"])
    runner = await start_cli("run", "ask.ipynb", *server_args, "--log-output")
    await runner.wait_for_output(r"your name\? ", stream="stderr")
    await runner.send("Ada\n")
    assert await runner.wait() == EXIT_OK, runner.err
    # the answer is echoed into the notebook's stdout; the terminal, which showed it, does
    # not repeat it
    assert runner.out.splitlines() == ["hello Ada"]


async def test_collaborator_sees_the_cli_run_live(
    make_notebook, start_cli, server_args, server_info, jp_root_dir
):
    make_notebook("live.ipynb", [GATED])
    conn = await connect_room(server_info.url, "live.ipynb", token=server_info.token)
    try:
        runner = await start_cli("run", "live.ipynb", *server_args)
        # mid-run, the collaborator's copy shows the cell running with its first lines
        await conn.wait_for(
            lambda doc: (
                "line 4" in _outputs_text(doc.ycells[0])
                and doc.ycells[0].get("execution_state") == "running"
            ),
            60,
        )
        assert runner.proc.returncode is None
        (jp_root_dir / "go").touch()
        assert await runner.wait() == EXIT_OK, runner.err
        await conn.wait_for(lambda doc: doc.ycells[0].get("execution_count") is not None, 30)
        assert "line 9" in _outputs_text(conn.document.ycells[0])
    finally:
        await conn.close()


async def test_usage_and_server_errors(make_notebook, cli, server_args, tmp_path, capsys):
    make_notebook("fine.ipynb", ["1"])

    async def main(*args):  # in-process (a thread with its own loop): quick
        code = await asyncio.to_thread(cli_main, list(args))
        return code, capsys.readouterr().err

    code, err = await main("run", "missing.ipynb", *server_args)
    assert code == EXIT_USAGE and "no such notebook" in err
    code, err = await main("run", "fine.ipynb", *server_args, "-p", "not valid", "1")
    assert code == EXIT_USAGE and "identifier" in err
    code, err = await main("run", "fine.ipynb", *server_args, "--timeout", "0")
    assert code == EXIT_USAGE and "--timeout" in err
    code, err = await main("attach", "nosuchrun", *server_args)
    assert code == EXIT_USAGE and "no run" in err
    code, err = await main("run", str(tmp_path / "nowhere.ipynb"))
    assert code == EXIT_USAGE and "no such notebook" in err
    with pytest.raises(SystemExit) as exc:
        cli_main(["run"])
    assert exc.value.code == EXIT_USAGE
    # and as a real process: a wrong token is a server error
    code, _, err = await cli("run", "fine.ipynb", "--server", server_args[1], "--token", "wrong")
    assert code == EXIT_SERVER and "403" in err


async def test_embedded_server_run_with_output(jp_environ, cli, tmp_path):
    """No --server: an embedded server runs the notebook, writes --output, leaves the input."""
    folder = tmp_path / "project"
    src = write_notebook(folder / "in.ipynb", ["import os\nprint(os.getcwd())", "print('done')"])
    (folder / "out").mkdir()
    code, out, err = await cli(
        "run", "in.ipynb", "--output", "out/result.ipynb", "--log-output", cwd=folder
    )
    assert code == EXIT_OK, err
    assert out.splitlines() == [str(folder), "done"]  # the kernel ran in the input's folder
    result = read_notebook(folder / "out" / "result.ipynb")
    assert stream_text(result.cells[1]) == "done\n"
    assert read_notebook(src).cells[1].outputs == []  # the input stays untouched

    # without --output the notebook itself gets its outputs
    code, out, err = await cli("run", str(src))
    assert code == EXIT_OK, err
    assert stream_text(read_notebook(src).cells[1]) == "done\n"


async def test_ctrl_c_on_attach_detaches_and_only_cancel_stops(
    make_notebook, cli, start_cli, server_args
):
    make_notebook("long.ipynb", [STUCK, "print('never')"])
    code, out, err = await cli("run", "long.ipynb", *server_args, "--detach")
    assert code == EXIT_OK, err
    run_id = out.strip()
    attach = await start_cli("attach", run_id[:12], *server_args)  # a unique prefix is enough
    await attach.wait_for_output(r"^started$")
    attach.proc.send_signal(signal.SIGINT)
    assert await attach.wait() == EXIT_INTERRUPTED
    assert "detached" in attach.err
    status = json.loads((await cli("status", run_id, *server_args, "--json"))[1])
    assert status["status"] == "running"  # the run goes on without its watcher
    code, out, err = await cli("cancel", run_id, *server_args)
    assert code == EXIT_OK, err
    status = json.loads((await cli("status", run_id, *server_args, "--json"))[1])
    assert status["status"] == "done" and status["result"] == "cancelled"
    assert [c["result"] for c in status["cells"]] == ["error", "cancelled"]
