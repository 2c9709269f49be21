"""The real third-party clients against a collab_kernels server: jupyter-nbmodel-client,
jupyter-kernel-client and jupyter-mcp-server (what AI agents use to drive notebooks).

They pull in jupyterlab, jupyter-collaboration and jupyter-server-nbmodel, so they live in
their own environment, ``.venvs/thirdparty`` (``make thirdparty-venv``; pins in
``tests/thirdparty/requirements.txt``); the session fixture creates it when it is missing.
``COLLAB_KERNELS_THIRDPARTY_PYTHON`` names another one. Each test runs a small script of
``tests/thirdparty/`` in that environment (a subprocess) against the test's own jupyter_server
listening on a loopback port, while a collaborator of ours watches the document live.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_client import CLIProcess, read_notebook, write_notebook
from fixtures_rooms import eventually

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "thirdparty"
REQUIREMENTS = SCRIPTS / "requirements.txt"
VENV = ROOT / ".venvs" / "thirdparty"
TIMEOUT = 90.0

# Installing the environment on a fresh machine takes a few minutes (first test's setup).
pytestmark = pytest.mark.timeout(600)


def _installed(python: Path) -> bool:
    return python.exists() and (python.parent.parent / ".installed").exists()


@pytest.fixture(scope="session")
def thirdparty_python() -> str:
    """The python of the third-party clients' environment (created on first use)."""
    named = os.environ.get("COLLAB_KERNELS_THIRDPARTY_PYTHON")
    if named:
        if not Path(named).exists():
            pytest.fail(f"COLLAB_KERNELS_THIRDPARTY_PYTHON={named} does not exist")
        return named
    python = VENV / "bin" / "python"
    if not _installed(python):
        # the same steps as `make thirdparty-venv`
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--progress-bar",
                "off",
                "-q",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        (VENV / ".installed").touch()
    return str(python)


@pytest.fixture
def jp_base_url():
    return "/"


@pytest.fixture
def server(server_info):
    """(url without the trailing slash, token) of the listening test server."""
    return server_info.url.rstrip("/"), server_info.token


@pytest.fixture
def run_script(thirdparty_python, jp_root_dir):
    """Start ``tests/thirdparty/NAME ARGS...`` in the third-party environment."""
    processes: list[CLIProcess] = []

    async def start(name: str, *args: str, env: dict[str, str] | None = None) -> CLIProcess:
        proc = await asyncio.create_subprocess_exec(
            thirdparty_python,
            str(SCRIPTS / name),
            *args,
            cwd=str(jp_root_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        )
        process = CLIProcess(proc)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.proc.returncode is None:
            process.proc.kill()


async def finish(process: CLIProcess, timeout: float = TIMEOUT) -> dict:
    """Wait for the script's end; its ``RESULT`` line, decoded."""
    code = await process.wait(timeout)
    assert code == 0, f"exit {code}\n{process.out}\n{process.err[-4000:]}"
    match = await process.wait_for_output(r"^RESULT (.*)$")
    return json.loads(match.group(1))


def cell_sources(document) -> list[str]:
    return [str(c.get("source", "")) for c in document.ycells.to_py()]


async def test_nbmodel_client_edits_land_in_the_document_and_on_disk(
    server, run_script, jp_root_dir, collab_client
):
    path = "nbmodel.ipynb"
    write_notebook(jp_root_dir / path, ["x = 1"])
    watcher = await collab_client(path)  # a person with the notebook open

    agent = await run_script("nbmodel_edit.py", *server, path)
    result = await finish(agent)

    assert result["status"] == "ok" and result["execution_count"] == 1
    assert result["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "y is 42\n"}]
    expected = ["x = 2", "y = 6 * 7\nprint('y is', y)", "# written by jupyter-nbmodel-client"]
    # The person saw the edits and the outputs live.
    await watcher.wait_for(lambda d: cell_sources(d) == expected, TIMEOUT)
    await watcher.wait_for(lambda d: d.ycells[1].get("execution_count") == 1, TIMEOUT)
    cell = watcher.document.ycells[1].to_py()
    assert cell["outputs"][0]["text"] == "y is 42\n"
    # And the file on disk has them (autosave).

    def saved():
        cells = read_notebook(jp_root_dir / path).cells
        return [c.source for c in cells] == expected and cells[1].outputs and cells

    cells = await eventually(saved, TIMEOUT)
    assert cells[1].outputs[0]["text"] == "y is 42\n" and cells[1].execution_count == 1
    assert [c.cell_type for c in cells] == ["code", "code", "markdown"]


async def test_kernel_client_executes_answers_input_interrupts_and_restarts(
    server, run_script, jp_serverapp
):
    agent = await run_script("kernel_client.py", *server)
    result = await finish(agent)

    execute = result["execute"]
    assert execute["status"] == "ok" and execute["execution_count"] == 1
    assert execute["outputs"][0]["text"] == "a is 42\n"
    assert execute["outputs"][1]["data"]["text/plain"] == "42"
    # input() reached the client over the kernel websocket and its answer came back
    assert result["input"]["prompts"] == ["name? "]
    assert result["input"]["outputs"][0]["text"] == "hello bob\n"
    # interrupt: the running cell ended with KeyboardInterrupt
    assert result["interrupt"] == {"status": "error", "ename": "KeyboardInterrupt"}
    # restart: a fresh namespace and count
    restarted = result["after_restart"]
    assert restarted["execution_count"] == 1
    assert restarted["outputs"][0]["data"]["text/plain"] == "False"
    # the client shut its kernel down when it stopped
    assert result["kernel_id"] not in jp_serverapp.kernel_manager.list_kernel_ids()
